"""Building the container's filesystem view, in the order runc and crun use.

Paths from config.json are resolved *inside* the rootfs with ``openat2``
and ``RESOLVE_IN_ROOT``, so a symlink in the image (``/proc -> /``,
``../../..``) can never make a mount land outside it (CVE-2021-30465 class).
"""

from __future__ import annotations

import errno
import os
import stat

from pyoci._native import check, lib
from pyoci.linux import mounts as m

O_PATH = 0o10000000
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


def open_in_root(rootfd: int, path: str, flags: int = O_PATH | os.O_CLOEXEC) -> int:
    """Open ``path`` as if ``rootfd`` were ``/``: symlinks can't climb out."""
    rel = path.lstrip("/") or "."
    return check(
        lib.pyoci_openat2(rootfd, rel.encode(), flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS),
        path,
    )


def make_in_root(rootfd: int, path: str, is_file: bool, mode: int = 0o755) -> int:
    """Create ``path`` (and its parents) inside the root; return an O_PATH fd to it.

    A symlink on the way is followed *inside* the root, as SecureJoin does, and
    a missing target is created there too: ``/evil -> /nowhere`` makes
    ``<rootfs>/nowhere``, never a host path.
    """
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    fd = os.dup(rootfd)
    try:
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                os.close(fd)
                fd = open_in_root(rootfd, "/" + "/".join(done))
                continue
            here = "/" + "/".join([*done, name])
            last = not todo
            try:
                nfd = open_in_root(rootfd, here)
            except FileNotFoundError:
                try:
                    target = os.readlink(name, dir_fd=fd)
                except OSError:
                    target = None
                if target is not None:
                    hops += 1
                    if hops > 40:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links",
                                      path) from None
                    if target.startswith("/"):
                        done = []
                        os.close(fd)
                        fd = os.dup(rootfd)
                    todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                    continue
                try:
                    if last and is_file:
                        os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644,
                                         dir_fd=fd))
                    else:
                        os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = open_in_root(rootfd, here)
            os.close(fd)
            fd = nfd
            done.append(name)
            if todo and not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.ENOTDIR, "not a directory", here)
        return fd
    except BaseException:
        os.close(fd)
        raise


def mount_entry(rootfd: int, entry: dict, bundle: str, in_userns: bool,
                cgroup_mount: object = None, linux: dict | None = None,
                tree: int | None = None) -> None:
    """Apply one entry of ``mounts``; ``tree`` is its source as a detached mount, made by
    the parent while still in the host's user namespace (:func:`open_bind_sources`, or
    idmapped by ``pyoci.linux.idmap``)."""
    dest = entry["destination"]
    mtype = entry.get("type")
    opts = m.parse_options(entry.get("options") or [], mtype)
    source = entry.get("source")
    if opts.bind:
        if source and not source.startswith("/"):
            source = os.path.join(bundle, source)
        if not source:
            raise OSError(errno.ENOENT, "no such file or directory", dest)
        try:
            is_file = not stat.S_ISDIR(os.stat(source if tree is None else tree).st_mode)
        except OSError as e:
            raise OSError(e.errno, os.strerror(e.errno or 0).lower(), source) from None
    else:
        is_file = False
    if mtype == "cgroup" and cgroup_mount is not None:
        fd = make_in_root(rootfd, dest, False)
        try:
            cgroup_mount(rootfd, dest, fd, opts)  # type: ignore[operator]
        finally:
            os.close(fd)
        return
    fd = make_in_root(rootfd, dest, is_file)
    try:
        target = m.fd_path(fd)
        if opts.bind and idmap_wanted(entry) and tree is None:
            raise OSError(errno.EINVAL, "idmapped mount was not prepared", dest)
        if opts.bind and tree is not None:
            m.attach(tree, fd, dest)
        elif opts.bind:
            flags = m.MS_BIND | (m.MS_REC if opts.recursive else 0)
            m.mount(source, target, None, flags)
        if opts.bind:
            remount = opts.flags & ~m.MS_REMOUNT
            if remount or opts.clear:
                top = open_in_root(rootfd, dest)
                try:
                    if in_userns:
                        # The new mount's own flags: they are its source's.
                        remount |= m.locked_flags(m.fd_path(top))
                    m.mount(None, m.fd_path(top), None,
                            m.MS_BIND | m.MS_REMOUNT | remount)
                finally:
                    os.close(top)
        else:
            data = ",".join(opts.data) or None
            below = None
            if "tmpcopyup" in opts.extensions and mtype == "tmpfs":
                below = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                m.mount(source or mtype, target, mtype, opts.flags & ~m.MS_REMOUNT, data)
                if below is not None:
                    _copy_up(below, rootfd, dest)
            finally:
                if below is not None:
                    os.close(below)
        if opts.propagation or opts.attr_set or opts.attr_clr:
            top = open_in_root(rootfd, dest)
            try:
                for prop in opts.propagation:
                    m.mount(None, m.fd_path(top), None, prop)
                if opts.attr_set or opts.attr_clr:
                    m.setattr_recursive(top, opts.attr_set, opts.attr_clr, dest)
            finally:
                os.close(top)
    except OSError as e:
        raise OSError(e.errno, f"mount {source or mtype} to {dest}: "
                      f"{os.strerror(e.errno or 0).lower()}") from None
    finally:
        os.close(fd)


