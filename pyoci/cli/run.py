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
    from pyoci.container import Container
    from pyoci.create import create

    cid = one_id(args, "run")
    detach = bool(flags.get("detach"))
    store = ctx.store()
    if not detach and not flags.get("no-subreaper"):
        from pyoci._native import lib

        # The init is our grandchild when it has its own pid namespace: be its reaper.
        lib.pyoci_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    created = create(store, cid, options(flags, foreground=not detach,
                                          systemd_cgroup=ctx.systemd_cgroup))
    pid = created.pid
    for w in created.warnings:
        log.warning(w)
    container = Container.load(store, cid)
    if detach:
        container.start()
        return 0
    foreground.settle()
    proxy = None
    forward = foreground.forward_signals(pid)
    try:
        if created.console is not None:
            from pyoci.cli.console import Proxy, receive_master

            proxy = Proxy(receive_master(created.console))
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
        for w in Container.load(store, cid).delete(force=True):
            log.warning(w)
    return status
