"""Mount flags and options (config.md), and mounting by fd.

Every mount target is an ``O_PATH`` fd resolved inside the rootfs and handed
to mount(2) as ``/proc/self/fd/N``: the mount lands on the object the fd names,
even if a symlink on the way is swapped after it was resolved.
"""

from __future__ import annotations

import os

from pyoci._native import check, ffi, lib
from pyoci.record import Factory, record

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

# option -> (set, clear)
FLAGS: dict[str, tuple[int, int]] = {
    "async": (0, MS_SYNCHRONOUS), "atime": (0, MS_NOATIME), "defaults": (0, 0),
    "dev": (0, MS_NODEV), "diratime": (0, MS_NODIRATIME), "dirsync": (MS_DIRSYNC, 0),
    "exec": (0, MS_NOEXEC), "iversion": (MS_I_VERSION, 0), "lazytime": (MS_LAZYTIME, 0),
    "loud": (0, MS_SILENT), "mand": (MS_MANDLOCK, 0), "noatime": (MS_NOATIME, 0),
    "nodev": (MS_NODEV, 0), "nodiratime": (MS_NODIRATIME, 0), "noexec": (MS_NOEXEC, 0),
    "noiversion": (0, MS_I_VERSION), "nolazytime": (0, MS_LAZYTIME),
    "nomand": (0, MS_MANDLOCK), "norelatime": (0, MS_RELATIME),
    "nostrictatime": (0, MS_STRICTATIME), "nosuid": (MS_NOSUID, 0),
    "nosymfollow": (MS_NOSYMFOLLOW, 0), "relatime": (MS_RELATIME, 0),
    "remount": (MS_REMOUNT, 0), "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "silent": (MS_SILENT, 0), "strictatime": (MS_STRICTATIME, 0), "suid": (0, MS_NOSUID),
    "symfollow": (0, MS_NOSYMFOLLOW), "sync": (MS_SYNCHRONOUS, 0),
}
PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
# Recursive attributes, applied with mount_setattr(AT_RECURSIVE): option -> (set, clear)
RECURSIVE: dict[str, tuple[int, int]] = {
    "rro": (MOUNT_ATTR_RDONLY, 0), "rrw": (0, MOUNT_ATTR_RDONLY),
    "rnosuid": (MOUNT_ATTR_NOSUID, 0), "rsuid": (0, MOUNT_ATTR_NOSUID),
    "rnodev": (MOUNT_ATTR_NODEV, 0), "rdev": (0, MOUNT_ATTR_NODEV),
    "rnoexec": (MOUNT_ATTR_NOEXEC, 0), "rexec": (0, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rnorelatime": (0, MOUNT_ATTR__ATIME), "ratime": (0, MOUNT_ATTR__ATIME),
    "rnoatime": (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
    "rstrictatime": (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    "rnostrictatime": (0, MOUNT_ATTR__ATIME),
    "rnosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, MOUNT_ATTR_NOSYMFOLLOW),
}
EXTENSIONS = {"bind", "rbind", "tmpcopyup", "idmap", "ridmap"}

# statvfs f_flag bits that a user namespace can't clear on a bind remount.
_ST_LOCKED = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
              2048: MS_NODIRATIME, 4096: MS_RELATIME}


@record
class Options:
    flags: int = 0
    clear: int = 0
    propagation: list[int] = Factory(list)
    attr_set: int = 0
    attr_clr: int = 0
    data: list[str] = Factory(list)
    bind: bool = False
    recursive: bool = False
    extensions: set[str] = Factory(set)


def parse_options(options: list[str], mtype: str | None) -> Options:
    opts = Options()
    for o in options:
        if o in FLAGS:
            s, c = FLAGS[o]
            opts.flags = (opts.flags | s) & ~c
            opts.clear |= c
        elif o in PROPAGATION:
            opts.propagation.append(PROPAGATION[o])
        elif o in RECURSIVE:
            s, c = RECURSIVE[o]
            opts.attr_set = (opts.attr_set & ~c) | s
            opts.attr_clr |= c
        elif o in ("bind", "rbind"):
            opts.bind = True
            opts.recursive = opts.recursive or o == "rbind"
        elif o in EXTENSIONS:
            opts.extensions.add(o)
        else:
            opts.data.append(o)
    if mtype == "bind":
        opts.bind = True
    return opts


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    check(
        lib.pyoci_mount(
            source.encode() if source else ffi.NULL,
            target.encode(),
            fstype.encode() if fstype else ffi.NULL,
            flags,
            data.encode() if data else ffi.NULL,
        ),
        target,
    )


def umount(target: str, flags: int = 0) -> None:
    check(lib.pyoci_umount2(target.encode(), flags), target)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def locked_flags(path: str) -> int:
    """Flags of the mount holding ``path`` that a bind remount must keep."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return sum(ms for st_bit, ms in _ST_LOCKED.items() if st.f_flag & st_bit)


def setattr_recursive(fd: int, attr_set: int, attr_clr: int, path: str) -> None:
    check(
        lib.pyoci_mount_setattr(fd, b"", AT_EMPTY_PATH | AT_RECURSIVE, attr_set, attr_clr, 0, 0),
        path,
    )


def clone_tree(source: str, recursive: bool) -> int:
    """A detached copy of the mount at ``source`` (open_tree), for :func:`attach`.

    Made a slave at once, as a bind mount made after ``prepare_propagation``
    is: cloned from a shared host mount it would otherwise join the host's
    peer group, and mounts made under it in the container would reach the host.
    """
    tree = check(lib.pyoci_open_tree(AT_FDCWD, source.encode(), OPEN_TREE_CLONE
                                     | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)),
                 source)
    try:
        check(lib.pyoci_mount_setattr(tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, 0, 0, MS_SLAVE,
                                      0), source)
    except BaseException:
        os.close(tree)
        raise
    return tree


def attach(tree: int, target_fd: int, dest: str) -> None:
    """Put a detached tree (:func:`clone_tree`, or an idmapped one) on ``target_fd``."""
    check(lib.pyoci_move_mount(tree, b"", target_fd, b"",
                               MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), dest)
