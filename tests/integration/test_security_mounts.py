"""CVE-2021-30465 class: a symlink in the image must not move a mount out of the rootfs.

Each mount below binds a host directory holding a marker file. Wherever the
destination's symlinks point (``/``, ``../../..``, an absolute host path), the
mount must land *inside* the rootfs: the container then finds the marker at
the in-root resolution of the destination, and nothing is mounted on, or
written to, the host path. The race test swaps a directory for such a symlink
from a host thread while ``run`` is resolving it. See SECURITY.md, "Symlinks
in mount destinations".
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_NOREPLACE = -100, 1


def _rename_noreplace(old: Path, new: Path) -> None:
    """rename(2) that never replaces: replacing a directory would unmount whatever the
    container mounted on it, and that must not be mistaken for a mount that escaped."""
    if _libc.renameat2(AT_FDCWD, bytes(old), AT_FDCWD, bytes(new), RENAME_NOREPLACE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(old))


def _source(tmp_path: Path, name: str) -> Path:
    src = tmp_path / f"src-{name}"
    src.mkdir()
    (src / f"MARK-{name}").write_text(name)
    return src


def _bind(src: Path, dest: str) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": str(src), "options": ["rbind", "ro"]}


def _host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def _assert_host_untouched(target: Path, before: str) -> None:
    assert not ch.is_mountpoint(target), f"{target} became a mount point on the host"
    assert list(target.iterdir()) == [], list(target.iterdir())
    assert str(target) not in _host_mounts().replace(before, "")


def test_symlink_destinations_stay_in_rootfs(make_bundle: Any, pyoci_root: Path,
                                             tmp_path: Path) -> None:
    host = tmp_path / "host-target"
    host.mkdir()
    links = {"up": "/", "dotdot": "../../../../../../../../..", "abs": str(host)}
    dests = {"up": f"/up{host}", "dotdot": f"/dotdot{host}", "abs": "/abs"}
    mounts = helpers.bundle_config(["x"])["mounts"] + [
        _bind(_source(tmp_path, name), dests[name]) for name in links]
    # All three resolve, inside the root, to the same directory: <rootfs>/<host>.
    bundle = make_bundle(["/probe", "ls", str(host)], mounts=mounts)
    for name, target in links.items():
        (bundle / "rootfs" / name).symlink_to(target)
    before = _host_mounts()
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    _assert_host_untouched(host, before)
    assert res.returncode == 0, res.stderr
    # The mounts stack on <rootfs>/<host>; the last one is on top.
    assert res.stdout.split() == ["MARK-abs"], res.stdout


def test_symlink_destination_created_inside(make_bundle: Any, pyoci_root: Path,
                                            tmp_path: Path) -> None:
    """A dangling symlink to a host path that doesn't exist yet: created in the root."""
    host = tmp_path / "not-yet"
    mounts = helpers.bundle_config(["x"])["mounts"] + [_bind(_source(tmp_path, "d"), "/dang")]
    bundle = make_bundle(["/probe", "ls", str(host)], mounts=mounts)
    (bundle / "rootfs" / "dang").symlink_to(host)
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    assert not host.exists(), "the runtime created a directory on the host"
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["MARK-d"]


def test_swap_race(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    """A host thread renames a real dir and a symlink to a host path in and out of
    the destination while ``run`` resolves it, 30 times. The mount lands in the
    dir or at the symlink's in-root target, never on the host."""
    host = tmp_path / "host-race"
    host.mkdir()
    mounts = helpers.bundle_config(["x"])["mounts"] + [_bind(_source(tmp_path, "r"), "/swap")]
    # mountinfo lists only mounts reachable from the process's root: one that went
    # to a host path (in the container's mount namespace) is gone after pivot_root.
    bundle = make_bundle(["/bin/cat", "/proc/self/mountinfo"], mounts=mounts)
    rootfs = bundle / "rootfs"
    (rootfs / "swap").mkdir()
    (rootfs / "swap.link").symlink_to(host)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            try:
                _rename_noreplace(rootfs / "swap", rootfs / "swap.dir")
                _rename_noreplace(rootfs / "swap.link", rootfs / "swap")
                _rename_noreplace(rootfs / "swap", rootfs / "swap.link")
                _rename_noreplace(rootfs / "swap.dir", rootfs / "swap")
                swaps += 1
                time.sleep(0.0005)  # let the test's own thread run, too
            except OSError:
                # The runtime made its own /swap meanwhile: start over with that one.
                try:
                    _rename_noreplace(rootfs / "swap.dir", rootfs / f"swap.old{swaps}")
                except OSError:
                    pass
                if not (rootfs / "swap.link").is_symlink():
                    try:
                        (rootfs / "swap.link").symlink_to(host)
                    except OSError:
                        pass

    before = _host_mounts()
    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    results = []
    try:
        for _ in range(30):
            results.append(helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(),
                                             root=pyoci_root))
            _assert_host_untouched(host, before)
    finally:
        stop.set()
        thread.join()
    assert swaps > 30, swaps
    # Failing cleanly (the path vanished mid-resolution) is safe; succeeding is
    # safe only if the mount is inside the container's tree.
    ok = [res for res in results if res.returncode == 0]
    assert ok, [res.stderr for res in results]
    for res in ok:
        roots = [line.split()[3] for line in res.stdout.splitlines()]
        assert str(tmp_path / "src-r") in roots, res.stdout
