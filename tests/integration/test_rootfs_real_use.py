"""The rootfs under real use: image symlinks at /proc or /sys, a read-only /dev,
--no-pivot's old root, and a cwd the image lacks. Each seen with a busybox bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


def _run(bundle: Path, root: Path, *extra: str,
         check: bool = True) -> Any:
    return helpers.run_pyoci("run", "--bundle", bundle, *extra, helpers.unique_id(),
                             root=root, check=check)


# -- 1. /proc or /sys a symlink in the image ------------------------------------------------

@pytest.mark.parametrize("fs", ["proc", "sys"])
@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_proc_sys_symlink_refused(make_bundle: Any, pyoci_root: Path, fs: str,
                                  style: str) -> None:
    """runc: proc and sysfs go only on an ordinary directory, never through a symlink."""
    bundle = make_bundle(["/probe", "id"])
    rootfs = bundle / "rootfs"
    (rootfs / "elsewhere").mkdir()
    os.rmdir(rootfs / fs)
    os.symlink("/elsewhere" if style == "absolute" else "elsewhere", rootfs / fs)
    cid = helpers.unique_id()
    res = helpers.run_pyoci("create", "--bundle", bundle, cid, root=pyoci_root)
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    kind = "proc" if fs == "proc" else "sysfs"
    assert len(lines) == 1, res.stderr
    # runc: error mounting "proc" to rootfs at "/proc": filesystem "proc" must be mounted
    # on ordinary directory (its log line escapes the quotes)
    line = lines[0].replace('\\"', '"')
    assert f'filesystem "{kind}" must be mounted on ordinary directory' in line, lines
    assert f'"/{fs}"' in line, lines
    assert "Traceback" not in res.stderr
    # No leftovers: no state, no container, nothing made at the symlink's target.
    assert helpers.run_pyoci("list", "-q", root=pyoci_root, check=True).stdout == ""
    assert ch.container_dirs(pyoci_root) == []
    assert list((rootfs / "elsewhere").iterdir()) == []
    assert not any(Path(f"/sys/fs/cgroup/{c}/pyoci/{cid}").exists()
                   for c in ("memory", "pids", "cpu", "freezer"))


# -- 2. read-only /dev, and read-only tmpfs with submounts -----------------------------------

def _dev_ro(cfg: dict[str, Any]) -> None:
    for m in cfg["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = [*m["options"], "ro"]


def test_readonly_dev(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/bin/sh", "-c",
                          "/probe mounts; echo x > /dev/null && echo null-ok;"
                          " /probe cat /dev/zero | head -c 4 | wc -c;"
                          " /probe readlink /dev/ptmx; /probe mkdir /dev/newdir"],
                         mutate=_dev_ro)
    res = _run(bundle, pyoci_root, check=False)
    assert res.returncode == 1 and res.stderr == "errno=30\n", res  # mkdir: EROFS
    lines = res.stdout.splitlines()
    assert lines[-3:] == ["null-ok", "4", "pts/ptmx"], lines
    mounts = {m.target: m for m in helpers.parse_mounts("\n".join(lines[:-3]))}
    dev = mounts["/dev"]
    assert dev.fstype == "tmpfs" and dev.options >= {"ro", "nosuid"}, dev
    # the deferred remount kept the tmpfs' own options
    assert {"mode=755", "size=65536k"} <= dev.super_options, dev
    assert mounts["/dev/pts"].fstype == "devpts"
    assert mounts["/dev/shm"].fstype == "tmpfs"
    assert mounts["/dev/mqueue"].fstype == "mqueue"


def test_readonly_tmpfs_with_submount(make_bundle: Any, pyoci_root: Path) -> None:
    """The ro remount comes after the submount's mountpoint was made in the tmpfs.

    (runc 1.1.5 does the same.)
    """
    extra = [
        {"destination": "/mnt/ro", "type": "tmpfs", "source": "tmpfs",
         "options": ["ro", "nosuid", "mode=755"]},
        {"destination": "/mnt/ro/sub", "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=1777"]},
    ]
    bundle = make_bundle(["/bin/sh", "-c",
                          "/probe mounts; /probe mkdir /mnt/ro/sub/ok && echo sub-rw;"
                          " /probe mkdir /mnt/ro/no"],
                         mutate=lambda c: c["mounts"].extend(extra))
    res = _run(bundle, pyoci_root, check=False)
    assert res.returncode == 1 and res.stderr == "errno=30\n", res
    lines = res.stdout.splitlines()
    assert lines[-1] == "sub-rw", lines
    mounts = {m.target: m for m in helpers.parse_mounts("\n".join(lines[:-1]))}
    assert mounts["/mnt/ro"].options >= {"ro", "nosuid"}, mounts["/mnt/ro"]
    assert "rw" in mounts["/mnt/ro/sub"].options, mounts["/mnt/ro/sub"]


# -- 3. --no-pivot: the old root's procfs and sysfs must not let a new proc/sysfs in ---------

# busybox's own words when mount(2) says EPERM
_EPERM = "mount: permission denied (are you root?)"


@pytest.mark.parametrize("pivot", [(), ("--no-pivot",)], ids=["pivot", "no-pivot"])
@pytest.mark.parametrize(("fs", "flags", "where"),
                         [("proc", "-mrpf", "/proc"), ("sysfs", "-mrnf", "/sys")])
def test_new_proc_sysfs_mount_denied_in_userns(make_bundle: Any, pyoci_root: Path,
                                               pivot: tuple[str, ...], fs: str,
                                               flags: str, where: str) -> None:
    """The kernel allows a fresh proc/sysfs in a user namespace only if a fully visible
    one exists in the mount namespace: the host's, under --no-pivot's old root, must not.

    As uid 1000: mapping uid 0 into a user namespace needs CAP_SETFCAP, which the
    container lacks, while mapping one's own uid needs nothing.
    """
    script = (f"unshare {flags} /bin/sh -c 'echo entered; "
              f"mount -t {fs} none {where}; echo rc=$?' 2>&1")
    bundle = make_bundle(["/bin/sh", "-c", script],
                         **{"process.user.uid": 1000, "process.user.gid": 1000})
    res = _run(bundle, pyoci_root, *pivot)
    assert res.stdout.splitlines() == ["entered", _EPERM, "rc=1"], res


def test_no_pivot_in_user_namespace(open_dir: Path, rootfs_template: Path,
                                    pyoci_root: Path) -> None:
    """In a user namespace the host's procfs is locked and can't be unmounted: it is
    covered instead, and a fresh proc is still refused."""
    ids = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    def userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = ids
        cfg["linux"]["gidMappings"] = ids
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    script = ("unshare -mrpf /bin/sh -c 'echo entered; "
              "mount -t proc none /proc; echo rc=$?' 2>&1")
    cfg = helpers.bundle_config(["/bin/sh", "-c", script], mutate=userns)
    bundle = helpers.write_bundle(open_dir / "bundle", rootfs_template, cfg)
    res = _run(bundle, pyoci_root, "--no-pivot")
    assert res.stdout.splitlines() == ["entered", _EPERM, "rc=1"], res


# -- 4. a cwd that the image lacks -------------------------------------------------------------

@pytest.mark.parametrize("readonly", [False, True], ids=["rw-root", "ro-root"])
def test_missing_cwd_is_created(make_bundle: Any, pyoci_root: Path, readonly: bool) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "/probe cwd; /probe stat /work/a/b; /probe stat /work"],
                         **{"process.cwd": "/work/a/b", "root.readonly": readonly,
                            "process.user.uid": 1000, "process.user.gid": 1000})
    res = _run(bundle, pyoci_root)
    assert res.stdout.splitlines() == [
        "/work/a/b",
        "type=dir mode=0755 uid=0 gid=0 rdev=0:0",
        "type=dir mode=0755 uid=0 gid=0 rdev=0:0",
    ], res
    # Made inside the container's rootfs.
    assert (bundle / "rootfs" / "work" / "a" / "b").is_dir()


def test_cwd_through_symlink_stays_in_rootfs(make_bundle: Any, pyoci_root: Path) -> None:
    """A symlink on the way to a missing cwd is followed inside the rootfs."""
    bundle = make_bundle(["/probe", "cwd"], **{"process.cwd": "/link/x"})
    (bundle / "rootfs" / "target").mkdir()
    os.symlink("/../../../../target", bundle / "rootfs" / "link")
    res = _run(bundle, pyoci_root)
    assert res.stdout == "/target/x\n", res
    assert (bundle / "rootfs" / "target" / "x").is_dir()
