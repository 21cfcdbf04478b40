"""/dev: the default devices, ``linux.devices``, and the standard symlinks.

Outside a user namespace devices are made with mknod; inside one mknod is not
allowed, so the host's device is bind-mounted onto an empty file instead.
"""

from __future__ import annotations

import errno
import os
import stat

from pyoci.linux import mounts as m
from pyoci.linux.rootfs import make_in_root, open_in_root

DEFAULT_DEVICES = [
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/random", "c", 1, 8), ("/dev/urandom", "c", 1, 9), ("/dev/tty", "c", 5, 0),
]
SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
]
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_device(rootfd: int, path: str, dtype: str, major: int, minor: int, mode: int,
                  uid: int, gid: int, bind: bool) -> None:
    parent, _, name = path.rstrip("/").rpartition("/")
    pfd = make_in_root(rootfd, parent or "/", False)
    try:
        dirfd = os.open(m.fd_path(pfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                os.unlink(name, dir_fd=dirfd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise OSError(errno.EISDIR, "is a directory", path) from None
            if bind and dtype != "p":
                _bind_host_device(rootfd, dirfd, name, path)
                return
            try:
                os.mknod(name, _TYPES[dtype] | (mode & 0o7777), os.makedev(major, minor),
                         dir_fd=dirfd)
            except PermissionError:
                # Root of a user namespace that isn't ours to configure (rootless
                # podman runs the runtime so): bind the host's node, as runc does.
                if dtype == "p":
                    raise
                _bind_host_device(rootfd, dirfd, name, path)
                return
            os.chmod(name, mode & 0o7777, dir_fd=dirfd)
            os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
        finally:
            os.close(dirfd)
    except OSError as e:
        raise OSError(e.errno, f"create device {path}: {os.strerror(e.errno or 0).lower()}") \
            from None
    finally:
        os.close(pfd)


def _bind_host_device(rootfd: int, dirfd: int, name: str, path: str) -> None:
    """The host's device node bind-mounted at ``path``: what a user namespace may do."""
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=dirfd))
    host = f"/dev/{name}" if path.startswith("/dev/") else path
    tfd = open_in_root(rootfd, path)
    try:
        m.mount(host, m.fd_path(tfd), None, m.MS_BIND)
    finally:
        os.close(tfd)


def setup_dev(rootfd: int, devices: list[dict], in_userns: bool, default: bool) -> None:
    old = os.umask(0)
    try:
        if default:
            for path, dtype, major, minor in DEFAULT_DEVICES:
                create_device(rootfd, path, dtype, major, minor, 0o666, 0, 0, in_userns)
        for d in devices:
            create_device(rootfd, d["path"], d["type"], d.get("major", 0), d.get("minor", 0),
                          d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0), in_userns)
    finally:
        os.umask(old)
    if default:
        devfd = make_in_root(rootfd, "/dev", False)
        dirfd = os.open(m.fd_path(devfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.close(devfd)
        try:
            links = [*SYMLINKS]
            if os.path.exists("/proc/kcore"):
                links.append(("/proc/kcore", "/dev/core"))
            links.append(("pts/ptmx", "/dev/ptmx"))
            for target, link in links:
                name = link.rsplit("/", 1)[1]
                try:
                    os.symlink(target, name, dir_fd=dirfd)
                except FileExistsError:
                    if name == "ptmx":
                        os.unlink(name, dir_fd=dirfd)
                        os.symlink(target, name, dir_fd=dirfd)
        finally:
            os.close(dirfd)
