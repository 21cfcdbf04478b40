"""Idmapped mounts: ``uidMappings``/``gidMappings`` on a mount, and ``idmap``/``ridmap``.

The kernel wants a user namespace that carries the mapping: a short-lived child
makes one, we write its maps and keep an fd to it, then ``open_tree`` clones
the source, ``mount_setattr(MOUNT_ATTR_IDMAP)`` applies it and ``move_mount``
puts it in place.
"""

from __future__ import annotations

import _socket
import os

from pyoci._native import check, lib
from pyoci.linux import namespaces as ns

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_IDMAP = 0x00100000
MS_SLAVE = 1 << 19  # never a peer of the host's mount: see mounts.clone_tree
AT_FDCWD = -100


def _lines(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def userns_fd(uid_mappings: list[dict], gid_mappings: list[dict]) -> int:
    """An fd to a fresh user namespace with these mappings."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            a.close()
            ns.unshare(ns.CLONE_NEWUSER)
            b.send(os.readlink("/proc/self").encode())
            b.recv(1)  # hold the namespace until the parent has its fd
        finally:
            os._exit(0)
    b.close()
    try:
        host_pid = int(a.recv(32))
        with open(f"/proc/{host_pid}/uid_map", "w") as f:
            f.write(_lines(uid_mappings))
        with open(f"/proc/{host_pid}/gid_map", "w") as f:
            f.write(_lines(gid_mappings))
        return os.open(f"/proc/{host_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        a.close()
        os.waitpid(pid, 0)


def make_tree(source: str, uid_mappings: list[dict], gid_mappings: list[dict],
              recursive: bool) -> int:
    """A detached, idmapped clone of ``source``, made in the host's namespaces.

    Done by the parent: inside a container's user namespace neither the map
    files nor MOUNT_ATTR_IDMAP on a host filesystem would be allowed.
    """
    tree = check(lib.pyoci_open_tree(AT_FDCWD, source.encode(),
                                     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                     | (AT_RECURSIVE if recursive else 0)), source)
    try:
        uns = userns_fd(uid_mappings, gid_mappings)
        try:
            check(lib.pyoci_mount_setattr(tree, b"", AT_EMPTY_PATH
                                          | (AT_RECURSIVE if recursive else 0),
                                          MOUNT_ATTR_IDMAP, 0, MS_SLAVE, uns), source)
        finally:
            os.close(uns)
    except BaseException:
        os.close(tree)
        raise
    return tree


def prepare(mounts: list[dict], bundle: str, linux: dict) -> dict[int, int]:
    """make_tree for every idmapped bind mount in the config: index -> tree fd."""
    from pyoci.linux.rootfs import idmap_wanted

    trees: dict[int, int] = {}
    try:
        for i, entry in enumerate(mounts):
            opts = set(entry.get("options") or [])
            if not ((entry.get("type") == "bind" or opts & {"bind", "rbind"})
                    and idmap_wanted(entry)):
                continue
            source = entry.get("source") or ""
            if not source.startswith("/"):
                source = os.path.join(bundle, source)
            try:
                trees[i] = make_tree(
                    source, entry.get("uidMappings") or linux.get("uidMappings") or [],
                    entry.get("gidMappings") or linux.get("gidMappings") or [],
                    "rbind" in opts or "ridmap" in opts)
            except OSError as e:
                raise OSError(e.errno, f"mounts[{i}]: idmapped mount of {source}: "
                              f"{os.strerror(e.errno or 0).lower()}") from None
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    return trees


def supported() -> bool:
    """Whether the kernel has mount_setattr (Linux 5.12+); the features document says so."""
    from pyoci._native import ffi

    rc = lib.pyoci_mount_setattr(-1, b"", 0, 0, 0, 0, 0)
    return not (rc < 0 and ffi.errno == 38)  # ENOSYS
