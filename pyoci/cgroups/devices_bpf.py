"""cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program per container.

cgroup v2 has no devices.allow/deny files.  Instead the kernel runs an eBPF
program attached to the cgroup for every device open and mknod, passing
``struct bpf_cgroup_dev_ctx`` (``access_type = access << 16 | type``, then
``major`` and ``minor``); the program returns 1 to allow and 0 to deny.

The rules are those of ``linux.resources.devices`` followed by runc's default
allow list (:data:`pyoci.cgroups.convert.DEFAULT_DEVICE_RULES`), the same list
the v1 backend writes.  Semantics, as in runc: default deny; a rule matches a
device by type ("a" is every type), major and minor (a missing or negative
number is a wildcard); and the last matching rule wins.  Matching is decided
per access bit, so "allow rw" followed by "deny w" still allows a read-only
open but refuses a read-write one, as v1 would.

The program walks the rules from last to first keeping the requested access
bits that no rule has decided yet (``w6``): an allow rule that matches clears
its bits and allows once nothing is left; a deny rule that matches any
pending bit denies.  Whatever is left at the end falls to the default (deny).

Only the bpf(2) syscall is in C (native/bpf.c); the instructions are encoded
here, so they can be unit-tested without a kernel.
"""

from __future__ import annotations

import errno
import os
import struct

from pyoci.cgroups import convert
from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# include/uapi/linux/bpf.h
DEVCG_DEV_BLOCK = 1
DEVCG_DEV_CHAR = 2
DEVCG_ACC_MKNOD = 1
DEVCG_ACC_READ = 2
DEVCG_ACC_WRITE = 4
ACC_ALL = DEVCG_ACC_MKNOD | DEVCG_ACC_READ | DEVCG_ACC_WRITE

_TYPES = {"a": None, "b": DEVCG_DEV_BLOCK, "c": DEVCG_DEV_CHAR}
_ACCESS = {"m": DEVCG_ACC_MKNOD, "r": DEVCG_ACC_READ, "w": DEVCG_ACC_WRITE}

# Opcodes (class | op | source), from include/uapi/linux/bpf_common.h and bpf.h.
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
ALU_MOV_X = 0xBC  # 32-bit dst = src
ALU_MOV_K = 0xB4  # 32-bit dst = imm
ALU_AND_K = 0x54  # 32-bit dst &= imm
ALU_RSH_K = 0x74  # 32-bit dst >>= imm
JMP32_JNE_K = 0x56  # if (u32)dst != imm: pc += off
JMP32_JEQ_K = 0x16  # if (u32)dst == imm: pc += off
JMP_EXIT = 0x95

# Registers: r1 = ctx on entry, then scratch; r2 type; r3 access; r4 major;
# r5 minor; r6 the access bits still undecided; r0 the verdict.
R0, R1, R2, R3, R4, R5, R6 = range(7)

INSN_SIZE = 8
LICENSE = b"Apache-2.0"


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: code, dst/src nibbles, s16 offset, s32 immediate."""
    if imm >= 1 << 31:
        imm -= 1 << 32  # the kernel compares the low 32 bits (JMP32), so wrap
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


class Rule:
    """A device rule reduced to what the program compares."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(
        self, allow: bool, type_: int | None, major: int | None, minor: int | None, access: int
    ) -> None:
        self.allow = allow
        self.type = type_
        self.major = major
        self.minor = minor
        self.access = access

    def matches_everything(self) -> bool:
        return self.type is None and self.major is None and self.minor is None

    def __repr__(self) -> str:
        return (
            f"Rule(allow={self.allow}, type={self.type}, major={self.major}, "
            f"minor={self.minor}, access={self.access})"
        )


def _number(value: Any, what: str) -> int | None:
    if value is None or value < 0:
        return None  # runc: -1 (or absent) is a wildcard
    if value >= 1 << 32:
        raise CgroupError(f"cgroup: device rule {what} {value} is out of range")
    return int(value)


