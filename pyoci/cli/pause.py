"""pyoci pause / resume: the cgroup freezer."""

from __future__ import annotations

from pyoci.cli import Flag, ParsedArgs, one_id
from pyoci.errors import IncorrectStatus, PyociError

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
        from pyoci.container import Container

        cid = one_id(args, self.verb)
        store = ctx.store()
        lock = store.lock(cid)
        try:
            c = Container.load(store, cid)
            status = c.status()
            cg = c.cgroup()
            if cg is not None and getattr(cg, "rootless", False):
                cg.freeze()  # raises, saying why a rootless container without a cgroup can't
            if cg is None or not cg.has_freezer():
                raise PyociError("cannot pause or resume a container without a freezer cgroup")
            if self.verb == "pause":
                if status not in ("running", "created"):
                    raise IncorrectStatus("container not running")
                cg.freeze()
            else:
                if status != "paused":
                    raise IncorrectStatus("container not paused")
                cg.thaw()
        finally:
            store.unlock(lock)
        return 0
