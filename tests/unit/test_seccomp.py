"""Tests for pyoci.linux.seccomp: validation, flags, the cache, and real BPF.

The behavioural tests load each compiled filter into a forked child (never
into the test process), make a syscall there, and report the errno through a
pipe, so they check what the kernel actually does with the exported program.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helpers
import pytest

from pyoci.errors import SpecError
from pyoci.linux import seccomp
from pyoci.linux.seccomp import Filter, compile_filter

lib: Any
ffi: Any
try:
    from pyoci._native import ffi, lib
except ImportError:  # pragma: no cover - the extension is not built
    pytest.skip("pyoci._native is not built", allow_module_level=True)

PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")
F = "config.json: linux.seccomp"

# podman's default capability set (containers.conf default_capabilities).
PODMAN_DEFAULT_CAPS = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
}

podman_to_oci = helpers.podman_seccomp_to_oci


def run_filtered(flt: Filter, fn: Callable[[], int]) -> tuple[int, int | None]:
    """Fork, load ``flt`` in the child, run ``fn``; return (wait status, fn's result or None)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            buf = ffi.from_buffer(flt.bpf)
            rc = lib.pyoci_seccomp_load(buf, flt.instructions, flt.flags)
            if rc < 0:
                result = -1000 - ffi.errno
            else:
                result = fn()
            os.write(w, struct.pack("i", result))
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = os.read(r, 4)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, (struct.unpack("i", data)[0] if len(data) == 4 else None)


def errno_of(call: Callable[[], object]) -> Callable[[], int]:
    """Wrap a call so the child reports 0 on success or the errno it failed with."""

    def run() -> int:
        try:
            call()
        except OSError as e:
            return e.errno or -1
        return 0

    return run


def mkdir_in(tmp_path: Path, name: str, mode: int = 0o755) -> Callable[[], int]:
    return errno_of(lambda: os.mkdir(tmp_path / name, mode))


def deny_mkdir(**rule: Any) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], **rule}],
    }


# --- podman's default profile --------------------------------------------------------


@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason="podman's profile is not installed")
@pytest.mark.parametrize("caps", ["default", "all"])
def test_podman_default_profile_compiles(caps: str, tmp_path: Path) -> None:
    all_caps = PODMAN_DEFAULT_CAPS | {
        f"CAP_{c}"
        for c in (
            "SYS_ADMIN",
            "SYS_PTRACE",
            "SYS_MODULE",
            "SYS_RAWIO",
            "SYS_TIME",
            "SYS_PACCT",
            "SYS_TTY_CONFIG",
            "SYS_BOOT",
            "SYS_NICE",
            "SYS_RESOURCE",
            "SYSLOG",
            "BPF",
            "PERFMON",
            "DAC_READ_SEARCH",
            "AUDIT_WRITE",
            "SYS_CHROOT",
        )
    }
    profile = podman_to_oci(PODMAN_PROFILE, PODMAN_DEFAULT_CAPS if caps == "default" else all_caps)
    flt = compile_filter(profile)
    assert 0 < flt.instructions <= seccomp.BPF_MAXINSNS
    assert len(flt.bpf) == flt.instructions * 8
    assert flt.flags == 0
    assert flt.listener_path is None

    status, res = run_filtered(flt, mkdir_in(tmp_path, "d"))
    assert os.WIFEXITED(status) and res == 0


@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason="podman's profile is not installed")
def test_podman_profile_denies_by_capability() -> None:
    # Without CAP_SYS_CHROOT podman's profile turns chroot into EPERM.
    flt = compile_filter(podman_to_oci(PODMAN_PROFILE, PODMAN_DEFAULT_CAPS - {"CAP_SYS_CHROOT"}))
    _, res = run_filtered(flt, errno_of(lambda: os.chroot("/")))
    assert res == errno.EPERM
    # With it, chroot passes the filter (and then needs the real capability).
    flt = compile_filter(podman_to_oci(PODMAN_PROFILE, PODMAN_DEFAULT_CAPS))
    _, res = run_filtered(flt, errno_of(lambda: os.chroot("/")))
    assert res == (0 if os.geteuid() == 0 else errno.EPERM)


# --- actions, in a real child ------------------------------------------------------


def test_errno_defaults_to_eperm(tmp_path: Path) -> None:
    flt = compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO"))
    status, res = run_filtered(flt, mkdir_in(tmp_path, "d"))
    assert os.WIFEXITED(status) and res == errno.EPERM
    assert not (tmp_path / "d").exists()


