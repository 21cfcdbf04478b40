"""The ``cgroup`` mount type: the container's view of its own cgroups.

With a cgroup namespace each hierarchy is mounted afresh, and the kernel
shows the namespace root; without one, the container's own directory of each
host hierarchy is bind-mounted, so the host's tree stays out of sight.
"""

from __future__ import annotations

import errno
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

    def __init__(self, new_cgroupns: bool, v2_path: str | None = None) -> None:
        """``v2_path``: the container's cgroup on a pure v2 host (relative to the
        hierarchy root), or None when it has none (rootless without permission)."""
        self.new_cgroupns = new_cgroupns
        self.v2_path = v2_path
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
            if not self.new_cgroupns:
                self._bind(rootfd, dest, target, os.path.join(mountpoint, own.lstrip("/")),
                           flags, ro)
                return
            try:
                m.mount("cgroup", target, fstype, flags | (m.MS_RDONLY if ro else 0),
                        ctrls or None)
            except OSError as e:
                if fstype != "cgroup2" or e.errno not in (errno.EBUSY, errno.EPERM):
                    raise
                self._instead_of_cgroup2(rootfd, dest, target, mountpoint, flags, ro)
        finally:
            os.close(fd)

    def _instead_of_cgroup2(self, rootfd: int, dest: str, target: str, mountpoint: str,
                            flags: int, ro: bool) -> None:
        """runc's fallback where a fresh cgroup2 mount is refused: EBUSY when /sys is
        the host's, bound (rootless without a network namespace), so the same
        superblock is already mounted there; EPERM where the kernel won't let this
        user namespace mount it. The container's own cgroup is bound instead, as
        a cgroup namespace would show it; with no cgroup of its own, /sys/fs/cgroup
        is masked, so the host's tree is neither seen nor written."""
        src = os.path.join(mountpoint, (self.v2_path or "").lstrip("/"))
        if self.v2_path and os.path.isdir(src):
            self._bind(rootfd, dest, target, src, flags, ro)
        else:
            m.mount("tmpfs", target, "tmpfs", flags | m.MS_RDONLY, "mode=755")

    def _bind(self, rootfd: int, dest: str, target: str, src: str, flags: int,
              ro: bool) -> None:
        m.mount(src, target, None, m.MS_BIND | m.MS_REC)
        top = make_in_root(rootfd, dest, False)  # the new mount, not the one beneath
        try:
            m.mount(None, m.fd_path(top), None, m.MS_BIND | m.MS_REMOUNT | flags
                    | (m.MS_RDONLY if ro else 0) | m.locked_flags(src))
        finally:
            os.close(top)
