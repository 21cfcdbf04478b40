"""create: root.path, mounts in config order, mount types, symlink escapes, propagation."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


def _mounts(res: subprocess.CompletedProcess[str]) -> list[helpers.Mount]:
    return helpers.parse_mounts(res.stdout)


def _by_target(mounts: list[helpers.Mount]) -> dict[str, helpers.Mount]:
    return {m.target: m for m in mounts}


def _run(bundle: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return helpers.run_pyoci("run", "--bundle", bundle, *extra, helpers.unique_id(),
                             root=root, check=True)


def test_relative_and_absolute_root_path(make_bundle: Any, pyoci_root: Path) -> None:
    rel = make_bundle(["/probe", "cat", "/marker"])
    (rel / "rootfs" / "marker").write_text("relative")
    assert _run(rel, pyoci_root).stdout == "relative"

    absolute = make_bundle(["/probe", "cat", "/marker"])
    # The rootfs lives outside the bundle, so only an absolute path can find it.
    moved = absolute.parent / "elsewhere-rootfs"
    (absolute / "rootfs").rename(moved)
    (moved / "marker").write_text("absolute")
    cfg = json.loads((absolute / "config.json").read_text())
    cfg["root"]["path"] = str(moved)
    (absolute / "config.json").write_text(json.dumps(cfg))
    assert _run(absolute, pyoci_root).stdout == "absolute"


def test_mounts_applied_in_order(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("from host")
    one_file = tmp_path / "one-file"
    one_file.write_text("single file")
    extra = [
        {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=1777", "size=1m"]},
        # Lands inside the tmpfs above, so it only works if that came first.
        {"destination": "/mnt/t/deep/bound", "type": "bind", "source": str(src),
         "options": ["bind"]},
        {"destination": "/etc/one-file", "type": "bind", "source": str(one_file),
         "options": ["bind", "ro"]},
    ]
    bundle = make_bundle(["/bin/sh", "-c",
                          "/probe mounts; /probe stat /mnt/t; /probe cat /mnt/t/deep/bound/hello;"
                          " echo; /probe cat /etc/one-file"],
                         mutate=lambda c: c["mounts"].extend(extra))
    out = _run(bundle, pyoci_root).stdout.splitlines()
    mounts = helpers.parse_mounts("\n".join(out[:-3]))
    targets = [m.target for m in mounts]
    assert targets.index("/mnt/t") < targets.index("/mnt/t/deep/bound")
    t = _by_target(mounts)["/mnt/t"]
    assert t.fstype == "tmpfs" and "size=1024k" in t.super_options, t
    assert out[-3].startswith("type=dir mode=1777 "), out[-3]
    assert out[-2:] == ["from host", "single file"]


def test_ro_bind_is_read_only(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "ro-src"
    src.mkdir()
    bundle = make_bundle(["/probe", "mkdir", "/data/x"], mutate=lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(src), "options": ["bind", "ro"]}))
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    assert (res.returncode, res.stderr) == (1, "errno=30\n")
    assert list(src.iterdir()) == []


@pytest.fixture
def host_tree(tmp_path: Path) -> Iterator[Path]:
    """A host dir with a tmpfs mounted on its ``sub`` child (for bind vs rbind)."""
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(top / "sub")], check=True)
    try:
        (top / "sub" / "in-submount").write_text("x")
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top / "sub")], check=False)


@pytest.mark.parametrize(("option", "visible"), [("bind", False), ("rbind", True)])
def test_bind_vs_rbind(make_bundle: Any, pyoci_root: Path, host_tree: Path,
                       option: str, visible: bool) -> None:
    bundle = make_bundle(["/probe", "ls", "/tree/sub"], mutate=lambda c: c["mounts"].append(
        {"destination": "/tree", "type": "bind", "source": str(host_tree), "options": [option]}))
    out = _run(bundle, pyoci_root).stdout
    assert ("in-submount" in out) is visible, out


@pytest.mark.parametrize("flag", ["shared", "rshared", "slave", "rslave", "private",
                                  "rprivate", "unbindable", "runbindable"])
def test_propagation_flag_options_accepted(make_bundle: Any, pyoci_root: Path, tmp_path: Path,
                                           flag: str) -> None:
    src = tmp_path / "p"
    src.mkdir()
    bundle = make_bundle(["/probe", "mounts"], mutate=lambda c: c["mounts"].append(
        {"destination": "/p", "type": "bind", "source": str(src), "options": ["rbind", flag]}))
    mount = _by_target(_mounts(_run(bundle, pyoci_root)))["/p"]
    if flag.endswith("shared"):
        assert mount.propagation.startswith("shared:"), mount
    elif flag.endswith("slave"):
        # The source has no peers in the container's namespace, and the kernel turns a
        # slave of nothing into a private mount: all we can see is that it isn't shared.
        assert not mount.propagation.startswith("shared:"), mount
    elif flag.endswith("unbindable"):
        assert mount.propagation == "unbindable", mount
    else:
        assert mount.propagation == "private", mount


def test_default_mount_types(run_probe: Any) -> None:
    mounts = _by_target(_mounts(run_probe("mounts", check=True)))
    assert mounts["/proc"].fstype == "proc"
    assert mounts["/sys"].fstype == "sysfs" and "ro" in mounts["/sys"].options
    assert mounts["/dev/pts"].fstype == "devpts"
    assert mounts["/dev/mqueue"].fstype == "mqueue"
    assert mounts["/dev/shm"].fstype == "tmpfs"
    cgroup = [m for t, m in mounts.items() if t.startswith("/sys/fs/cgroup")]
    assert any(m.fstype in ("cgroup", "cgroup2") for m in cgroup), cgroup
    assert all("ro" in m.options for m in cgroup if m.fstype.startswith("cgroup")), cgroup


@pytest.fixture
def host_target() -> Iterator[Path]:
    """An empty, world-visible host dir that a symlink in the image points at."""
    d = Path(tempfile.mkdtemp(prefix="pyoci-escape-"))
    try:
        yield d
    finally:
        subprocess.run(["umount", "-R", "-l", str(d)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(d)], check=False)


@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_symlink_destination_stays_in_rootfs(make_bundle: Any, pyoci_root: Path,
                                             tmp_path: Path, host_target: Path,
                                             style: str) -> None:
    src = tmp_path / "payload"
    src.mkdir()
    (src / "marker").write_text("payload")
    bundle = make_bundle(["/probe", "cat", f"{host_target}/sub/marker"],
                         mutate=lambda c: c["mounts"].append(
                             {"destination": "/evil", "type": "bind", "source": str(src),
                              "options": ["bind"]}))
    rootfs = bundle / "rootfs"
    target = f"{host_target}/sub"
    link = target if style == "absolute" else "../../../../../../../../.." + target
    os.symlink(link, rootfs / "evil")
    res = _run(bundle, pyoci_root)
    # The mount landed on the rootfs' own copy of that path ...
    assert res.stdout == "payload"
    # ... and nothing was created or mounted on the host.
    assert list(host_target.iterdir()) == []
    assert not ch.is_mountpoint(host_target)


@pytest.mark.parametrize(("readonly", "expected"), [(True, (1, "errno=30\n")), (False, (0, ""))])
def test_root_readonly(run_probe: Any, readonly: bool, expected: tuple[int, str]) -> None:
    res = run_probe("mkdir", "/newdir", **{"root.readonly": readonly})
    assert (res.returncode, res.stderr) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("private", "private"), ("rprivate", "private"), ("slave", "not shared"),
    ("rslave", "not shared"), ("shared", "shared:"), ("rshared", "shared:"),
])
def test_rootfs_propagation(run_probe: Any, value: str, expected: str) -> None:
    """The spec: rootfsPropagation sets the propagation of the container's "/" mount.

    A slave of a mount with no peers is private to the kernel, so "slave" can
    only be told from "shared". (runc 1.1.5 leaves "/" private for "shared".)
    """
    mounts = _by_target(_mounts(run_probe("mounts", check=True,
                                          **{"linux.rootfsPropagation": value})))
    prop = mounts["/"].propagation
    if expected == "not shared":
        assert not prop.startswith("shared:"), mounts["/"]
    else:
        assert prop.startswith(expected), mounts["/"]


def test_no_pivot(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "/probe ls / && /probe pid"])
    (bundle / "rootfs" / "only-in-rootfs").write_text("")
    out = _run(bundle, pyoci_root, "--no-pivot").stdout.splitlines()
    assert "only-in-rootfs" in out and "probe" in out
    assert out[-1] == "1"
