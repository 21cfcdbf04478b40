"""Find the host's cgroup hierarchies: the mode, and where each one is mounted.

Mount points come from /proc/self/mountinfo rather than being assumed, since
distributions (and nested containers) mount v1 controllers under different
names and sometimes co-mount them ("cpu,cpuacct").
"""

from __future__ import annotations

import os

CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994
CGROUP_SUPER_MAGIC = 0x0027E0EB

MOUNTINFO = "/proc/self/mountinfo"


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class CgroupMounts:
    """What mountinfo says about cgroups.

    ``v1`` maps each controller (and ``name=...`` hierarchy) to a
    ``(mount point, mount root)`` pair; ``v2`` is the cgroup2 mount, if any.
    A plain class rather than a dataclass: importing dataclasses pulls in
    inspect, which costs more than the rest of this package.
    """

    __slots__ = ("fstype_at", "v1", "v2")

    def __init__(self) -> None:
        self.v1: dict[str, tuple[str, str]] = {}
        self.v2: tuple[str, str] | None = None
        self.fstype_at: dict[str, str] = {}


def parse_mountinfo(text: str) -> CgroupMounts:
    """Parse mountinfo text; later mounts shadow earlier ones at the same point."""
    result = CgroupMounts()
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields = head.split()
        rest = tail.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        fstype, super_opts = rest[0], rest[2]
        result.fstype_at[point] = fstype
        if fstype == "cgroup2":
            # Prefer the canonical location if several are mounted.
            if result.v2 is None or point in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                result.v2 = (point, root)
        elif fstype == "cgroup":
            for opt in super_opts.split(","):
                if opt in ("rw", "ro") or opt.startswith(("release_agent=", "clone_children")):
                    continue
                if opt in ("noprefix", "xattr", "cpuset_v2_mode", "favordynmods"):
                    continue
                result.v1.setdefault(opt, (point, root))
    return result


def read_mounts(path: str = MOUNTINFO) -> CgroupMounts:
    """Parse this process's mountinfo."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return parse_mountinfo(fh.read())


def _fs_type(path: str) -> int | None:
    """statfs f_type via the compiled helper; None if it can't be asked."""
    try:
        from pyoci._native import lib
    except ImportError:
        return None
    value = int(lib.pyoci_statfs_type(os.fsencode(path)))
    return value if value >= 0 else -1


def detect(root: str = "/sys/fs/cgroup") -> str:
    """The host's cgroup mode: "v2", "hybrid", "v1" or "none".

    statfs is the same test runc and crun use and costs one syscall; the
    mountinfo fallback covers a missing native module.
    """
    magic = _fs_type(root)
    if magic is None:
        mounts = read_mounts()
        kind = mounts.fstype_at.get(root)
        if kind == "cgroup2":
            return "v2"
        if kind == "tmpfs" or mounts.v1:
            if mounts.fstype_at.get(os.path.join(root, "unified")) == "cgroup2":
                return "hybrid"
            return "v1" if mounts.v1 else "none"
        return "none"
    if magic == CGROUP2_SUPER_MAGIC:
        return "v2"
    if magic in (TMPFS_MAGIC, CGROUP_SUPER_MAGIC):
        if _fs_type(os.path.join(root, "unified")) == CGROUP2_SUPER_MAGIC:
            return "hybrid"
        return "v1"
    return "none"


def hierarchy_dir(mount: tuple[str, str], cgroup_path: str) -> str:
    """Absolute directory of ``cgroup_path`` (relative to the hierarchy root).

    When the mount exposes only a subtree (its root isn't "/", as in a
    container without a cgroup namespace), a path inside that subtree is
    made relative to it; any other path is placed under the mount point.
    """
    point, root = mount
    rel = cgroup_path
    if root not in ("/", "") and (rel == root or rel.startswith(root.rstrip("/") + "/")):
        rel = rel[len(root.rstrip("/")) :]
    return os.path.join(point, rel.lstrip("/")).rstrip("/") or point
