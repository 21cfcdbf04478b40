"""Compile ``linux.seccomp`` from config.json into a BPF program, in the parent.

The parent compiles at ``create`` time with libseccomp and only *exports* the
program; nothing is loaded into pyoci itself. The final exec step (C, in
``native/core.c``) later installs the bytes with the raw ``seccomp()`` syscall,
so no libseccomp code and no Python runs between the filter and ``execve``.
That split is why :class:`Filter` carries ``flags``: TSYNC, LOG and SPEC_ALLOW
are load-time attributes in libseccomp and never appear in the exported BPF, so
we compute the kernel flags ourselves.

Semantics follow runc (``libcontainer/seccomp/seccomp_linux.go``), which is what
callers such as podman and containerd test against:

* a syscall name this libseccomp does not know is skipped with a debug log;
* a rule whose action (including its errno) equals the default action is
  skipped, since libseccomp refuses such rules with EACCES;
* a rule with several comparisons on the same argument index is split into one
  rule per comparison (an OR), because libseccomp cannot AND two comparisons on
  one argument; otherwise all comparisons go into one rule (an AND);
* ``SCMP_ACT_KILL`` is ``SCMP_ACT_KILL_THREAD``; ERRNO and TRACE default to EPERM;
* more than 32 syscall names turn on libseccomp's binary-tree optimisation.

Compiling podman's default profile takes tens of milliseconds, so results are
cached on disk (as crun does) keyed by the profile and both library versions.
"""

from __future__ import annotations

import errno as _errno
import logging
import os
import tempfile

import pyoci
from pyoci import jsonio
from pyoci.errors import SpecError
from pyoci.record import record

try:  # the builtin module: hashlib would load OpenSSL first
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover
    from hashlib import sha256 as _sha256

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

log = logging.getLogger("pyoci")

_FIELD = "config.json: linux.seccomp"

# The kernel's BPF_MAXINSNS: longer programs are refused by seccomp(2).
BPF_MAXINSNS = 4096
SOCK_FILTER_SIZE = 8  # sizeof(struct sock_filter)

# runc turns on libseccomp's binary-tree layout above this many syscalls: it is
# faster for big allow-lists, and libseccomp <= 2.5.4 misbehaves with it on
# filters with no rules at all.
_OPTIMIZE_THRESHOLD = 32

# OCI architecture names → libseccomp's own names, which seccomp_arch_resolve_name
# turns into tokens. Resolving at run time (rather than binding SCMP_ARCH_*
# constants) lets spec names newer than this libseccomp fail with a clear error.
ARCHES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
}

ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)

FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)

_MAX_ARGS = 6  # a Linux syscall has at most six arguments
_U64 = (1 << 64) - 1
_ERRNO_MAX = 0xFFFF  # SECCOMP_RET_DATA


@record(frozen=True)
class Filter:
    """A compiled filter, ready for ``seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)``."""

    bpf: bytes  # struct sock_filter[], native byte order
    flags: int  # SECCOMP_FILTER_FLAG_* for the seccomp() call
    listener_path: str | None  # where to send the listener fd (NEW_LISTENER only)
    listener_metadata: str

    @property
    def instructions(self) -> int:
        """Number of BPF instructions, which the kernel caps at BPF_MAXINSNS."""
        return len(self.bpf) // SOCK_FILTER_SIZE


@record(frozen=True)
class _Arg:
    index: int
    value: int
    value_two: int
    op: str


@record(frozen=True)
class _Rule:
    """One OCI syscalls[] entry, validated; ``where`` names it in errors."""

    where: str
    names: tuple[str, ...]
    action: str
    errno_ret: int | None
    args: tuple[_Arg, ...]


@record(frozen=True)
class _Profile:
    default_action: str
    default_errno: int | None
    arches: tuple[str, ...]
    flag_names: tuple[str, ...]
    listener_path: str | None
    listener_metadata: str
    rules: tuple[_Rule, ...]

    @property
    def notify(self) -> bool:
        return any(r.action == "SCMP_ACT_NOTIFY" for r in self.rules)


