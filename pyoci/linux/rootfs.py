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
                tree: int | None = None, _sysfs: bool = False) -> str | None:
    """Apply one entry of ``mounts``; ``tree`` is its source as a detached mount, made by
    the parent while still in the host's user namespace (:func:`open_bind_sources`, or
    idmapped by ``pyoci.linux.idmap``).

    A read-only tmpfs (or /dev) is mounted read-write and its destination returned:
    devices, submounts and tmpcopyup still have to write into it, so the caller
    remounts it read-only (``remount_readonly``) once the rest of the rootfs exists.
    """
    dest = entry["destination"]
    mtype = entry.get("type")
    opts = m.parse_options(entry.get("options") or [], mtype)
    source = entry.get("source")
    readonly_later = None
    if not opts.bind and opts.flags & m.MS_RDONLY and (
            mtype == "tmpfs" or os.path.normpath(dest) == "/dev"):
        opts.flags &= ~m.MS_RDONLY
        readonly_later = dest
    if mtype in ("proc", "sysfs") and not opts.bind:
        _require_ordinary_dir(rootfd, dest, mtype)
    if mtype == "sysfs" and not opts.bind and in_userns and not _sysfs:
        try:
            return mount_entry(rootfd, entry, bundle, in_userns, cgroup_mount, linux, tree,
                               _sysfs=True)
        except OSError as e:
            if e.errno != errno.EPERM:
                raise
        # The kernel lets a user namespace mount sysfs only with a network namespace
        # it owns: without one, the host's /sys is bound instead (runc does the same).
        bound = {**entry, "type": "bind", "source": "/sys",
                 "options": [*(entry.get("options") or []), "rbind"]}
        return mount_entry(rootfd, bound, bundle, in_userns, cgroup_mount, linux, None)
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
        return None
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
    return readonly_later


def _require_ordinary_dir(rootfd: int, dest: str, mtype: str) -> None:
    """proc and sysfs go only on a directory, never through a symlink in the image.

    The image's ``/proc -> /elsewhere`` would be followed inside the rootfs and
    put a procfs where masked and read-only paths don't look. runc refuses it
    with the same words; a missing destination is fine (it is made).
    """
    parent, _, name = os.path.normpath("/" + dest).rpartition("/")
    try:
        pfd = open_in_root(rootfd, parent or "/")
    except FileNotFoundError:
        return
    try:
        st = os.stat(name or ".", dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    finally:
        os.close(pfd)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f'error mounting "{mtype}" to rootfs at "{dest}": '
                      f'filesystem "{mtype}" must be mounted on ordinary directory')


def remount_readonly(dest: str) -> None:
    """The deferred half of a read-only tmpfs (see ``mount_entry``), inside the new root."""
    root = os.open("/", O_PATH | os.O_CLOEXEC)
    try:
        fd = open_in_root(root, dest)
    finally:
        os.close(root)
    try:
        target = m.fd_path(fd)
        m.mount(None, target, None, m.MS_REMOUNT | m.MS_RDONLY | m.locked_flags(target))
    except OSError as e:
        raise OSError(e.errno, f"remount {dest} read-only: "
                      f"{os.strerror(e.errno or 0).lower()}") from None
    finally:
        os.close(fd)


def make_cwd(cwd: str) -> None:
    """Create a missing ``process.cwd`` inside the new root, as runc and crun do.

    Before the root goes read-only; owned by the container's root, mode 0755 (less
    the umask), like runc's MkdirAll. Symlinks on the way stay inside the root.
    Anything but a missing path is left for the chdir to report.
    """
    root = os.open("/", O_PATH | os.O_CLOEXEC)
    try:
        try:
            os.close(open_in_root(root, cwd))
            return
        except FileNotFoundError:
            pass
        except OSError:
            return
        os.close(make_in_root(root, cwd, False))
    finally:
        os.close(root)


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
    hide_host_procfs(rootfs)
    os.fchdir(rootfd)
    m.mount(rootfs, "/", None, m.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(esc, ch)
    return field


def hide_host_procfs(rootfs: str) -> None:
    """Without pivot_root the old root stays in the mount namespace, under the rootfs.

    The kernel lets a user namespace mount a fresh proc or sysfs only if a fully
    visible one already exists in the mount namespace (mount_too_revealing). The
    host's /proc and /sys would be one, so a container process could ``unshare -mrpf``
    and mount proc. Detach every whole (root "/") proc and sysfs outside the rootfs,
    as runc's msMoveRoot does; where we may not (locked in a user namespace), cover
    it with an empty tmpfs.
    """
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    inside = rootfs.rstrip("/") + "/"
    targets = []
    for line in lines:
        fields = line.split()
        try:
            fstype = fields[fields.index("-", 6) + 1]
        except (ValueError, IndexError):
            continue
        point = _unescape(fields[4])
        if (fstype in ("proc", "sysfs") and fields[3] == "/"
                and not (point + "/").startswith(inside)):
            targets.append(point)
    for point in targets:
        try:
            # Slave first, so the unmount can't reach the host whatever the propagation.
            m.mount(None, point, None, m.MS_SLAVE | m.MS_REC)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINVAL):
                continue  # gone with a mount detached already
            raise
        try:
            m.umount(point, m.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            m.mount("tmpfs", point, "tmpfs", 0, None)


def finish_propagation(rootfs_propagation: str | None) -> None:
    if rootfs_propagation:
        m.mount(None, "/", None, m.PROPAGATION[rootfs_propagation])


def reopen_dev_null() -> None:
    """Stdio left on the host's /dev/null is reopened on the container's, as runc does.

    conmon and shims hand the runtime /dev/null for stdin; a descriptor on a
    mount outside the container's mount namespace is one CRIU can't checkpoint
    ("Can't lookup mount"). Called after pivot_root.
    """
    try:
        fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # no /dev/null in this rootfs: nothing to reopen on
        return
    try:
        null = os.fstat(fd)
        if not stat.S_ISCHR(null.st_mode):
            return
        for std in range(3):
            try:
                st = os.fstat(std)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev and \
                    (st.st_dev, st.st_ino) != (null.st_dev, null.st_ino):
                os.dup2(fd, std)
    finally:
        os.close(fd)


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
