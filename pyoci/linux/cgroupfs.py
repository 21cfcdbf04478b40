"""The ``cgroup`` mount type: the container's view of its own cgroups.

With a cgroup namespace each hierarchy is mounted afresh, and the kernel
shows the namespace root; without one, the container's own directory of each
host hierarchy is bind-mounted, so the host's tree stays out of sight.
"""

from __future__ import annotations

import os

from pyoci.linux import mounts as m
from pyoci.linux.rootfs import make_in_root


def host_hierarchies() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of every cgroup mount we can see."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, _src, sopts = [*right.split(), "", "", ""][:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((fields[4], fstype, sopts))
    return out


def own_paths() -> dict[str, str]:
    """Controller list (or "" for v2) -> this process's path, from /proc/self/cgroup."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            paths[ctrls] = path
    return paths


def _controllers(fstype: str, sopts: str) -> str:
    if fstype == "cgroup2":
        return ""
    known = {"rw", "ro", "relatime", "nosuid", "nodev", "noexec", "xattr", "clone_children",
             "noprefix", "cpuset_v2_mode", "favordynmods"}
    return ",".join(o for o in sopts.split(",") if o not in known and not o.startswith(
        "release_agent"))


class CgroupMounter:
    """Called by the rootfs code for each ``type: cgroup`` mount entry."""

    def __init__(self, new_cgroupns: bool) -> None:
        self.new_cgroupns = new_cgroupns
        self.hierarchies = host_hierarchies()

    def __call__(self, rootfd: int, dest: str, fd: int, opts: m.Options) -> None:
        flags = opts.flags & ~(m.MS_REMOUNT | m.MS_RDONLY)
        ro = bool(opts.flags & m.MS_RDONLY)
        v2_root = [h for h in self.hierarchies if h[1] == "cgroup2" and h[0] == "/sys/fs/cgroup"]
        if v2_root:
            self._one(rootfd, dest, "cgroup2", "", flags, ro, "/sys/fs/cgroup")
            return
        m.mount("tmpfs", m.fd_path(fd), "tmpfs", flags, "mode=755")
        paths = own_paths()
        for mountpoint, fstype, sopts in self.hierarchies:
            if not mountpoint.startswith("/sys/fs/cgroup/"):
                continue
            name = mountpoint[len("/sys/fs/cgroup/"):]
            ctrls = _controllers(fstype, sopts)
            sub = f"{dest.rstrip('/')}/{name}"
            self._one(rootfd, sub, fstype, ctrls, flags, ro, mountpoint, paths.get(ctrls, "/"))
        if ro:
            top = make_in_root(rootfd, dest, False)
            try:
                m.mount(None, m.fd_path(top), None, m.MS_REMOUNT | m.MS_RDONLY | flags)
            finally:
                os.close(top)

    def _one(self, rootfd: int, dest: str, fstype: str, ctrls: str, flags: int, ro: bool,
             mountpoint: str, own: str = "/") -> None:
        fd = make_in_root(rootfd, dest, False)
        try:
            target = m.fd_path(fd)
            if self.new_cgroupns:
                m.mount("cgroup", target, fstype, flags | (m.MS_RDONLY if ro else 0),
                        ctrls or None)
            else:
                src = os.path.join(mountpoint, own.lstrip("/"))
                m.mount(src, target, None, m.MS_BIND | m.MS_REC)
                top = make_in_root(rootfd, dest, False)
                try:
                    m.mount(None, m.fd_path(top), None, m.MS_BIND | m.MS_REMOUNT | flags
                            | (m.MS_RDONLY if ro else 0) | m.locked_flags(src))
                finally:
                    os.close(top)
        finally:
            os.close(fd)
