"""pyoci start."""

from pyoci.cli import Flag, ParsedArgs, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "<container-id>"
FLAGS: list[Flag] = []


def run(ctx: "Any", flags: ParsedArgs, args: list[str]) -> int:
    cid = one_id(args, "start")
    container = ctx.runtime().get(cid)
    if ctx.debug:
        from pyoci.cli import log

        log.debug(f"start {cid}: signalling init pid {container.pid}")
    container.start()
    if ctx.debug:
        log.debug(f"start {cid}: container process running, poststart hooks done")
    return 0
