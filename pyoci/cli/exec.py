"""pyoci exec: run a new process in a running container.

Runtime failures exit 255, as runc's do, so callers can tell them from the
process's own exit status.
"""

from __future__ import annotations

import os

from pyoci.cli import Flag, ParsedArgs, int_flag
from pyoci.errors import IncorrectStatus, PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = ("[command options] <container-id> <command> [command options]"
         "  || -p process.json <container-id>")
STOP = True
FLAGS = [
    Flag("console-socket", value=True, help="path to an AF_UNIX socket to receive the pty master"),
    Flag("cwd", value=True, help="current working directory in the container"),
    Flag("env", "e", value=True, repeat=True, help="set environment variables"),
    Flag("tty", "t", help="allocate a pseudo-TTY"),
    Flag("user", "u", value=True, help="UID (format: <uid>[:<gid>])"),
    Flag("additional-gids", "g", value=True, repeat=True, help="additional gids"),
    Flag("process", "p", value=True, help="path to the process.json"),
    Flag("detach", "d", help="detach from the container's process"),
    Flag("pid-file", value=True, help="specify the file to write the process id to"),
    Flag("process-label", value=True, help="set the asm process label for the process"),
    Flag("apparmor", value=True, help="set the apparmor profile for the process"),
    Flag("no-new-privs", help="set the no new privileges value for the process"),
    Flag("cap", "c", value=True, repeat=True, help="add a capability to the bounding set"),
    Flag("preserve-fds", value=True, default="0", help="pass N additional file descriptors"),
    Flag("cgroup", value=True, repeat=True, help="run the process in a sub-cgroup"),
    Flag("ignore-paused", help="allow exec in a paused container"),
]


WITHOUT_GC = True  # see pyoci.cli._without_gc; foreground.settle() before the wait


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    try:
        return _run(ctx, flags, args)
    except PyociError as e:
        e.exit_code = 255  # type: ignore[attr-defined]
        raise
    except OSError as e:
        err = PyociError(f"{e.filename}: {(e.strerror or '').lower()}" if e.filename
                         else (e.strerror or str(e)).lower())
        err.exit_code = 255  # type: ignore[attr-defined]
        raise err from None


