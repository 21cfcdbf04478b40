"""pyoci start."""

from __future__ import annotations

from typing import Any

from pyoci.cli.args import Flag, ParsedArgs, one_id

USAGE = "<container-id>"
FLAGS: list[Flag] = []


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.container import Container

    cid = one_id(args, "start")
    store = ctx.store()
    lock = store.lock(cid)
    try:
        Container.load(store, cid).start()
    finally:
        store.unlock(lock)
    return 0
