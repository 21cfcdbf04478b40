"""pyoci delete [--force] <id>."""

from pyoci.cli import Flag, ParsedArgs, one_id
from pyoci.errors import ContainerNotFound

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id>"
FLAGS = [Flag("force", "f", help="forcibly delete the container if it is still running")]


def run(ctx: "Any", flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.cli import log
    from pyoci.container import Container, remove_leftover

    cid = one_id(args, "delete")
    store = ctx.store()
    force = bool(flags.get("force"))
    try:
        lock = store.lock(cid)
    except ContainerNotFound:
        if force:
            return 0
        raise
    try:
        try:
            container = Container.load(store, cid)
        except ContainerNotFound:
            if not force:
                raise
            try:
                remove_leftover(store, cid)  # a create that died before writing its state
            except ContainerNotFound:
                pass  # another delete got there first: the outcome is the same
            return 0
        for w in container.delete(force):
            log.warning(w)
    finally:
        store.unlock(lock)
    return 0
