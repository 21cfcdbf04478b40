"""Masked and read-only /proc and /sys paths can't be undone without CAP_SYS_ADMIN.

runc's default config masks /proc/kcore, /proc/keys, /proc/timer_list, /sys/firmware
(and more) and makes /proc/sys, /proc/sysrq-trigger read-only. Inside a container
with the default capabilities, ``umount`` and mounting over them fail with EPERM
and writes fail. See SECURITY.md, "Masking".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _sh(run_probe: Any, make_bundle: Any, pyoci_root: Path, script: str,
        **kw: Any) -> tuple[int, str]:
    import helpers

    bundle = make_bundle(["/bin/sh", "-c", script], **kw)
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("path", ["/proc/timer_list", "/proc/keys", "/proc/kcore",
                                  "/sys/firmware"])
def test_masked_path_stays_masked(path: str, run_probe: Any, make_bundle: Any,
                                  pyoci_root: Path) -> None:
    if path == "/proc/kcore" and not Path(path).exists():
        path = "/proc/timer_list"  # kcore is optional; timer_list is always there
    rc, out = _sh(run_probe, make_bundle, pyoci_root,
                  f"umount {path}; echo umount=$?; umount -l {path}; echo lazy=$?; "
                  f"mount -t tmpfs none {path}; echo mount=$?; "
                  f"mount --bind /proc/self/status {path}; echo bind=$?; "
                  f"echo size=$(wc -c < {path} 2>/dev/null || ls -A {path} | wc -l)")
    assert rc == 0, out
    for step in ("umount", "lazy", "mount", "bind"):
        assert f"{step}=0" not in out, out
    assert "Operation not permitted" in out, out
    assert "size=0" in out.split(), f"{path} is not empty:\n{out}"


def test_proc_sys_read_only(make_bundle: Any, run_probe: Any, pyoci_root: Path) -> None:
    res = run_probe("write", "/proc/sys/kernel/hostname", "pwned")
    assert res.returncode != 0
    assert res.stderr.split() in (["errno=30"], ["errno=1"]), res.stderr  # EROFS, EPERM
    _, out = _sh(run_probe, make_bundle, pyoci_root,
                 "mount -o remount,rw /proc/sys; echo remount=$?; "
                 "umount /proc/sys; echo umount=$?")
    assert "remount=0" not in out and "umount=0" not in out, out


def test_sysrq_trigger_read_only(run_probe: Any) -> None:
    # "h" only prints help to the kernel log, should the write ever get through.
    res = run_probe("write", "/proc/sysrq-trigger", "h")
    assert res.returncode != 0
    # EROFS/EPERM; ENOENT only where the host kernel has no sysrq-trigger at all.
    allowed = [["errno=30"], ["errno=1"]]
    if not Path("/proc/sysrq-trigger").exists():
        allowed.append(["errno=2"])
    assert res.stderr.split() in allowed, res.stderr