def open_bind_sources(mounts: list[dict], bundle: str) -> dict[int, int]:
    """Clone each bind source with the runtime's own credentials: mount index -> tree.

    The parent calls this before the user namespace exists: the init, root only
    in its own user namespace, may not even reach a source that a host directory
    hides (0700), and runc and crun open theirs outside it too. Idmapped entries
    are ``pyoci.linux.idmap``'s. Where the kernel lacks open_tree or mount_setattr
    an entry is left out, and the init binds it by path as before.
    """
    trees: dict[int, int] = {}
    try:
        for i, entry in enumerate(mounts):
            opts = m.parse_options(entry.get("options") or [], entry.get("type"))
            source = entry.get("source")
            if not opts.bind or not source or idmap_wanted(entry):
                continue
            if not source.startswith("/"):
                source = os.path.join(bundle, source)
            try:
                trees[i] = m.clone_tree(source, opts.recursive)
            except OSError as e:
                if e.errno == errno.ENOSYS:
                    continue
                raise OSError(e.errno, f"mounts[{i}]: open mount source {source}: "
                              f"{os.strerror(e.errno or 0).lower()}") from None
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    return trees


def _copy_up(below: int, rootfd: int, dest: str) -> None:
    """tmpcopyup: fill the new tmpfs with what the image had at that path."""
    import shutil

    top = open_in_root(rootfd, dest)
    try:
        shutil.copytree(m.fd_path(below), m.fd_path(top), symlinks=True, dirs_exist_ok=True)
    finally:
        os.close(top)


def idmap_wanted(entry: dict) -> bool:
    opts = set(entry.get("options") or [])
    return bool("uidMappings" in entry or "gidMappings" in entry or opts & {"idmap", "ridmap"})


def prepare_propagation(rootfs_propagation: str | None) -> None:
    """Stop our mounts propagating back to the host before we make any."""
    flag = m.PROPAGATION.get(rootfs_propagation or "rslave", m.MS_SLAVE | m.MS_REC)
    if flag & (m.MS_SHARED | m.MS_UNBINDABLE):
        # The root becomes shared or unbindable after pivot_root (finish_propagation);
        # made unbindable now, the rootfs couldn't even be bind-mounted onto itself.
        flag = m.MS_SLAVE | m.MS_REC
    m.mount(None, "/", None, flag | m.MS_REC)


def bind_rootfs(rootfs: str) -> int:
    """Make the rootfs a mount point (pivot_root needs one) and return an fd to it."""
    m.mount(rootfs, rootfs, None, m.MS_BIND | m.MS_REC)
    return os.open(rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def pivot(rootfd: int, rootfs: str) -> None:
    """pivot_root into the rootfs and detach the old root, leaving no host path behind."""
    oldroot = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(rootfd)
        check(lib.pyoci_pivot_root(b".", b"."), rootfs)
        # The old root is now stacked on "/". Make only *its* tree a slave, so the
        # unmount doesn't reach the host and the container's own propagation stays.
        os.fchdir(oldroot)
        m.mount(None, ".", None, m.MS_SLAVE | m.MS_REC)
        m.umount(".", m.MNT_DETACH)
    finally:
        os.close(oldroot)
    os.chdir("/")


def chroot_into(rootfd: int, rootfs: str) -> None:
    """--no-pivot: move the rootfs mount over / and chroot, for ramfs-rooted hosts."""
    os.fchdir(rootfd)
    m.mount(rootfs, "/", None, m.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def finish_propagation(rootfs_propagation: str | None) -> None:
    if rootfs_propagation:
        m.mount(None, "/", None, m.PROPAGATION[rootfs_propagation])


def mask_path(path: str) -> None:
    """Hide a file behind /dev/null, a directory behind an empty read-only tmpfs."""
    root = os.open("/", O_PATH | os.O_CLOEXEC)
    try:
        fd = open_in_root(root, path)
    except FileNotFoundError:
        return
    finally:
        os.close(root)
    try:
        target = m.fd_path(fd)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            m.mount("tmpfs", target, "tmpfs", m.MS_RDONLY, None)
        else:
            m.mount("/dev/null", target, None, m.MS_BIND)
    except OSError as e:
        raise OSError(e.errno, f"mask {path}: {os.strerror(e.errno or 0).lower()}") from None
    finally:
        os.close(fd)


def readonly_path(path: str) -> None:
    root = os.open("/", O_PATH | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root, path)
        except FileNotFoundError:
            return
        try:
            m.mount(m.fd_path(fd), m.fd_path(fd), None, m.MS_BIND | m.MS_REC)
        finally:
            os.close(fd)
        fd = open_in_root(root, path)
        try:
            flags = m.locked_flags(m.fd_path(fd)) | m.MS_RDONLY
            m.mount(None, m.fd_path(fd), None, m.MS_BIND | m.MS_REMOUNT | flags)
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"readonly {path}: {os.strerror(e.errno or 0).lower()}") from None
    finally:
        os.close(root)


def readonly_root() -> None:
    flags = m.locked_flags("/") | m.MS_RDONLY
    m.mount(None, "/", None, m.MS_BIND | m.MS_REMOUNT | flags)
