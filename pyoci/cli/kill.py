"""pyoci kill <id> [signal]."""

from pyoci.cli import Flag, ParsedArgs
from pyoci.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id> [signal]"
FLAGS = [Flag("all", "a", help="send the specified signal to all processes inside the container")]


def run(ctx: "Any", flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.container import parse_signal
    from pyoci.runtime import check_id

    if not args:
        raise UsageError('"kill" requires a minimum of 1 argument(s): container id is missing')
    if len(args) > 2:
        raise UsageError('"kill" requires a maximum of 2 argument(s)')
    cid = check_id(args[0])
    sig = parse_signal(args[1] if len(args) > 1 else "TERM")
    ctx.runtime().get(cid).kill(sig, bool(flags.get("all")))
    return 0