def parse_rule(rule: dict[str, Any]) -> Rule:
    """One ``linux.resources.devices`` entry, validated like the v1 backend does."""
    kind = rule.get("type") or "a"
    if kind not in _TYPES:
        raise CgroupError(f"cgroup: invalid device rule type {kind!r}")
    text = rule.get("access") or "rwm"
    access = 0
    for ch in text:
        if ch not in _ACCESS:
            raise CgroupError(f"cgroup: invalid device rule access {text!r}")
        access |= _ACCESS[ch]
    return Rule(
        bool(rule.get("allow")),
        _TYPES[kind],
        _number(rule.get("major"), "major"),
        _number(rule.get("minor"), "minor"),
        access,
    )


def effective_rules(rules: Iterable[dict[str, Any]] | None) -> list[Rule]:
    """The config's rules, then runc's default allow list (which thus wins)."""
    return [parse_rule(r) for r in [*(rules or ()), *convert.DEFAULT_DEVICE_RULES]]


def _rule_block(rule: Rule) -> list[bytes]:
    """The instructions for one rule; every jump lands just past the block."""
    checks: list[tuple[int, int]] = []
    if rule.type is not None:
        checks.append((R2, rule.type))
    if rule.major is not None:
        checks.append((R4, rule.major))
    if rule.minor is not None:
        checks.append((R5, rule.minor))
    if rule.allow and rule.access == ACC_ALL:
        verdict = [insn(ALU_MOV_K, R0, imm=1), insn(JMP_EXIT)]
    elif rule.allow:
        verdict = [
            insn(ALU_AND_K, R6, imm=~rule.access & 0xFFFFFFFF),
            insn(JMP32_JNE_K, R6, off=2, imm=0),  # bits left: an earlier rule decides
            insn(ALU_MOV_K, R0, imm=1),
            insn(JMP_EXIT),
        ]
    elif rule.access == ACC_ALL:
        verdict = [insn(ALU_MOV_K, R0, imm=0), insn(JMP_EXIT)]
    else:
        verdict = [
            insn(ALU_MOV_X, R1, R6),
            insn(ALU_AND_K, R1, imm=rule.access),
            insn(JMP32_JEQ_K, R1, off=2, imm=0),  # none of its bits pending: no say
            insn(ALU_MOV_K, R0, imm=0),
            insn(JMP_EXIT),
        ]
    out = []
    for i, (reg, value) in enumerate(checks):
        skip = len(checks) - i - 1 + len(verdict)
        out.append(insn(JMP32_JNE_K, reg, off=skip, imm=value))
    return out + verdict


def program(rules: Iterable[dict[str, Any]] | None) -> bytes:
    """The device program for ``rules`` (config order), defaults appended."""
    prologue = [
        insn(LDX_MEM_W, R2, R1, off=0),  # access_type
        insn(ALU_MOV_X, R3, R2),
        insn(ALU_AND_K, R2, imm=0xFFFF),  # type
        insn(ALU_RSH_K, R3, imm=16),  # access
        insn(LDX_MEM_W, R4, R1, off=4),  # major
        insn(LDX_MEM_W, R5, R1, off=8),  # minor
        insn(ALU_MOV_X, R6, R3),  # undecided access bits
    ]
    body: list[bytes] = []
    for rule in reversed(effective_rules(rules)):
        body += _rule_block(rule)
        if rule.matches_everything() and rule.access == ACC_ALL:
            return b"".join(prologue + body)  # earlier rules can't be reached
    epilogue = [insn(ALU_MOV_K, R0, imm=0), insn(JMP_EXIT)]  # default deny
    return b"".join(prologue + body + epilogue)


# -- the kernel side ----------------------------------------------------------


def _lib() -> Any:
    from pyoci._native import ffi, lib

    return ffi, lib


