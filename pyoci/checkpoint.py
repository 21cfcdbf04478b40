"""Checkpoint and restore a container with CRIU (pyoci.criu), as runc does.

What CRIU can't know about a container, the runtime tells it:

* bind mounts whose source lies outside the container are *external* mounts:
  on dump each is declared by its destination, on restore the destination is
  mapped to the bundle's source again (runc's ``ext_mnt`` pairs);
* namespaces the container joined by path (network, pid) are external too:
  ``net[<inode>]:extRootNetNS`` on dump, and the namespace file handed in as an
  inherited fd on restore;
* the container's stdio pipes (``descriptors.json`` in the image, runc's file)
  are swapped for the restoring runtime's stdio with ``inherit_fd``;
* the cgroup: CRIU freezes it for the dump, and on restore CRIU is placed in the
  container's new cgroup first (``cg_root``), so the restored tree lands there;
* a terminal's master stays with the console socket's receiver: the restore
  asks CRIU for an orphan pts master and sends it to ``--console-socket``.

Masked paths, /dev, seccomp filters and capabilities are in CRIU's images:
it restores them itself. A restored container gets a state record like a
created one (pid, start time, cgroup), so state/kill/exec/delete work.
"""

from __future__ import annotations

import json
import os
import time

from pyoci import criu
from pyoci.errors import IncorrectStatus, PyociError
from pyoci.state import status as st
from pyoci.state.store import CONFIG_FILE, Store, write_atomic

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

DESCRIPTORS = "descriptors.json"  # runc's name: podman's exports carry it
DUMP_LOG = "dump.log"
RESTORE_LOG = "restore.log"
EMPTY_NS = {"network": 0x40000000}  # --empty-ns takes CLONE_NEW* of what is not dumped
EXT_NS = {"network": ("net", "extRootNetNS"), "pid": ("pid", "extRootPidNS")}


class Options:
    """runc's checkpoint and restore flags."""

    def __init__(self, image_path: str = "", work_path: str = "", parent_path: str = "",
                 leave_running: bool = False, tcp_established: bool = False,
                 ext_unix_sk: bool = False, shell_job: bool = False, file_locks: bool = False,
                 pre_dump: bool = False, manage_cgroups_mode: str = "",
                 empty_ns: list[str] | None = None, auto_dedup: bool = False,
                 status_fd: int = -1, bundle: str = ".", detach: bool = False,
                 pid_file: str | None = None, console_socket: str | None = None,
                 no_pivot: bool = False, lsm_profile: str = "") -> None:
        self.image_path = os.path.abspath(image_path or "checkpoint")
        self.work_path = os.path.abspath(work_path) if work_path else self.image_path
        self.parent_path = parent_path
        self.leave_running = leave_running
        self.tcp_established = tcp_established
        self.ext_unix_sk = ext_unix_sk
        self.shell_job = shell_job
        self.file_locks = file_locks
        self.pre_dump = pre_dump
        if manage_cgroups_mode and manage_cgroups_mode not in criu.CG_MODES:
            raise PyociError(f"invalid manage cgroups mode: {manage_cgroups_mode}")
        self.manage_cgroups_mode = manage_cgroups_mode
        self.empty_ns = empty_ns or []
        for ns in self.empty_ns:
            if ns not in EMPTY_NS:
                raise PyociError(f"namespace {ns!r} isn't supported by --empty-ns "
                                 "(only network)")
        self.auto_dedup = auto_dedup
        self.status_fd = status_fd
        self.bundle = os.path.abspath(bundle or ".")
        self.detach = detach
        self.pid_file = os.path.abspath(pid_file) if pid_file else None
        self.console_socket = os.path.abspath(console_socket) if console_socket else None
        self.no_pivot = no_pivot
        self.lsm_profile = lsm_profile


def _open_dir(path: str) -> int:
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise PyociError(f"{path}: {(e.strerror or str(e)).lower()}") from None


def _is_bind(mount: dict[str, Any]) -> bool:
    opts = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in opts or "rbind" in opts


