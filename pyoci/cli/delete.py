"""pyoci delete [--force] <id>."""

from pyoci.cli import Flag, ParsedArgs, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id>"
FLAGS = [Flag("force", "f", help="forcibly delete the container if it is still running")]


def run(ctx: "Any", flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.cli import log

    cid = one_id(args, "delete")
    for w in ctx.runtime().delete(cid, bool(flags.get("force"))):
        log.warning(w)
    return 0