def load(code: bytes) -> int:
    """BPF_PROG_LOAD the program; return its fd (the caller closes it)."""
    ffi, lib = _lib()
    buf = ffi.from_buffer(code)
    log = ffi.new("char[]", 1 << 16)
    fd = lib.pyoci_bpf_prog_load(
        lib.BPF_PROG_TYPE_CGROUP_DEVICE, buf, len(code) // INSN_SIZE, LICENSE, ffi.NULL, 0
    )
    if fd < 0:
        err = ffi.errno
        if err in (errno.EINVAL, errno.EACCES):
            # Load again with the verifier log, which says what it disliked.
            lib.pyoci_bpf_prog_load(
                lib.BPF_PROG_TYPE_CGROUP_DEVICE, buf, len(code) // INSN_SIZE, LICENSE, log, len(log)
            )
        raise OSError(err, os.strerror(err), ffi.string(log).decode(errors="replace").strip())
    return fd


def attached(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached directly to the cgroup."""
    ffi, lib = _lib()
    cap = 64
    while True:
        ids = ffi.new("uint32_t[]", cap)
        cnt = ffi.new("uint32_t *", cap)
        if lib.pyoci_bpf_prog_query(cgroup_fd, lib.BPF_CGROUP_DEVICE, ffi.NULL, ids, cnt) == 0:
            return [ids[i] for i in range(cnt[0])]
        err = ffi.errno
        if err != errno.ENOSPC:
            raise OSError(err, os.strerror(err))
        cap = cnt[0] + 8


def prog_id(fd: int) -> int:
    ffi, lib = _lib()
    out = ffi.new("uint32_t *")
    if lib.pyoci_bpf_prog_id(fd, out) < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err))
    return int(out[0])


def detach(cgroup_fd: int, ids: Iterable[int]) -> None:
    """Detach the device programs with these ids; ones already gone are skipped."""
    ffi, lib = _lib()
    for pid_ in ids:
        fd = lib.pyoci_bpf_prog_get_fd_by_id(pid_)
        if fd < 0:
            if ffi.errno == errno.ENOENT:
                continue
            err = ffi.errno
            raise OSError(err, os.strerror(err))
        try:
            if lib.pyoci_bpf_prog_detach(fd, cgroup_fd, lib.BPF_CGROUP_DEVICE) < 0:
                err = ffi.errno
                if err != errno.ENOENT:
                    raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"cgroup: open {path}: {(exc.strerror or '').lower()}") from exc


def install(cgroup_dir: str, rules: Iterable[dict[str, Any]] | None) -> int:
    """Attach a fresh program for ``rules`` to ``cgroup_dir``; return its id.

    The new program goes on first (BPF_F_ALLOW_MULTI) and the ones it replaces
    come off afterwards, so there is no moment without a device policy: in
    between both run, and the kernel allows only what every program allows.
    """
    code = program(rules)
    _ffi, lib = _lib()
    dfd = _open_dir(cgroup_dir)
    try:
        try:
            old = attached(dfd)
            pfd = load(code)
        except OSError as exc:
            detail = f": {exc.filename}" if exc.filename else ""
            raise CgroupError(
                f"cgroup: load device program for {cgroup_dir}: "
                f"{(exc.strerror or '').lower()}{detail}"
            ) from exc
        try:
            if (
                lib.pyoci_bpf_prog_attach(pfd, dfd, lib.BPF_CGROUP_DEVICE, lib.BPF_F_ALLOW_MULTI)
                < 0
            ):
                err = _ffi.errno
                raise CgroupError(
                    f"cgroup: attach device program to {cgroup_dir}: {os.strerror(err).lower()}"
                )
            new_id = prog_id(pfd)
        finally:
            os.close(pfd)
        try:
            detach(dfd, [i for i in old if i != new_id])
        except OSError as exc:
            raise CgroupError(
                f"cgroup: detach old device program from {cgroup_dir}: "
                f"{(exc.strerror or '').lower()}"
            ) from exc
        return new_id
    finally:
        os.close(dfd)


def remove(cgroup_dir: str) -> None:
    """Detach every device program from ``cgroup_dir`` (tests; rmdir does it too)."""
    dfd = _open_dir(cgroup_dir)
    try:
        detach(dfd, attached(dfd))
    finally:
        os.close(dfd)
