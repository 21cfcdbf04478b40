"""Namespaces: the clone flag of each spec type, joining by path, unsharing."""

from __future__ import annotations

import os

from pyoci._native import check, lib

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "time": CLONE_NEWTIME,
}
# The name of each type under /proc/<pid>/ns/.
PROC_NAMES = {
    "mount": "mnt", "cgroup": "cgroup", "uts": "uts", "ipc": "ipc", "user": "user",
    "pid": "pid", "network": "net", "time": "time",
}
# Join order: the user namespace first, so the others are joined with its privileges;
# the mount namespace last, so /proc paths of the others still resolve.
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount"]


def open_ns(path: str, nstype: str) -> int:
    """Open a namespace file and check that it is a namespace of ``nstype``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    got = lib.pyoci_ns_type(fd)
    if got < 0 or got != FLAGS[nstype]:
        os.close(fd)
        raise OSError(22, f"not a {nstype} namespace", path)
    return fd


def join(fd: int, nstype: str, path: str) -> None:
    check(lib.pyoci_setns(fd, FLAGS[nstype]), path)


def unshare(flags: int) -> None:
    check(lib.pyoci_unshare(flags))


def become_root() -> None:
    """Take uid/gid 0 of the user namespace just entered, as runc does.

    ``setns``/``unshare`` keep the host ids, which the namespace may not map:
    what the process makes (a pty, the cwd) would belong to nobody. EINVAL
    means 0 isn't mapped there: stay as we are.
    """
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as e:
        if e.errno != 22:  # EINVAL
            raise