def _common_opts(o: Options, images: int, work: int, log: str) -> dict[str, Any]:
    req: dict[str, Any] = {
        "images_dir_fd": images, "work_dir_fd": work, "log_level": 4, "log_file": log,
        "notify_scripts": True, "manage_cgroups": True, "orphan_pts_master": True,
        "shell_job": o.shell_job or None, "tcp_established": o.tcp_established or None,
        "ext_unix_sk": o.ext_unix_sk or None, "file_locks": o.file_locks or None,
    }
    if o.manage_cgroups_mode:
        req["manage_cgroups_mode"] = criu.CG_MODES[o.manage_cgroups_mode]
    if o.status_fd >= 0:
        req["status_fd"] = o.status_fd
    return req


def _namespaces(config: dict[str, Any]) -> list[dict[str, Any]]:
    return (config.get("linux") or {}).get("namespaces") or []


# -- checkpoint --------------------------------------------------------------------------


def checkpoint(store: Store, cid: str, o: Options) -> None:
    from pyoci.container import Container

    c = Container.load(store, cid)
    status = c.status()
    if status not in (st.RUNNING, st.PAUSED):
        raise IncorrectStatus("container is not running" if status == st.STOPPED
                              else f"cannot checkpoint a container that is {status}")
    with open(os.path.join(c.dir, CONFIG_FILE), "rb") as f:
        config = json.load(f)
    pid = c.state["pid"]
    images = _open_dir(o.image_path)
    work = _open_dir(o.work_path) if o.work_path != o.image_path else images
    try:
        req = _common_opts(o, images, work, DUMP_LOG)
        req.update(pid=pid, root=c.state.get("rootfs") or None,
                   leave_running=(o.leave_running or o.pre_dump) or None,
                   auto_dedup=o.auto_dedup or None, lsm_profile=None)
        if o.parent_path:
            req["parent_img"] = o.parent_path
        if o.pre_dump or o.parent_path:
            req["track_mem"] = True  # as runc: a dump on top of a pre-dump tracks memory
        mask = 0
        for ns in o.empty_ns:
            mask |= EMPTY_NS[ns]
        req["empty_ns"] = mask or None
        # Bind mounts from outside are external: declared by their destination.
        req["ext_mnt"] = [{"key": m["destination"], "val": m["destination"]}
                          for m in config.get("mounts") or [] if _is_bind(m)] or None
        external = []
        for ns in _namespaces(config):
            if ns.get("path") and ns["type"] in EXT_NS:
                kind, key = EXT_NS[ns["type"]]
                external.append(f"{kind}[{os.stat(ns['path']).st_ino}]:{key}")
        req["external"] = external or None
        cg = c.cgroup()
        freeze = _cgroup_dir(cg)
        if freeze:
            req["freeze_cgroup"] = freeze
        if not o.pre_dump:
            _save_descriptors(pid, o.image_path)
        kind = criu.PRE_DUMP if o.pre_dump else criu.DUMP
        with criu.Session() as s:
            resp = s.call({"type": kind, "opts": req})
        if not resp.get("success"):
            raise criu.failure(resp, os.path.join(o.work_path, DUMP_LOG),
                               "PRE_DUMP" if o.pre_dump else "DUMP")
    finally:
        os.close(images)
        if work != images:
            os.close(work)
    if not o.pre_dump and not o.leave_running:
        # As runc: the dumped container is gone (CRIU killed it): remove its record.
        Container.load(store, cid).delete(force=True)


def _cgroup_dir(cg: Any) -> str | None:
    """The cgroup v2 directory CRIU may freeze (v1: CRIU freezes with ptrace)."""
    if cg is None or not cg.exists():
        return None
    d = getattr(cg, "dir", None)
    if d and os.path.exists(os.path.join(d, "cgroup.freeze")):
        return d
    return None


def _save_descriptors(pid: int, image_path: str) -> None:
    fds = []
    for i in range(3):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{i}"))
        except OSError:
            fds.append("/dev/null")
    write_atomic(os.path.join(image_path, DESCRIPTORS), json.dumps(fds), 0o600)