def compile_filter(seccomp: dict[str, Any], cache_dir: str | None = None) -> Filter:
    """Validate ``linux.seccomp`` and compile it to BPF, using ``cache_dir`` if given.

    Validation always runs (it is cheap and pure Python) so a bad profile fails
    the same way with or without a cache; only the libseccomp pass is cached.
    The kernel flags are always computed afresh because they depend on what the
    running kernel supports, which can change under an old cache entry.
    """
    profile = _parse(seccomp)
    flags = _kernel_flags(profile)

    key = _cache_key(seccomp) if cache_dir else None
    bpf = _cache_read(cache_dir, key) if cache_dir and key else None
    if bpf is None:
        bpf = _compile(profile)
        if cache_dir and key:
            _cache_write(cache_dir, key, bpf)

    return Filter(
        bpf=bpf,
        flags=flags,
        listener_path=profile.listener_path,
        listener_metadata=profile.listener_metadata,
    )


def libseccomp_version() -> str:
    """The libseccomp version actually loaded (not the one built against)."""
    from pyoci._native import lib

    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


# --- validation: config.json → _Profile ------------------------------------------------


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _errno_field(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _ERRNO_MAX:
        raise SpecError(f"{where}: must be an integer in 0..{_ERRNO_MAX}, got {value!r}")
    return value


def _action_field(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{where}: must be a string, got {value!r}")
    if value not in ACTIONS:
        raise SpecError(f"{where}: unknown action {value}")
    return value


def _list_field(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where}: must be a list, got {value!r}")
    return value


def _parse(seccomp: object) -> _Profile:
    """Check every field of ``linux.seccomp`` and return the normalised profile."""
    if not isinstance(seccomp, dict):
        raise SpecError(f"{_FIELD}: must be an object")

    if "defaultAction" not in seccomp:
        raise SpecError(f"{_FIELD}.defaultAction: required")
    default_action = _action_field(seccomp["defaultAction"], f"{_FIELD}.defaultAction")
    if default_action == "SCMP_ACT_NOTIFY":
        # Every syscall, including the one that hands over the listener fd, would
        # wait for an agent that has no fd yet.
        raise SpecError(f"{_FIELD}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")
    default_errno = _errno_field(seccomp.get("defaultErrnoRet"), f"{_FIELD}.defaultErrnoRet")
    if default_errno is not None and default_action not in _ERRNO_ACTIONS:
        raise SpecError(
            f"{_FIELD}.defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, "
            f"not {default_action}"
        )

    arches: list[str] = []
    for i, arch in enumerate(_list_field(seccomp.get("architectures"), f"{_FIELD}.architectures")):
        if not isinstance(arch, str) or arch not in ARCHES:
            raise SpecError(f"{_FIELD}.architectures[{i}]: unknown architecture {arch}")
        arches.append(arch)

    flag_names: list[str] = []
    for i, flag in enumerate(_list_field(seccomp.get("flags"), f"{_FIELD}.flags")):
        if not isinstance(flag, str) or flag not in FLAGS:
            raise SpecError(f"{_FIELD}.flags[{i}]: unknown flag {flag}")
        flag_names.append(flag)

    listener_path = seccomp.get("listenerPath")
    if listener_path is not None and (not isinstance(listener_path, str) or not listener_path):
        raise SpecError(f"{_FIELD}.listenerPath: must be a non-empty string")
    metadata = seccomp.get("listenerMetadata", "")
    if metadata is None:
        metadata = ""
    if not isinstance(metadata, str):
        raise SpecError(f"{_FIELD}.listenerMetadata: must be a string")

    rules = tuple(
        _parse_rule(call, f"{_FIELD}.syscalls[{i}]")
        for i, call in enumerate(_list_field(seccomp.get("syscalls"), f"{_FIELD}.syscalls"))
    )
    profile = _Profile(
        default_action=default_action,
        default_errno=default_errno,
        arches=tuple(arches),
        flag_names=tuple(flag_names),
        listener_path=listener_path,
        listener_metadata=metadata,
        rules=rules,
    )
    if profile.notify and not listener_path:
        raise SpecError(f"{_FIELD}.listenerPath: required when a rule uses SCMP_ACT_NOTIFY")
    return profile


def _parse_rule(call: object, where: str) -> _Rule:
    if not isinstance(call, dict):
        raise SpecError(f"{where}: must be an object")
    names = call.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise SpecError(f"{where}.names: must be a non-empty list of syscall names")
    if "action" not in call:
        raise SpecError(f"{where}.action: required")
    action = _action_field(call["action"], f"{where}.action")
    errno_ret = _errno_field(call.get("errnoRet"), f"{where}.errnoRet")
    if errno_ret is not None and action not in _ERRNO_ACTIONS:
        raise SpecError(
            f"{where}.errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not {action}"
        )
    if action == "SCMP_ACT_NOTIFY" and "sendmsg" in names:
        # pyoci's exec step hands the listener fd over with sendmsg() after the
        # filter is loaded; notifying on it would wait for an agent with no fd.
        # (runc refuses `write` for the same reason in its own exec path.)
        raise SpecError(f"{where}.names: SCMP_ACT_NOTIFY cannot be used for sendmsg")

    args: list[_Arg] = []
    for j, arg in enumerate(_list_field(call.get("args"), f"{where}.args")):
        aw = f"{where}.args[{j}]"
        if not isinstance(arg, dict):
            raise SpecError(f"{aw}: must be an object")
        index = arg.get("index")
        if not _is_int(index) or not 0 <= index < _MAX_ARGS:
            raise SpecError(f"{aw}.index: must be 0..{_MAX_ARGS - 1}, got {index!r}")
        value = arg.get("value")
        if not _is_int(value) or not 0 <= value <= _U64:
            raise SpecError(f"{aw}.value: must be an unsigned 64-bit integer, got {value!r}")
        value_two = arg.get("valueTwo", 0)
        if value_two is None:
            value_two = 0
        if not _is_int(value_two) or not 0 <= value_two <= _U64:
            raise SpecError(f"{aw}.valueTwo: must be an unsigned 64-bit integer, got {value_two!r}")
        op = arg.get("op")
        if not isinstance(op, str) or op not in OPERATORS:
            raise SpecError(f"{aw}.op: unknown operator {op}")
        args.append(_Arg(index=index, value=value, value_two=value_two, op=op))
    return _Rule(
        where=where, names=tuple(names), action=action, errno_ret=errno_ret, args=tuple(args)
    )


# --- kernel flags --------------------------------------------------------------------


def _kernel_flags(profile: _Profile) -> int:
    """The flags argument for seccomp(SECCOMP_SET_MODE_FILTER), checked against this kernel.

    libseccomp keeps TSYNC/LOG/SPEC_ALLOW as load-time attributes, so they are
    absent from exported BPF; we pass them to the kernel ourselves.
    """
    from pyoci._native import lib

    flags = lib.SECCOMP_FILTER_FLAG_NEW_LISTENER if profile.notify else 0
    for i, name in enumerate(profile.flag_names):
        where = f"{_FIELD}.flags[{i}]"
        if name == "SECCOMP_FILTER_FLAG_TSYNC":
            # The kernel refuses TSYNC together with NEW_LISTENER (unless with
            # TSYNC_ESRCH, 5.7+). The exec step runs single-threaded, so TSYNC
            # has nothing to synchronise; drop it rather than fail.
            if profile.notify:
                log.debug("seccomp: %s dropped, it cannot be combined with SCMP_ACT_NOTIFY", name)
                continue
            bit = lib.SECCOMP_FILTER_FLAG_TSYNC
        elif name == "SECCOMP_FILTER_FLAG_LOG":
            bit = lib.SECCOMP_FILTER_FLAG_LOG
        elif name == "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
            bit = lib.SECCOMP_FILTER_FLAG_SPEC_ALLOW
        else:  # SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            # Only meaningful with a listener (the kernel refuses it otherwise),
            # and only a refinement of how notified syscalls wait: without
            # kernel support (6.0+) we drop it instead of failing the container.
            bit = lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            if not profile.notify:
                log.debug("seccomp: %s dropped, no rule uses SCMP_ACT_NOTIFY", name)
                continue
            if not lib.pyoci_seccomp_flag_supported(bit | lib.SECCOMP_FILTER_FLAG_NEW_LISTENER):
                log.debug("seccomp: %s dropped, not supported by this kernel", name)
                continue
            flags |= bit
            continue
        if not lib.pyoci_seccomp_flag_supported(bit):
            raise SpecError(f"{where}: {name} is not supported by this kernel")
        flags |= bit
    if profile.notify and not lib.pyoci_seccomp_flag_supported(flags):
        raise SpecError(f"{_FIELD}: SCMP_ACT_NOTIFY is not supported by this kernel")
    return int(flags)


# --- compilation with libseccomp -------------------------------------------------------


def _action_value(action: str, errno_ret: int | None) -> int:
    """The 32-bit SECCOMP_RET_* value libseccomp uses for an OCI action."""
    from pyoci._native import lib

    if action == "SCMP_ACT_ERRNO":
        return int(lib.pyoci_scmp_act_errno(_errno.EPERM if errno_ret is None else errno_ret))
    if action == "SCMP_ACT_TRACE":
        return int(lib.pyoci_scmp_act_trace(_errno.EPERM if errno_ret is None else errno_ret))
    return int(
        {
            "SCMP_ACT_KILL": lib.SCMP_ACT_KILL_THREAD,
            "SCMP_ACT_KILL_THREAD": lib.SCMP_ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": lib.SCMP_ACT_KILL_PROCESS,
            "SCMP_ACT_TRAP": lib.SCMP_ACT_TRAP,
            "SCMP_ACT_ALLOW": lib.SCMP_ACT_ALLOW,
            "SCMP_ACT_LOG": lib.SCMP_ACT_LOG,
            "SCMP_ACT_NOTIFY": lib.SCMP_ACT_NOTIFY,
        }[action]
    )


def _rule_arg_sets(rule: _Rule) -> Iterator[tuple[_Arg, ...]]:
    """The comparison sets to add as separate rules, the way runc does it.

    All comparisons in one rule are ANDed by libseccomp, which however cannot
    hold two comparisons on the same argument; runc then falls back to one rule
    per comparison (so they are ORed), and we match that.
    """
    indexes = [a.index for a in rule.args]
    if len(indexes) != len(set(indexes)):
        for a in rule.args:
            yield (a,)
    else:
        yield rule.args


def _compile(profile: _Profile) -> bytes:
    from pyoci._native import ffi, lib

    default = _action_value(profile.default_action, profile.default_errno)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise SpecError(
            f"{_FIELD}.defaultAction: {profile.default_action} is not supported "
            f"by libseccomp {libseccomp_version()} on this kernel"
        )
    try:
        _attr(ctx, lib.SCMP_FLTATR_API_SYSRAWRC, 1)
        # Export only: the exec step loads the program itself, and decides about
        # no_new_privs from process.noNewPrivileges, not libseccomp.
        _attr(ctx, lib.SCMP_FLTATR_CTL_NNP, 0)
        if sum(len(r.names) for r in profile.rules) > _OPTIMIZE_THRESHOLD:
            _attr(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)

        for i, arch in enumerate(profile.arches):
            token = lib.seccomp_arch_resolve_name(ARCHES[arch].encode())
            if token == 0:
                raise SpecError(
                    f"{_FIELD}.architectures[{i}]: {arch} is not supported "
                    f"by libseccomp {libseccomp_version()}"
                )
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -_errno.EEXIST:  # the native arch is already in
                raise SpecError(
                    f"{_FIELD}.architectures[{i}]: cannot add {arch}: {os.strerror(-rc)}"
                )

        for rule in profile.rules:
            _add_rule(ctx, rule, default)

        bpf = _enosys_stub(profile) + _export(ctx)
    finally:
        lib.seccomp_release(ctx)
    if len(bpf) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise SpecError(
            f"{_FIELD}: the filter has {len(bpf) // SOCK_FILTER_SIZE} instructions, "
            f"the kernel allows {BPF_MAXINSNS}"
        )
    return bpf


def _attr(ctx: Any, attr: int, value: int) -> None:
    from pyoci._native import lib

    rc = lib.seccomp_attr_set(ctx, attr, value)
    if rc < 0:
        raise OSError(-rc, f"seccomp_attr_set({attr}): {os.strerror(-rc)}")


def _add_rule(ctx: Any, rule: _Rule, default: int) -> None:
    from pyoci._native import ffi, lib

    action = _action_value(rule.action, rule.errno_ret)
    if action == default:
        # Redundant, and libseccomp would refuse it with EACCES (runc skips it too).
        return
    arg_sets = list(_rule_arg_sets(rule))
    for name in rule.names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == lib.__NR_SCMP_ERROR:
            log.debug("seccomp: unknown syscall %r ignored", name)
            continue
        for args in arg_sets:
            cmps = ffi.new("struct scmp_arg_cmp[]", max(len(args), 1))
            for k, a in enumerate(args):
                cmps[k].arg = a.index
                cmps[k].op = getattr(lib, a.op)
                cmps[k].datum_a = a.value
                cmps[k].datum_b = a.value_two
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(args), cmps)
            if rc < 0:
                raise SpecError(f"{rule.where}: cannot add rule for {name}: {os.strerror(-rc)}")


def _export(ctx: Any) -> bytes:
    """Export the BPF through a memfd (libseccomp 2.5 writes only to fds)."""
    from pyoci._native import lib

    fd = os.memfd_create("pyoci-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise OSError(-rc, f"seccomp_export_bpf: {os.strerror(-rc)}")
        size = os.fstat(fd).st_size
        bpf = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    if not bpf or len(bpf) % SOCK_FILTER_SIZE:
        raise OSError(_errno.EIO, f"seccomp_export_bpf: bad program size {len(bpf)}")
    if len(bpf) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise SpecError(
            f"{_FIELD}: the filter has {len(bpf) // SOCK_FILTER_SIZE} instructions, "
            f"the kernel allows {BPF_MAXINSNS}"
        )
    return bpf


# --- the -ENOSYS stub --------------------------------------------------------------------
#
# A syscall newer than the profile (clone3 under an old allow-list) would get the
# default action, typically EPERM, and libc treats EPERM as final: it falls back
# (clone3 -> clone, faccessat2 -> faccessat) only on ENOSYS. runc therefore puts a
# short program in front of libseccomp's: for each architecture the profile lists,
# a syscall numbered above the highest one the profile names gets ENOSYS, as if
# the kernel did not know it. We emit the same behaviour: not for permissive
# defaults (allow, log, trace) nor when the default errno is ENOSYS already, and
# not for a profile that lists no architectures (runc doesn't either).

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JA = 0x05  # BPF_JMP | BPF_JA
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGT = 0x25  # BPF_JMP | BPF_JGT | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_OFF_NR, _OFF_ARCH = 0, 4  # struct seccomp_data
_RET_ENOSYS = 0x00050000 | _errno.ENOSYS  # SECCOMP_RET_ERRNO | ENOSYS
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")


def _highest_syscalls(profile: _Profile) -> dict[int, dict[int, int]]:
    """AUDIT_ARCH -> {libseccomp arch token: highest syscall number the profile names}.

    libseccomp's arch tokens are the kernel's AUDIT_ARCH values, except x32, which
    the kernel reports as x86_64 with bit 30 set in the syscall number.
    """
    from pyoci._native import lib

    x32 = lib.seccomp_arch_resolve_name(b"x32")
    names = {n.encode() for rule in profile.rules for n in rule.names}
    out: dict[int, dict[int, int]] = {}
    for arch in profile.arches:
        token = int(lib.seccomp_arch_resolve_name(ARCHES[arch].encode()))
        known = out.setdefault(_AUDIT_ARCH_X86_64 if token == x32 else token, {})
        # Negative numbers are libseccomp's stand-ins for syscalls this arch lacks.
        highest = max((lib.seccomp_syscall_resolve_name_arch(token, n) for n in names),
                      default=-1)
        if highest > 0:
            known[token] = int(highest)
    return {audit: known for audit, known in out.items() if known}


def _enosys_stub(profile: _Profile) -> bytes:
    """The instructions to put in front of libseccomp's program (empty: none needed)."""
    import struct

    from pyoci._native import lib

    if profile.default_action in _PERMISSIVE or profile.default_errno == _errno.ENOSYS:
        return b""
    highest = _highest_syscalls(profile)
    if not highest:
        return b""
    x86_64 = lib.seccomp_arch_resolve_name(b"x86_64")
    x32 = lib.seccomp_arch_resolve_name(b"x32")
    s390 = {lib.seccomp_arch_resolve_name(b"s390"), lib.seccomp_arch_resolve_name(b"s390x")}
    # (code, jump-if-true label, jump-if-false label, k); labels are resolved below.
    prog: list[tuple[int, str | None, str | None, int]] = [(_LD_W_ABS, None, None, _OFF_ARCH)]
    prog += [(_JEQ, f"arch{audit}", None, audit) for audit in highest]
    prog.append((_JA, "filter", None, 0))
    labels: dict[str, int] = {}

    def above(limit: int | None) -> None:
        if limit is None:
            prog.append((_JA, "filter", None, 0))
        else:
            prog.append((_JGT, "enosys", "filter", limit))

    for audit, known in highest.items():
        labels[f"arch{audit}"] = len(prog)
        prog.append((_LD_W_ABS, None, None, _OFF_NR))
        if audit == _AUDIT_ARCH_X86_64:
            prog.append((_JSET, f"x32_{audit}", None, _X32_SYSCALL_BIT))
            above(known.get(x86_64))
            labels[f"x32_{audit}"] = len(prog)
            above(known.get(x32))
            continue
        (token, limit), = known.items()
        if token in s390:
            # s390's setup(0) multiplexes syscall numbers the kernel doesn't know.
            prog.append((_JEQ, "enosys", None, 0))
        above(limit)
    labels["enosys"] = len(prog)
    prog.append((_RET, None, None, _RET_ENOSYS))
    labels["filter"] = len(prog)

    out = bytearray()
    for pc, (code, jt, jf, k) in enumerate(prog):
        if code == _JA:
            k = labels[str(jt)] - pc - 1
            jt = None
        t = labels[jt] - pc - 1 if jt else 0
        f = labels[jf] - pc - 1 if jf else 0
        assert 0 <= t <= 255 and 0 <= f <= 255, "stub jumps are short by construction"
        out += struct.pack("=HBBI", code, t, f, k)
    return bytes(out)


# --- cache ----------------------------------------------------------------------------


def _cache_key(seccomp: dict[str, Any]) -> str | None:
    """sha256 over the canonical profile, libseccomp, pyoci and the native arch.

    Anything that can change the emitted BPF for the same JSON is in the key, so
    a stale entry is never used; unserialisable input simply is not cached.
    """
    from pyoci._native import lib

    try:
        canon = jsonio.dumps(seccomp, sort_keys=True)
    except (TypeError, ValueError):
        return None
    h = _sha256()
    for part in (
        "pyoci-seccomp-v2",  # v2: the -ENOSYS stub
        pyoci.__version__,
        libseccomp_version(),
        str(int(lib.seccomp_arch_native())),
        canon,
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _cache_read(cache_dir: str, key: str) -> bytes | None:
    """Return a cached program, or None to recompile.

    A cache entry replaces the whole security policy, so one that someone else
    could have written (not ours, or group/world-writable) is ignored.
    """
    try:
        with open(os.path.join(cache_dir, key + ".bpf"), "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                log.debug("seccomp: ignoring cache entry %s: unsafe owner or mode", f.name)
                return None
            data = f.read(BPF_MAXINSNS * SOCK_FILTER_SIZE + 1)
    except OSError:
        return None
    if not data or len(data) % SOCK_FILTER_SIZE or len(data) > BPF_MAXINSNS * SOCK_FILTER_SIZE:
        return None  # truncated or foreign: recompile (and overwrite below)
    return data


def _cache_write(cache_dir: str, key: str, bpf: bytes) -> None:
    """Write atomically (tmp + fsync + rename); a cache failure never fails create."""
    tmp = None
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".bpf", dir=cache_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(bpf)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(cache_dir, key + ".bpf"))
        tmp = None
    except OSError as e:
        log.debug("seccomp: cannot write cache in %s: %s", cache_dir, e)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
