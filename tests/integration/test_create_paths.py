"""create: linux.maskedPaths and linux.readonlyPaths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helpers
import pytest

pytestmark = pytest.mark.integration

EROFS = "errno=30\n"


def _run(bundle: Path, root: Path) -> Any:
    return helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=root)


def _sh(make_bundle: Any, script: str, **kw: Any) -> Path:
    return make_bundle(["/bin/sh", "-c", script], **kw)


def test_masked_file_reads_empty(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = _sh(make_bundle, "/probe cat /etc/secret; echo end",
                 **{"linux.maskedPaths": ["/etc/secret"]})
    (bundle / "rootfs" / "etc" / "secret").write_text("top secret\n")
    res = _run(bundle, pyoci_root)
    assert (res.returncode, res.stdout) == (0, "end\n"), res.stderr


def test_masked_directory_is_empty_readonly_tmpfs(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = _sh(make_bundle, "/probe ls /hidden; /probe mounts; /probe mkdir /hidden/x",
                 **{"linux.maskedPaths": ["/hidden"], "root.readonly": False})
    hidden = bundle / "rootfs" / "hidden"
    hidden.mkdir()
    (hidden / "inside").write_text("x")
    res = _run(bundle, pyoci_root)
    assert (res.returncode, res.stderr) == (1, EROFS)
    mounts = {m.target: m for m in helpers.parse_mounts(res.stdout)}
    assert "inside" not in res.stdout
    assert mounts["/hidden"].fstype == "tmpfs"
    assert "ro" in mounts["/hidden"].options


def test_missing_masked_path_is_ignored(run_probe: Any) -> None:
    res = run_probe("echo", "ok", **{"linux.maskedPaths": ["/does/not/exist"]})
    assert (res.returncode, res.stdout) == (0, "ok\n"), res.stderr


def test_default_masked_paths(run_probe: Any) -> None:
    assert run_probe("cat", "/proc/timer_list", check=True).stdout == ""
    mounts = {m.target: m for m in helpers.parse_mounts(run_probe("mounts", check=True).stdout)}
    assert mounts["/sys/firmware"].fstype == "tmpfs" and "ro" in mounts["/sys/firmware"].options
    assert mounts["/proc/acpi"].fstype == "tmpfs" and "ro" in mounts["/proc/acpi"].options


def test_readonly_path(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = _sh(make_bundle, "/probe mkdir /writable/ok && /probe mkdir /frozen/no",
                 **{"linux.readonlyPaths": ["/frozen"], "root.readonly": False})
    (bundle / "rootfs" / "writable").mkdir()
    (bundle / "rootfs" / "frozen").mkdir()
    res = _run(bundle, pyoci_root)
    assert (res.returncode, res.stderr) == (1, EROFS)
    assert (bundle / "rootfs" / "writable" / "ok").is_dir()
    assert not (bundle / "rootfs" / "frozen" / "no").exists()


def test_proc_sys_readonly_by_default(run_probe: Any) -> None:
    res = run_probe("write", "/proc/sys/net/ipv4/ip_forward", "1")
    assert (res.returncode, res.stderr) == (1, EROFS)
    # Other parts of /proc stay writable: it is a read-only *path*, not a read-only /proc.
    res = run_probe("write", "/proc/self/oom_score_adj", "5")
    assert (res.returncode, res.stderr) == (0, "")