# -- restore -------------------------------------------------------------------------------


class Restored:
    def __init__(self, pid: int, warnings: list[str]) -> None:
        self.pid = pid
        self.warnings = warnings


def restore(store: Store, cid: str, o: Options) -> Restored:
    """Restore ``cid`` from ``o.image_path`` with ``o.bundle``'s config, or leave nothing."""
    from pyoci.cgroups import manager_for
    from pyoci.create import _rfc3339 as rfc3339
    from pyoci.create import new_container_config

    config, raw, warnings = new_container_config(store, cid, o.bundle)
    process = config.get("process") or {}
    if process.get("terminal") and not o.console_socket:
        raise PyociError(
            "cannot allocate tty if pyoci will detach without setting console socket")
    root = (config.get("root") or {}).get("path") or "rootfs"
    rootfs = os.path.normpath(os.path.join(o.bundle, root))
    if not os.path.isdir(rootfs):
        raise PyociError(f"config.json: root.path: rootfs {rootfs} is not a directory")
    if not os.path.isdir(o.image_path):
        raise PyociError(f"{o.image_path}: no such file or directory")
    linux = config.get("linux") or {}
    state_dir = store.claim(cid)
    cgroup = None
    pid = 0
    criu_root = os.path.join(state_dir, "criu-root")
    mounted = False
    opened: list[int] = []
    try:
        write_atomic(os.path.join(state_dir, CONFIG_FILE), raw, durable=False)
        hooks = config.get("hooks") or {}
        cgroup = manager_for(linux.get("cgroupsPath"), cid)
        state: dict[str, Any] = {
            "ociVersion": config.get("ociVersion", ""), "id": cid, "pid": 0,
            "status": st.CREATING, "bundle": o.bundle, "rootfs": rootfs,
            "created": rfc3339(time.time()), "owner": "",
            "annotations": config.get("annotations") or {}, "cgroup": None,
            "cgroup_intent": cgroup.to_state(),
            "hooks": {k: hooks[k] for k in ("poststart", "poststop") if hooks.get(k)},
            "pidns": any(n["type"] == "pid" and not n.get("path")
                         for n in _namespaces(config)),
            "restored": True,
        }
        store.save(cid, state, durable=False)
        cgroup.create(linux.get("resources"))
        state["cgroup"] = cgroup.to_state()
        store.save(cid, state, durable=False)
        _make_mountpoints(config, rootfs, o.bundle)
        # CRIU's root must be a mount point: bind the rootfs to one of our own (as runc).
        from pyoci.linux import mounts as m

        os.mkdir(criu_root, 0o755)
        m.mount(rootfs, criu_root, None, m.MS_BIND | m.MS_REC)
        mounted = True
        images = _open_dir(o.image_path)
        opened.append(images)
        work = images
        if o.work_path != o.image_path:
            work = _open_dir(o.work_path)
            opened.append(work)
        req = _common_opts(o, images, work, RESTORE_LOG)
        req.update(root=criu_root, rst_sibling=True,
                   lsm_profile=o.lsm_profile or None)
        ext = []
        for mnt in config.get("mounts") or []:
            if _is_bind(mnt):
                src = mnt.get("source") or ""
                if not os.path.isabs(src):
                    src = os.path.join(o.bundle, src)
                ext.append({"key": mnt["destination"], "val": src})
        req["ext_mnt"] = ext or None
        inherit: list[dict[str, Any]] = []
        for ns in _namespaces(config):
            if ns.get("path") and ns["type"] in EXT_NS:
                fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                opened.append(fd)
                inherit.append({"key": EXT_NS[ns["type"]][1], "fd": fd})
        for i, desc in enumerate(_load_descriptors(o.image_path)):
            if "pipe:" in desc:
                fd = os.dup(i)
                opened.append(fd)
                inherit.append({"key": desc, "fd": fd})
        req["inherit_fd"] = inherit or None

        def enter_cgroup(criu_pid: int) -> None:
            cgroup.apply(criu_pid)
            req["cg_root"] = _cgroup_roots(criu_pid) or None

        console_fd = -1
        if o.console_socket:
            from pyoci.process.spawn import connect_console

            console_fd = connect_console(o.console_socket)
            opened.append(console_fd)

        def notify(script: str, note: dict[str, Any], fds: list[int]) -> None:
            nonlocal pid
            if script == "setup-namespaces":
                pid = note.get("pid") or pid
                from pyoci import hooks as hookmod

                s = {"ociVersion": state["ociVersion"], "id": cid, "status": st.CREATED,
                     "pid": pid, "bundle": o.bundle, "annotations": state["annotations"]}
                cwd = hookmod.bundle_cwd(o.bundle)
                hookmod.run(hooks.get("prestart") or [], "prestart", s, cwd=cwd)
                hookmod.run(hooks.get("createRuntime") or [], "createRuntime", s, cwd=cwd)
            elif script == "post-restore":
                pid = note.get("pid") or pid
            elif script == "orphan-pts-master" and fds and console_fd >= 0:
                from pyoci.process.sync import send_fd

                send_fd(console_fd, fds[0], b"/dev/ptmx")

        pass_fds = tuple(fd for fd in opened if fd not in (images, work, console_fd))
        with criu.Session(pass_fds=pass_fds, on_start=enter_cgroup) as s:
            resp = s.call({"type": criu.RESTORE, "opts": req}, notify)
        if not resp.get("success"):
            raise criu.failure(resp, os.path.join(o.work_path, RESTORE_LOG), "RESTORE")
        pid = (resp.get("restore") or {}).get("pid") or pid
        state["pid"] = pid
        state["pid_start"] = st.start_time(pid)
        if state["pid_start"] is None:
            raise PyociError("container init exited during restore")
        state["status"] = st.RUNNING
        state.pop("cgroup_intent", None)
        store.save(cid, state)
        if o.pid_file:
            write_atomic(o.pid_file, str(pid), 0o644)
    except BaseException as e:
        from pyoci.create import _rollback

        _rollback(store, cid, cgroup, pid)
        if isinstance(e, OSError):
            from pyoci.create import _describe

            raise PyociError(_describe(e)) from None
        raise
    finally:
        for fd in opened:
            try:
                os.close(fd)
            except OSError:
                pass
        if mounted:
            from pyoci.linux import mounts as m

            try:
                m.umount(criu_root, 2)  # MNT_DETACH
            except OSError:
                pass
        try:
            os.rmdir(criu_root)
        except OSError:
            pass
    return Restored(pid, warnings)


