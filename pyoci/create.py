"""``create``: bundle -> validated config -> plan -> cgroup -> container process.

A failed ``create`` leaves nothing behind: the process is killed, the cgroup
removed and the state directory deleted, and the original error is the one
reported even when a cleanup step fails too.
"""

from __future__ import annotations

import os
import time

from pyoci import SPEC_VERSION, faults, trace
from pyoci.errors import CgroupError, PyociError, SpecError
from pyoci.state import status as st
from pyoci.state.store import CONFIG_FILE, FIFO, Store, check_id, write_atomic

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Options:
    def __init__(self, bundle: str = ".", pid_file: str | None = None,
                 console_socket: str | None = None, no_pivot: bool = False,
                 no_new_keyring: bool = False, preserve_fds: int = 0,
                 foreground: bool = False, rootless: bool = False,
                 systemd_cgroup: bool = False) -> None:
        self.bundle = os.path.abspath(bundle or ".")
        self.pid_file = os.path.abspath(pid_file) if pid_file else None
        self.console_socket = os.path.abspath(console_socket) if console_socket else None
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.foreground = foreground
        self.rootless = rootless  # --rootless: see pyoci.rootless
        self.systemd_cgroup = systemd_cgroup


class Created:
    """What ``create`` hands back: the init's pid, warnings, and for a foreground
    ``run`` with a terminal, the socket the pty master arrives on."""

    def __init__(self, pid: int, warnings: list[str], console: int | None) -> None:
        self.pid = pid
        self.warnings = warnings
        self.console = console


def new_container_config(store: Store, cid: str, bundle: str) -> tuple[dict[str, Any], bytes,
                                                                        list[str]]:
    """The first steps of ``create`` and ``restore``: a free id, then ``bundle``'s config,
    validated (fully, unless these bytes passed before); returns it with its warnings."""
    from pyoci.spec import verdict
    from pyoci.spec.load import read_config

    check_id(cid)
    if store.exists(cid) or os.path.isdir(store.dir(cid)):
        from pyoci.errors import ContainerExists

        raise ContainerExists(cid)
    config, raw = read_config(bundle)
    trace.debug(f"create {cid}: config loaded from {bundle}/config.json ({len(raw)} bytes)")
    warnings = verdict.validated(config, raw, os.path.join(store.root, ".cache"))
    return config, raw, warnings