def test_errno_ret(tmp_path: Path) -> None:
    flt = compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO", errnoRet=99))
    _, res = run_filtered(flt, mkdir_in(tmp_path, "d"))
    assert res == 99


def test_default_allow_lets_other_syscalls_through(tmp_path: Path) -> None:
    flt = compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO"))
    (tmp_path / "f").write_text("x")
    _, res = run_filtered(flt, errno_of(lambda: os.rename(tmp_path / "f", tmp_path / "g")))
    assert res == 0
    assert (tmp_path / "g").exists()


@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason="podman's profile is not installed")
def test_default_errno_ret(tmp_path: Path) -> None:
    # Allow what a Python child needs (podman's allow-list) except mkdir/mkdirat,
    # which are allowed only for modes other than 0o700; the rest gets the default.
    allow = podman_to_oci(PODMAN_PROFILE, PODMAN_DEFAULT_CAPS)["syscalls"][1]["names"]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 42,
        "syscalls": [
            {
                "names": [n for n in allow if n not in ("mkdir", "mkdirat")],
                "action": "SCMP_ACT_ALLOW",
            },
            {
                "names": ["mkdir"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_NE"}],
            },
            {
                "names": ["mkdirat"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_NE"}],
            },
        ],
    }
    flt = compile_filter(profile)
    assert run_filtered(flt, mkdir_in(tmp_path, "a", 0o700))[1] == 42
    assert run_filtered(flt, mkdir_in(tmp_path, "b", 0o755))[1] == 0


def test_masked_eq(tmp_path: Path) -> None:
    # Deny directories whose owner bits are all set: (mode & 0o700) == 0o700.
    cmp = {"value": 0o700, "valueTwo": 0o700, "op": "SCMP_CMP_MASKED_EQ"}
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["mkdir"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 77,
                "args": [{"index": 1, **cmp}],
            },
            {
                "names": ["mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 77,
                "args": [{"index": 2, **cmp}],
            },
        ],
    }
    flt = compile_filter(profile)
    assert run_filtered(flt, mkdir_in(tmp_path, "a", 0o755))[1] == 77
    assert run_filtered(flt, mkdir_in(tmp_path, "b", 0o700))[1] == 77
    assert run_filtered(flt, mkdir_in(tmp_path, "c", 0o500))[1] == 0
    assert run_filtered(flt, mkdir_in(tmp_path, "d", 0o055))[1] == 0


def test_args_on_different_indexes_are_anded(tmp_path: Path) -> None:
    dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        profile = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {
                    "names": ["mkdirat"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 55,
                    "args": [
                        {"index": 0, "value": dirfd, "op": "SCMP_CMP_EQ"},
                        {"index": 2, "value": 0o711, "op": "SCMP_CMP_EQ"},
                    ],
                }
            ],
        }
        flt = compile_filter(profile)

        def at(name: str, mode: int) -> Callable[[], int]:
            return errno_of(lambda: os.mkdir(name, mode, dir_fd=dirfd))

        assert run_filtered(flt, at("a", 0o711))[1] == 55
        assert run_filtered(flt, at("b", 0o755))[1] == 0
    finally:
        os.close(dirfd)


def test_args_on_same_index_become_separate_rules(tmp_path: Path) -> None:
    # runc: two comparisons on one argument cannot be ANDed by libseccomp, so
    # each becomes its own rule and either one matching triggers the action.
    def two(index: int) -> list[dict[str, Any]]:
        return [
            {"index": index, "value": 0o711, "op": "SCMP_CMP_EQ"},
            {"index": index, "value": 0o722, "op": "SCMP_CMP_EQ"},
        ]

    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 66, "args": two(1)},
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 66, "args": two(2)},
        ],
    }
    flt = compile_filter(profile)
    assert run_filtered(flt, mkdir_in(tmp_path, "a", 0o711))[1] == 66
    assert run_filtered(flt, mkdir_in(tmp_path, "b", 0o722))[1] == 66
    assert run_filtered(flt, mkdir_in(tmp_path, "c", 0o733))[1] == 0


def test_trace_without_tracer_is_enosys(tmp_path: Path) -> None:
    # With no tracer attached the kernel fails a SECCOMP_RET_TRACE syscall with ENOSYS.
    flt = compile_filter(deny_mkdir(action="SCMP_ACT_TRACE", errnoRet=5))
    assert run_filtered(flt, mkdir_in(tmp_path, "d"))[1] == errno.ENOSYS