def _make_mountpoints(config: dict[str, Any], rootfs: str, bundle: str) -> None:
    """Create the bind mounts' mountpoints in the rootfs, as runc does before a restore.

    CRIU mounts the external binds where they were, and a rootfs rebuilt for the
    restore (podman's ``restore --import``) may lack a file such as /etc/hosts
    that only the first create made. Those under a tmpfs come back with it.
    """
    from pyoci.linux.rootfs import make_in_root

    mounts = config.get("mounts") or []
    tmpfs = [m["destination"].rstrip("/") + "/" for m in mounts if m.get("type") == "tmpfs"]
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in mounts:
            dest = m.get("destination") or ""
            if not _is_bind(m) or any(dest.startswith(t) for t in tmpfs):
                continue
            src = m.get("source") or ""
            if not os.path.isabs(src):
                src = os.path.join(bundle, src)
            os.close(make_in_root(rootfd, dest, is_file=not os.path.isdir(src)))
    finally:
        os.close(rootfd)


def _cgroup_roots(pid: int) -> list[dict[str, str]]:
    """CRIU's cg_root for each hierarchy ``pid`` is in: restore the tree below it."""
    roots = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls.startswith("name="):
                continue
            roots.append({"ctrl": ctrls or None, "path": path})
    return roots


def _load_descriptors(image_path: str) -> list[str]:
    try:
        with open(os.path.join(image_path, DESCRIPTORS)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise PyociError(f"{image_path}/{DESCRIPTORS}: {e}") from None
    return [d for d in data if isinstance(d, str)]

