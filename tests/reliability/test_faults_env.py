"""A hostile environment: full disk, read-only --root, missing controller, refused mounts.

Each must give one clear error line naming the thing that failed, a non-zero
exit, and a rollback that leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
import reliability_helpers as rh


@pytest.fixture
def tmpfs_root() -> Iterator[Path]:
    """A 64 KiB tmpfs to use as --root; unmounted (lazily) afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pyoci-tmpfs-root-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], check=False)
        for cid in rh.state_dirs(path):
            rh.force_delete(cid, path)
        subprocess.run(["umount", "-l", str(path)], check=False)
        os.rmdir(path)


def _fill(path: Path, leave_pages: int = 0) -> None:
    """Fill the tmpfs, then free ``leave_pages`` pages again."""
    filler = path / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    if leave_pages:
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - leave_pages * 4096))


def _assert_clean_failure(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert rh.error_problems(res) == [], rh.describe(res)
    line = res.stderr.strip().lower()
    assert any(n.lower() in line for n in needles), \
        f"none of {needles} in the error\n{rh.describe(res)}"


@pytest.mark.parametrize("leave_pages", [0, 1, 2], ids=["full", "one-page-free", "two-free"])
def test_full_disk_under_root(leave_pages: int, tmpfs_root: Path, make_bundle: Any) -> None:
    bundle = make_bundle(rh.CREATE_ARGS)
    # the store's own files first (schema cache), so the fill hits the container's
    warm = rh.new_id("warm")
    rh.pyoci("create", "--bundle", bundle, warm, root=tmpfs_root, check=True)
    rh.force_delete(warm, tmpfs_root)
    _fill(tmpfs_root, leave_pages)
    cid = rh.new_id("full")
    snap = rh.Snapshot(tmpfs_root)
    res = rh.pyoci("create", "--bundle", bundle, cid, root=tmpfs_root)
    if res.returncode == 0:  # it fitted after all: then it must work and delete cleanly
        assert rh.force_delete(cid, tmpfs_root).returncode == 0
    else:
        _assert_clean_failure(res, "no space left on device")
        # and it says where: a bare "no space left on device" leaves the user guessing
        assert str(tmpfs_root) in res.stderr, rh.describe(res)
    assert snap.problems(ids=[cid], bundles=[bundle]) == []


def test_read_only_root(tmpfs_root: Path, make_bundle: Any) -> None:
    """create fails on a read-only --root; a container made before it stays manageable."""
    bundle = make_bundle(["/probe", "sleep", "inf"])
    before = rh.new_id("ro")
    rh.pyoci("create", "--bundle", bundle, before, root=tmpfs_root, check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs_root)], check=True)
    cid = rh.new_id("ro")
    snap = rh.Snapshot(tmpfs_root, needles=[cid])
    res = rh.pyoci("create", "--bundle", bundle, cid, root=tmpfs_root)
    _assert_clean_failure(res, "read-only file system")
    assert rh.state_dirs(tmpfs_root) == [before]
    assert helpers.state(before, tmpfs_root)["status"] == "created"
    res = rh.pyoci("delete", "--force", before, root=tmpfs_root)
    if res.returncode != 0:
        _assert_clean_failure(res, "read-only file system")
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs_root)], check=True)
    rh.force_delete(before, tmpfs_root)
    assert snap.problems(ids=[cid, before], bundles=[bundle]) == []


def test_missing_cgroup_controller(make_bundle: Any, pyoci_root: Path) -> None:
    """network.classID needs net_cls, which this host doesn't mount: an error, not a no-op."""
    assert not any(Path(p).is_dir() for p in ("/sys/fs/cgroup/net_cls",
                                              "/sys/fs/cgroup/net_cls,net_prio")), \
        "this host mounts net_cls: the test needs a host without it"
    bundle = make_bundle(rh.CREATE_ARGS,
                         **{"linux.resources.network": {"classID": 1048577}})
    cid = rh.new_id("netcls")
    snap = rh.Snapshot(pyoci_root)
    res = rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root)
    if res.returncode == 0:
        rh.force_delete(cid, pyoci_root)
    _assert_clean_failure(res, "net_cls", "classid")
    assert snap.problems(ids=[cid], bundles=[bundle]) == []


@pytest.mark.parametrize("mount", [
    {"destination": "/mnt/nfs", "type": "nfs", "source": "192.0.2.1:/export",
     "options": ["ro", "nolock", "soft", "timeo=1", "retrans=0"]},
    {"destination": "/mnt/missing", "type": "bind", "source": "/nonexistent/source/dir",
     "options": ["rbind"]},
    {"destination": "/mnt/badopt", "type": "tmpfs", "source": "tmpfs",
     "options": ["size=not-a-size"]},
    {"destination": "/mnt/badfs", "type": "no-such-filesystem", "source": "none"},
], ids=["nfs", "bind-missing-source", "refused-option", "unknown-fstype"])
def test_refused_mount(mount: dict[str, Any], make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(rh.CREATE_ARGS, mutate=lambda c: c["mounts"].append(mount))
    cid = rh.new_id("mnt")
    snap = rh.Snapshot(pyoci_root)
    res = rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, timeout=90)
    if res.returncode == 0:
        rh.force_delete(cid, pyoci_root)
    _assert_clean_failure(res, mount["destination"], mount["source"])
    assert snap.problems(ids=[cid], bundles=[bundle]) == []
