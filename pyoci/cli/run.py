"""pyoci run: create + start, then wait and exit with the container's status."""

from __future__ import annotations

from pyoci.cli import Flag, ParsedArgs, one_id
from pyoci.cli.create import FLAGS as CREATE_FLAGS
from pyoci.cli.create import options

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id>"
FLAGS = [
    *CREATE_FLAGS,
    Flag("detach", "d", help="detach from the container's process"),
    Flag("keep", help="do not delete the container after it exits"),
    Flag("no-subreaper", help="disable the use of the subreaper used to reap reparented processes"),
]
PR_SET_CHILD_SUBREAPER = 36


WITHOUT_GC = True  # see pyoci.cli._without_gc; foreground.settle() before the wait


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.cli import foreground, log

    cid = one_id(args, "run")
    detach = bool(flags.get("detach"))
    rt = ctx.runtime()
    if not detach and not flags.get("no-subreaper"):
        from pyoci._native import lib

        # The init is our grandchild when it has its own pid namespace: be its reaper.
        lib.pyoci_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    container = rt.create(cid, **options(flags, foreground=not detach))
    for w in container.warnings:
        log.warning(w)
    if detach:
        container.start()
        return 0
    pid = container.pid
    foreground.settle()
    proxy = None
    forward = foreground.forward_signals(pid)
    try:
        if container.console is not None:
            from pyoci.cli.console import Proxy

            proxy = Proxy(container.console)
            container.console = None  # the proxy closes it
        container.start()
        if proxy is not None:
            exited: list[int] = []
            proxy.pump(lambda: foreground.reaped(pid, exited))
            status = exited[0] if exited else foreground.wait(pid)
        else:
            status = foreground.wait(pid)
    except BaseException:
        try:
            container.delete(force=True)
        except Exception:
            pass
        raise
    finally:
        forward()
        if proxy is not None:
            proxy.close()
    if not flags.get("keep"):
        for w in container.delete(force=True):
            log.warning(w)
    return status