def create(store: Store, cid: str, opts: Options) -> Created:
    """Create the container, or raise with nothing left behind."""
    from pyoci.spec import plan as planmod

    config, raw, warnings = new_container_config(store, cid, opts.bundle)
    cache = os.path.join(store.root, ".cache")
    # runtime-spec 1.3: process is REQUIRED only by start. Without one the container
    # is created (namespaces, mounts, cgroup) and start refuses it.
    process = config.get("process") or {}
    if process.get("terminal") and not opts.console_socket and not opts.foreground:
        raise PyociError(
            "cannot allocate tty if pyoci will detach without setting console socket"
        )
    if not process.get("terminal") and opts.console_socket:
        raise PyociError("cannot use console socket if pyoci will not detach or allocate tty")
    linux = config.get("linux") or {}
    if not any(n["type"] == "mount" for n in linux.get("namespaces") or []):
        # The runtime's mount namespace is inherited: changing mounts there would
        # change the host's, so these fields can't be honoured. Say so, loudly.
        for field, present in (("mounts", config.get("mounts")),
                               ("linux.maskedPaths", linux.get("maskedPaths")),
                               ("linux.readonlyPaths", linux.get("readonlyPaths")),
                               ("linux.devices", linux.get("devices")),
                               ("root.readonly", (config.get("root") or {}).get("readonly"))):
            if present:
                warnings.append(f"{field}: not applied: the container has no mount "
                                "namespace of its own")
    if os.geteuid() != 0:
        from pyoci import rootless

        rootless.check_config(config)
    from pyoci.linux import lsm

    lsm.check_available(process, linux)
    if linux.get("intelRdt"):
        if not os.path.isdir("/sys/fs/resctrl/info"):
            raise SpecError("config.json: linux.intelRdt: resctrl is not mounted on this host "
                            "(mount -t resctrl resctrl /sys/fs/resctrl)")
        raise SpecError("config.json: linux.intelRdt: not supported by pyoci yet")
    notify = os.environ.get("NOTIFY_SOCKET")
    if notify:
        from pyoci.linux import sdnotify

        sdnotify.prepare_config(config, store.dir(cid))
    plan = planmod.build(
        cid, opts.bundle, config, no_pivot=opts.no_pivot, no_new_keyring=opts.no_new_keyring,
        preserve_fds=opts.preserve_fds, console_socket=opts.console_socket,
        cache_dir=os.path.join(cache, "seccomp"),
    )
    # The plan repeats validation's word on unknown capabilities (exec has only the plan's).
    warnings += [w for w in plan.warnings if f"config.json: {w}" not in warnings]
    trace.debug(f"create {cid}: validated ({len(warnings)} warnings); rootfs {plan.rootfs}")
    trace.debug(f"create {cid}: namespaces: " + (", ".join(
        n["type"] + (f" (join {n['path']})" if n.get("path") else " (new)")
        for n in linux.get("namespaces") or []) or "none (the runtime's)"))
    if not os.path.isdir(plan.rootfs):
        raise SpecError(f"config.json: root.path: rootfs {plan.rootfs} is not a directory")
    state_dir = store.claim(cid)
    cgroup = None
    init_pid = 0
    console = ours = None
    try:
        if process.get("terminal"):
            from pyoci.process.spawn import connect_console

            if opts.console_socket:
                console = connect_console(opts.console_socket)
            else:
                import _socket

                a, b = _socket.socketpair(_socket.AF_UNIX,
                                          _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
                ours, console = a.detach(), b.detach()
        if notify:
            sdnotify.make_dir(state_dir)
        write_atomic(os.path.join(state_dir, CONFIG_FILE), raw, durable=False)
        _make_fifo(os.path.join(state_dir, FIFO), plan, 0o622)
        _make_fifo(os.path.join(state_dir, "start.status"), plan, 0o600)
        faults.point("create:claimed")
        hooks = config.get("hooks") or {}
        now = time.time()
        from pyoci.cgroups import manager_for

        cgroup = _unused(manager_for(linux.get("cgroupsPath"), cid, systemd=opts.systemd_cgroup,
                                     rootless=opts.rootless,
                                     annotations=config.get("annotations")))
        state: dict[str, Any] = {
            "ociVersion": config.get("ociVersion", SPEC_VERSION),
            "id": cid,
            "pid": 0,
            "status": st.CREATING,
            "bundle": opts.bundle,
            "rootfs": plan.rootfs,
            "created": _rfc3339(now),
            "owner": "",
            "annotations": config.get("annotations") or {},
            "cgroup": None,
            # Where the cgroup is about to be made: a crash before the next save
            # still lets `delete --force` find and remove it.
            "cgroup_intent": cgroup.to_state(),
            "hooks": {k: hooks[k] for k in ("poststart", "poststop") if hooks.get(k)},
            "pidns": plan.has_ns("pid"),
        }
        if not process:
            state["no_process"] = True
        if notify:
            state["notify_socket"] = notify
        store.save(cid, state, durable=False)  # transient: rewritten below
        if opts.rootless:
            cgroup = _rootless_cgroup(cgroup, linux)
        else:
            cgroup.create(linux.get("resources"))
        if cgroup.frozen_by_anyone():
            # The init would wait in the freezer forever (runc's check and wording).
            raise CgroupError("container's cgroup unexpectedly frozen")
        trace.debug(f"create {cid}: cgroup {cgroup.path} created")
        warnings += [f"linux.resources.{k}: not supported by this host's cgroups, ignored"
                     for k in getattr(cgroup, "ignored", ())]
        state["cgroup"] = cgroup.to_state()
        store.save(cid, state, durable=False)
        faults.point("create:cgroup")

        def record_pid(pid: int) -> None:
            nonlocal init_pid
            init_pid = pid

        parent_hooks = None
        netdevs = linux.get("netDevices")
        if hooks.get("prestart") or hooks.get("createRuntime") or netdevs:
            def parent_hooks(pid: int) -> None:
                from pyoci import hooks as hookmod

                if netdevs:
                    from pyoci.linux import netdev

                    netdev.move(netdevs, pid)
                faults.point("create:hooks")
                s = _hook_state(state, pid)
                trace.debug(f"create {cid}: prestart and createRuntime hooks for pid {pid}")
                cwd = hookmod.bundle_cwd(opts.bundle)
                hookmod.run(hooks.get("prestart") or [], "prestart", s, cwd=cwd)
                hookmod.run(hooks.get("createRuntime") or [], "createRuntime", s, cwd=cwd)

        from pyoci.linux.cgroupfs import CgroupMounter
        from pyoci.process.spawn import spawn

        mounter = CgroupMounter(plan.new_ns & 0x02000000 != 0,
                                cgroup.path if cgroup.mode == "v2" else None)
        from pyoci.linux.rootfs import idmap_wanted

        trees: dict[int, int] = {}
        if any(idmap_wanted(e) for e in config.get("mounts") or []):
            from pyoci.linux import idmap

            trees = idmap.prepare(config.get("mounts") or [], opts.bundle, linux)
        if _sources_from_parent(plan):
            from pyoci.linux.rootfs import open_bind_sources

            try:
                trees.update(open_bind_sources(config.get("mounts") or [], opts.bundle))
            except BaseException:
                for fd in trees.values():
                    os.close(fd)
                raise
        placement: dict[str, str] = {}
        try:
            init_pid = spawn(
                plan, state_dir, place=(cgroup.apply if cgroup is not None else lambda pid: None),
                run_parent_hooks=parent_hooks, cgroup_mount=mounter, on_pid=record_pid,
                console=console, mount_trees=trees, cgroup_dir=cgroup.clone_dir(),
                placement=placement,
            )
        finally:
            for fd in trees.values():
                os.close(fd)
        faults.point("create:ready")
        trace.debug(f"create {cid}: init pid {init_pid} ready, cgroup placement by "
                  f"{placement.get('how') or 'cgroup.procs'}; waiting for start")
        state["pid"] = init_pid
        state["cgroup_placement"] = placement.get("how", "")
        state["pid_start"] = st.start_time(init_pid)
        if state["pid_start"] is None:
            raise PyociError("container init exited during create")
        state["status"] = st.CREATED
        store.save(cid, state)
        if opts.pid_file:
            write_atomic(opts.pid_file, str(init_pid), 0o644)
    except BaseException as e:
        if ours is not None:
            os.close(ours)
        _rollback(store, cid, cgroup, init_pid)
        if isinstance(e, OSError):
            raise PyociError(_describe(e)) from None
        raise
    finally:
        if console is not None:
            os.close(console)
    return Created(init_pid, warnings, ours)


def _sources_from_parent(plan: Any) -> bool:
    """Whether we open the bind sources (rootfs.open_bind_sources) rather than the init.

    With a user namespace the init is root only there: a source under a 0700 host
    directory is out of its reach. A joined mount namespace is where the sources
    must be looked up, so the init does it there; without one, nothing is mounted.
    """
    if not plan.has_ns("mount") or any(t == "mount" for t, _ in plan.join):
        return False
    if os.geteuid() != 0:
        # Rootless: cloning a tree of the host's mount namespace needs privileges we
        # lack, and the container's root is the user, who reaches what we reach.
        return False
    return plan.new_userns or any(t == "user" for t, _ in plan.join)


def _make_fifo(path: str, plan: Any, mode: int) -> None:
    """A fifo the container's root can open even in a user namespace."""
    old = os.umask(0)
    try:
        os.mkfifo(path, mode)
    finally:
        os.umask(old)
    if plan.new_userns:
        linux = plan.linux
        os.chown(path, _host_id(linux.get("uidMappings")), _host_id(linux.get("gidMappings")))


def _host_id(mappings: list[dict[str, int]] | None) -> int:
    """The host id the container's root maps to (-1: leave as is)."""
    for m in mappings or []:
        if m["containerID"] == 0:
            return m["hostID"]
    return -1


def _hook_state(state: dict[str, Any], pid: int) -> dict[str, Any]:
    # "created", as crun and the runtime-tools suite expect: the namespaces exist.
    return {"ociVersion": SPEC_VERSION, "id": state["id"], "status": st.CREATED, "pid": pid,
            "bundle": state["bundle"], "annotations": state["annotations"]}


def _rootless_cgroup(cgroup: Any, linux: dict[str, Any]) -> Any:
    """runc's rootless rule: no permission for the cgroup means no cgroup, unless
    limits or an explicit ``cgroupsPath`` were asked for; device rules are skipped.

    In a cgroup the user may write to (a delegated v2 subtree named by
    ``cgroupsPath``) everything but the device rules is applied as usual.
    """
    from pyoci import rootless

    resources = {k: v for k, v in (linux.get("resources") or {}).items() if k != "devices"}
    cgroup.skip_devices = True
    try:
        cgroup.create(resources)
        return cgroup
    except CgroupError as e:
        if not rootless.is_permission_error(e):
            raise
        try:
            cgroup.destroy()
        except CgroupError:
            pass
        if linux.get("cgroupsPath"):
            raise CgroupError(f"unable to apply cgroup configuration: {e} (rootless: "
                              "linux.cgroupsPath names a cgroup the user can't create)") from None
        if rootless.needs_controllers(resources):
            raise rootless.no_cgroup_error(resources, e) from None
        from pyoci.cgroups.none import NoneManager

        trace.debug(f"rootless: no cgroup ({e}); the config asks for no limits")
        return NoneManager(cgroup.path, rootless=True)


def _unused(cgroup: Any) -> Any:
    """The manager, once its cgroup is known to hold no process of someone else's.

    Checked before the cgroup counts as the container's, so a refusal never
    kills or removes what the other processes live in (runc's wording).
    """
    if cgroup.exists():
        pids = cgroup.pids()
        if pids:
            raise CgroupError(f"container's cgroup is not empty: {len(pids)} process(es) found")
    return cgroup


def _rollback(store: Store, cid: str, cgroup: Any, pid: int) -> None:
    """Undo a partial create; never let a cleanup error replace the original one."""
    if pid:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    if cgroup is not None:
        try:
            if cgroup.exists() and cgroup.pids():
                cgroup.kill_all(9)
            deadline = time.monotonic() + 5
            while cgroup.exists() and cgroup.pids() and time.monotonic() < deadline:
                time.sleep(0.005)
            cgroup.destroy()
        except Exception:
            pass
    try:
        store.remove(cid)
    except Exception:
        pass


def _describe(e: OSError) -> str:
    text = (e.strerror or str(e)).lower()
    return f"{e.filename}: {text}" if e.filename else text