def _process(flags: ParsedArgs, args: list[str], base: dict[str, Any],
             cache: str) -> dict[str, Any]:
    if flags.get("process"):
        from pyoci.spec.load import _read_bytes, parse_json
        from pyoci.spec.validate import validate_process

        path = os.path.abspath(str(flags.get("process")))
        raw = _read_bytes(path, "process.json")
        process = parse_json(raw, "process.json")
        validate_process(process, raw, cache)
        return process
    if not args:
        raise UsageError("exec: no command given (args or --process)")
    process: dict[str, Any] = {
        "terminal": bool(flags.get("tty")),
        "args": list(args),
        "env": list(base.get("env") or []),
        "cwd": str(flags.get("cwd") or base.get("cwd") or "/"),
        "user": dict(base.get("user") or {"uid": 0, "gid": 0}),
        "noNewPrivileges": bool(base.get("noNewPrivileges")) or bool(flags.get("no-new-privs")),
    }
    for key in ("capabilities", "apparmorProfile", "selinuxLabel", "rlimits", "oomScoreAdj"):
        if key in base:
            process[key] = base[key]
    for item in flags.get("env") or []:  # type: ignore[union-attr]
        name = item.partition("=")[0]
        process["env"] = [e for e in process["env"] if e.partition("=")[0] != name] + [item]
    if flags.get("user"):
        uid, _, gid = str(flags.get("user")).partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise UsageError(f"invalid user format: {flags.get('user')}") from None
        process["user"].pop("additionalGids", None)
    gids = flags.get("additional-gids") or []
    if gids:
        try:
            process["user"]["additionalGids"] = [int(g) for g in gids]  # type: ignore[union-attr]
        except ValueError:
            raise UsageError(f"invalid additional-gids: {gids}") from None
    caps = list(flags.get("cap") or [])  # type: ignore[arg-type]
    if caps:
        sets = dict(process.get("capabilities") or {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            sets[kind] = list(dict.fromkeys([*(sets.get(kind) or []), *caps]))
        process["capabilities"] = sets
    if flags.get("apparmor"):
        process["apparmorProfile"] = flags.get("apparmor")
    if flags.get("process-label"):
        process["selinuxLabel"] = flags.get("process-label")
    if not _flags_valid(process):
        # The reference check words the error; it imports jsonschema only on a miss.
        from pyoci import jsonio
        from pyoci.spec.validate import validate_process

        validate_process(process, jsonio.dumps(process, sort_keys=True).encode(), cache)
    return process


_MAX_ID = 1 << 32


def _flags_valid(process: dict[str, Any]) -> bool:
    """Whether the fields the command line can set are certainly valid.

    Everything else was copied from the container's config.json, which is stored
    validated, so only what the flags put in needs checking: the strings (no NUL,
    ``cwd`` absolute) and the ids (uint32). False sends the process through the
    full validator, which then words the error exactly as it always has.
    """
    strings = [*process["args"], *process["env"], process["cwd"]]
    for sets in (process.get("capabilities") or {}).values():
        strings += sets if isinstance(sets, list) else [None]
    for key in ("apparmorProfile", "selinuxLabel"):
        if key in process:
            strings.append(process[key])
    if not process["args"] or not process["cwd"].startswith("/") or any(
            type(s) is not str or "\0" in s for s in strings):
        return False
    user = process["user"]
    ids = [user.get("uid"), user.get("gid"), *(user.get("additionalGids") or [])]
    return all(type(i) is int and 0 <= i < _MAX_ID for i in ids)


def _run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.container import Container
    from pyoci.process import execplan
    from pyoci.state import status as st
    from pyoci.state.store import check_id, write_atomic

    if not args:
        raise UsageError('"exec" requires a minimum of 1 argument(s): container id is missing')
    cid = check_id(args[0])
    store = ctx.store()
    container = Container.load(store, cid)
    status = container.status()
    if status == st.STOPPED:
        raise IncorrectStatus("cannot exec in a stopped container")
    if status == st.PAUSED and not flags.get("ignore-paused"):
        raise IncorrectStatus("cannot exec in a paused container (use --ignore-paused)")
    cache = f"{store.root}/.cache"
    base = execplan.load(store.dir(cid), cid, container.state.get("bundle", ""),
                         f"{cache}/seccomp")
    process = _process(flags, args[1:], base.process, cache)
    from pyoci.linux import lsm

    lsm.check_available(process, {}, "process")
    detach = bool(flags.get("detach"))
    console_socket = flags.get("console-socket")
    if process.get("terminal") and detach and not console_socket:
        raise PyociError("cannot allocate tty if pyoci will detach without setting console socket")
    if console_socket and not process.get("terminal"):
        raise PyociError("cannot use console socket if pyoci will not detach or allocate tty")
    plan = base.plan(process, preserve_fds=int_flag(flags, "preserve-fds"),
                     console_socket=console_socket)  # type: ignore[arg-type]
    if plan.warnings:
        from pyoci.cli import log

        for w in plan.warnings:
            log.warning(w)
    console = ours = None
    if process.get("terminal"):
        if console_socket:
            from pyoci.process.spawn import connect_console

            console = connect_console(os.path.abspath(str(console_socket)))
        else:
            import _socket

            a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            ours, console = a.detach(), b.detach()
    from pyoci.process.tenant import spawn_exec
    from pyoci.state.recorded_cgroup import placer

    cg_state = container.state.get("cgroup")
    place = placer(cg_state) if cg_state else (lambda p: None)
    if flags.get("cgroup"):
        place = _sub_cgroup_placer(container.state.get("cgroup") or {},
                                   list(flags.get("cgroup") or []), place)  # type: ignore[arg-type]
    if ctx.debug:
        from pyoci.cli import log

        log.debug(f"exec {cid}: {process['args']} into the namespaces of init pid "
                  f"{container.state['pid']}")
    try:
        pid = spawn_exec(plan, container.state["pid"], place, console, foreground=not detach,
                         oci_state=container.oci_state)
    finally:
        if console is not None:
            os.close(console)
    if ctx.debug:
        log.debug(f"exec {cid}: process pid {pid} started")
    if flags.get("pid-file"):
        write_atomic(os.path.abspath(str(flags.get("pid-file"))), str(pid), 0o644)
    if detach:
        return 0
    from pyoci.cli import foreground

    foreground.settle()
    restore = foreground.forward_signals(pid)
    proxy = None
    try:
        if ours is not None:
            from pyoci.cli.console import Proxy, receive_master

            proxy = Proxy(receive_master(ours))
            exited: list[int] = []
            proxy.pump(lambda: foreground.reaped(pid, exited))
            return exited[0] if exited else foreground.wait(pid)
        return foreground.wait(pid)
    finally:
        restore()
        if proxy is not None:
            proxy.close()


def _sub_cgroup_placer(cg_state: dict[str, Any], specs: list[str], default: Any) -> Any:
    """``--cgroup [<controller>:]<path>``: run in an existing sub-cgroup of the container's.

    Controllers not named go to the container's own cgroup, as with runc. The
    path is joined onto the container's cgroup as runc joins it: a leading "/"
    is still inside it, so ``/`` (or ``memory:/``) is the container's own cgroup.
    """
    dirs: dict[str, str] = dict(cg_state.get("paths") or {})
    if cg_state.get("unified_root"):
        dirs["unified"] = os.path.join(cg_state["unified_root"], cg_state["path"].lstrip("/"))
    if not dirs:
        raise UsageError("exec --cgroup: the container has no cgroup")
    chosen: dict[str, str] = {}
    for spec in specs:
        ctrl, sep, sub = spec.rpartition(":")
        names = [c for c in (ctrl.split(",") if sep else list(dirs)) if c]
        if ".." in sub.split("/"):
            raise UsageError(f"exec --cgroup {spec}: the path must be relative to the "
                             "container's cgroup")
        sub = sub.strip("/")
        for name in names:
            key = "" if name == "unified" and "" in dirs else name
            if key not in dirs:
                raise UsageError(f"exec --cgroup {spec}: unknown controller {name}")
            target = os.path.join(dirs[key], sub)
            if not os.path.isdir(target):
                raise UsageError(f"exec --cgroup {spec}: no such sub-cgroup {target}")
            chosen[key] = target

    def place(pid: int) -> None:
        default(pid)  # the container's cgroup everywhere, then the named sub-cgroups
        for target in chosen.values():
            with open(os.path.join(target, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    return place
