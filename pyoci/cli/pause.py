"""pyoci pause / resume: the cgroup freezer."""

from __future__ import annotations

from pyoci.cli import Flag, ParsedArgs, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def command(verb: str) -> Any:
    return _Freezer(verb)


class _Freezer:
    USAGE = "<container-id>"
    FLAGS: list[Flag] = []  # noqa: RUF012

    def __init__(self, verb: str) -> None:
        self.verb = verb

    def run(self, ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
        cid = one_id(args, self.verb)
        container = ctx.runtime().get(cid)
        if self.verb == "pause":
            container.pause()
        else:
            container.resume()
        return 0