def test_kill_process(tmp_path: Path) -> None:
    flt = compile_filter(deny_mkdir(action="SCMP_ACT_KILL_PROCESS"))
    status, res = run_filtered(flt, mkdir_in(tmp_path, "d"))
    assert res is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_unknown_syscall_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyoci"):
        flt = compile_filter(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
                ],
            }
        )
    assert "no_such_syscall" in caplog.text
    assert run_filtered(flt, mkdir_in(tmp_path, "d"))[1] == errno.EPERM


def test_rule_equal_to_default_is_skipped() -> None:
    # libseccomp refuses these with EACCES; runc silently drops them.
    compile_filter(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}],
        }
    )
    compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}
            ],
        }
    )
    compile_filter(
        {
            "defaultAction": "SCMP_ACT_KILL",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL_THREAD"}],
        }
    )
    # A different errno is a different action and is kept.
    flt = compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}],
        }
    )
    base = compile_filter({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []})
    assert flt.instructions > base.instructions


def test_architectures_add_code() -> None:
    native = compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO"))
    multi = compile_filter(
        {
            **deny_mkdir(action="SCMP_ACT_ERRNO"),
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        }
    )
    assert multi.instructions > native.instructions


# --- flags and notify ----------------------------------------------------------------


def test_flags() -> None:
    flt = compile_filter(
        {
            **deny_mkdir(action="SCMP_ACT_ERRNO"),
            "flags": [
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            ],
        }
    )
    assert flt.flags == (
        lib.SECCOMP_FILTER_FLAG_TSYNC
        | lib.SECCOMP_FILTER_FLAG_LOG
        | lib.SECCOMP_FILTER_FLAG_SPEC_ALLOW
    )
    _, res = run_filtered(flt, lambda: 0)
    assert res == 0
    # WAIT_KILLABLE_RECV means nothing without a listener, and is dropped.
    flt = compile_filter(
        {**deny_mkdir(action="SCMP_ACT_ERRNO"), "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}
    )
    assert flt.flags == 0


def test_notify() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "meta",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    flt = compile_filter(profile)
    assert flt.flags & lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
    # The kernel refuses TSYNC with NEW_LISTENER; it is dropped.
    assert not flt.flags & lib.SECCOMP_FILTER_FLAG_TSYNC
    if lib.pyoci_seccomp_flag_supported(
        lib.SECCOMP_FILTER_FLAG_NEW_LISTENER | lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    ):
        assert flt.flags & lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    assert flt.listener_path == "/run/agent.sock"
    assert flt.listener_metadata == "meta"

    # Loading it hands back a listener fd.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            fd = lib.pyoci_seccomp_load(ffi.from_buffer(flt.bpf), flt.instructions, flt.flags)
            os.write(w, struct.pack("i", fd if fd >= 0 else -ffi.errno))
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 4)
    os.close(r)
    os.waitpid(pid, 0)
    assert struct.unpack("i", data)[0] > 2


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"syscalls": []}, f"{F}.defaultAction: required"),
        ({"defaultAction": "SCMP_ACT_FOO"}, f"{F}.defaultAction: unknown action SCMP_ACT_FOO"),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["c"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["d"], "action": "SCMP_ACT_FOO"},
                ],
            },
            f"{F}.syscalls[3].action: unknown action SCMP_ACT_FOO",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["mkdir"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}],
                    }
                ],
            },
            f"{F}.syscalls[0].args[0].op: unknown operator SCMP_CMP_FOO",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["mkdir"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            f"{F}.syscalls[0].args[0].index: must be 0..5, got 6",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]},
            f"{F}.architectures[0]: unknown architecture SCMP_ARCH_FOO",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FOO"],
            },
            f"{F}.flags[1]: unknown flag SECCOMP_FILTER_FLAG_FOO",
        ),
        (
            {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"},
            f"{F}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
            },
            f"{F}.listenerPath: required when a rule uses SCMP_ACT_NOTIFY",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 3}],
            },
            f"{F}.syscalls[0].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, "
            "not SCMP_ACT_KILL",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 3},
            f"{F}.defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, "
            "not SCMP_ACT_ALLOW",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}],
            },
            f"{F}.syscalls[0].names: must be a non-empty list of syscall names",
        ),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
            f"{F}.defaultErrnoRet: must be an integer in 0..65535, got -1",
        ),
    ],
)
def test_errors(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        compile_filter(profile)
    assert str(exc.value) == message


def test_arch_too_new_for_libseccomp() -> None:
    if lib.seccomp_arch_resolve_name(b"loongarch64"):
        pytest.skip("this libseccomp knows loongarch64")
    with pytest.raises(SpecError) as exc:
        compile_filter(
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_LOONGARCH64"]}
        )
    assert str(exc.value) == (
        f"{F}.architectures[0]: SCMP_ARCH_LOONGARCH64 is not supported by libseccomp "
        f"{seccomp.libseccomp_version()}"
    )


# --- cache ---------------------------------------------------------------------------


def test_cache_hit_skips_libseccomp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    profile = deny_mkdir(action="SCMP_ACT_ERRNO", errnoRet=99)
    first = compile_filter(profile, cache_dir=str(cache))
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".bpf"
    assert entries[0].read_bytes() == first.bpf

    def boom(_profile: object) -> bytes:
        raise AssertionError("compiled despite a cache entry")

    monkeypatch.setattr(seccomp, "_compile", boom)
    # Key order does not matter: the key is over canonical JSON.
    again = compile_filter(dict(reversed(list(profile.items()))), cache_dir=str(cache))
    assert again == first
    # A different profile misses.
    with pytest.raises(AssertionError):
        compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO", errnoRet=98), cache_dir=str(cache))


def test_cache_still_validates(tmp_path: Path) -> None:
    profile = {**deny_mkdir(action="SCMP_ACT_ERRNO"), "flags": ["SECCOMP_FILTER_FLAG_FOO"]}
    for _ in range(2):
        with pytest.raises(SpecError):
            compile_filter(profile, cache_dir=str(tmp_path))


def test_corrupt_cache_entry_is_recompiled(tmp_path: Path) -> None:
    profile = deny_mkdir(action="SCMP_ACT_ERRNO")
    good = compile_filter(profile, cache_dir=str(tmp_path))
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(b"short")
    assert compile_filter(profile, cache_dir=str(tmp_path)) == good
    assert entry.read_bytes() == good.bpf


def test_foreign_writable_cache_entry_is_ignored(tmp_path: Path) -> None:
    profile = deny_mkdir(action="SCMP_ACT_ERRNO")
    good = compile_filter(profile, cache_dir=str(tmp_path))
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(b"\0" * 8)
    entry.chmod(0o666)
    assert compile_filter(profile, cache_dir=str(tmp_path)) == good


def test_compiling_touches_nothing_in_this_process() -> None:
    # Export only: neither no_new_privs nor a filter may land on the caller.
    compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO"))
    status = Path("/proc/self/status").read_text()
    assert "\nNoNewPrivs:\t0\n" in status
    assert "\nSeccomp:\t0\n" in status


def test_cache_write_errors_are_ignored(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    flt = compile_filter(deny_mkdir(action="SCMP_ACT_ERRNO"), cache_dir=str(blocker / "sub"))
    assert flt.instructions > 0


# --- the -ENOSYS stub in front of libseccomp's program ---------------------------------

_ENOSYS_RET = struct.pack("=HBBI", 0x06, 0, 0, 0x00050000 | errno.ENOSYS)


def _allow_read(default: str, **extra: Any) -> dict[str, Any]:
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}], **extra}


