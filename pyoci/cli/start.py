"""pyoci start."""

from pyoci.cli import Flag, ParsedArgs, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "<container-id>"
FLAGS: list[Flag] = []


def run(ctx: "Any", flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.container import Container

    cid = one_id(args, "start")
    store = ctx.store()
    lock = store.lock(cid)
    try:
        container = Container.load(store, cid)
        if ctx.debug:
            from pyoci.cli import log

            log.debug(f"start {cid}: signalling init pid {container.state.get('pid')}")
        container.start()
    finally:
        store.unlock(lock)
    if ctx.debug:
        log.debug(f"start {cid}: container process running, poststart hooks done")
    return 0
