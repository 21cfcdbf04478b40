"""pyoci exec: run a new process in a running container.

Runtime failures exit 255, as runc's do, so callers can tell them from the
process's own exit status.
"""

from __future__ import annotations

import os

from pyoci.cli import Flag, ParsedArgs, int_flag
from pyoci.errors import PyociError, UsageError

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


def _run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.runtime import check_id

    if not args:
        raise UsageError('"exec" requires a minimum of 1 argument(s): container id is missing')
    cid = check_id(args[0])
    container = ctx.runtime().get(cid)
    detach = bool(flags.get("detach"))
    console_socket = flags.get("console-socket")
    options: dict[str, Any] = {}
    if flags.get("process"):
        from pyoci.spec.load import _read_bytes, parse_json

        path = os.path.abspath(str(flags.get("process")))
        raw = _read_bytes(path, "process.json")
        process: Any = parse_json(raw, "process.json")
        options["process_raw"] = raw
    else:
        if len(args) < 2:
            raise UsageError("exec: no command given (args or --process)")
        process = args[1:]
    tty = bool(process.get("terminal")) if isinstance(process, dict) else bool(flags.get("tty"))
    if tty and detach and not console_socket:
        raise PyociError("cannot allocate tty if pyoci will detach without setting console socket")
    log = None
    if ctx.debug:
        from pyoci.cli import log
    proc = container.exec(
        process, tty=bool(flags.get("tty")), detach=detach,
        env=list(flags.get("env") or []),  # type: ignore[call-overload]
        cwd=flags.get("cwd") or None, user=flags.get("user") or None,
        additional_gids=list(flags.get("additional-gids") or []),  # type: ignore[call-overload]
        caps=list(flags.get("cap") or []),  # type: ignore[call-overload]
        apparmor=flags.get("apparmor"), process_label=flags.get("process-label"),
        no_new_privs=bool(flags.get("no-new-privs")), pid_file=flags.get("pid-file"),
        console_socket=console_socket, preserve_fds=int_flag(flags, "preserve-fds"),
        cgroups=list(flags.get("cgroup") or []),  # type: ignore[call-overload]
        ignore_paused=bool(flags.get("ignore-paused")), keep_subreaper=not detach,
        warn=_warn, debug=log.debug if log is not None else None, **options)
    if detach:
        return 0
    from pyoci.cli import foreground

    foreground.settle()
    pid = proc.pid
    restore = foreground.forward_signals(pid)
    proxy = None
    try:
        if proc.console is not None:
            from pyoci.cli.console import Proxy

            proxy = Proxy(proc.console)
            proc.console = None  # the proxy closes it
            exited: list[int] = []
            proxy.pump(lambda: foreground.reaped(pid, exited))
            return exited[0] if exited else foreground.wait(pid)
        return foreground.wait(pid)
    finally:
        restore()
        if proxy is not None:
            proxy.close()


def _warn(message: str) -> None:
    from pyoci.cli import log

    log.warning(message)