def _has_stub(sc: dict[str, Any]) -> bool:
    stub = seccomp._enosys_stub(seccomp._parse(sc))
    assert compile_filter(sc).bpf.startswith(stub)
    return bool(stub) and stub.endswith(_ENOSYS_RET)


@pytest.mark.parametrize("default", ["SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_enosys_stub_for_restrictive_defaults(default: str) -> None:
    assert _has_stub(_allow_read(default))


@pytest.mark.parametrize(("default", "extra"), [
    ("SCMP_ACT_ALLOW", {}), ("SCMP_ACT_LOG", {}), ("SCMP_ACT_TRACE", {}),
    ("SCMP_ACT_ERRNO", {"defaultErrnoRet": errno.ENOSYS}),
    ("SCMP_ACT_ERRNO", {"architectures": []}),  # runc: no listed arch, no stub
])
def test_no_enosys_stub(default: str, extra: dict[str, Any]) -> None:
    sc = _allow_read(default, **extra)
    if default == "SCMP_ACT_ALLOW":
        sc["syscalls"][0]["action"] = "SCMP_ACT_ERRNO"
    assert not _has_stub(sc)


def test_enosys_stub_limits_are_the_highest_named_syscalls() -> None:
    """x86_64: write is 1; i386: write is 4. Each arch is compared with its own limit."""
    bpf = compile_filter(_allow_read("SCMP_ACT_ERRNO")).bpf
    insns = [struct.unpack_from("=HBBI", bpf, i * 8) for i in range(16)]
    jgt = [k for code, _, _, k in insns if code == 0x25]
    assert sorted(jgt)[:2] == [1, 4], insns
