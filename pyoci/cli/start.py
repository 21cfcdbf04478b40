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
        Container.load(store, cid).start()
    finally:
        store.unlock(lock)
    return 0
