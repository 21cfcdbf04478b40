"""checkpoint/restore: not supported yet.

Podman probes ``checkpoint --help`` and takes exit 0 to mean support, so even
the help request fails here.
"""

from __future__ import annotations

from pyoci.errors import PyociError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def command(verb: str) -> Any:
    return _Unsupported(verb)


class _Unsupported:
    USAGE = "<container-id>"
    FLAGS: list = []  # noqa: RUF012
    HELP_FAILS = True

    def __init__(self, verb: str) -> None:
        self.verb = verb

    def run(self, ctx: Any, flags: Any, args: list[str]) -> int:
        raise PyociError(f"{self.verb} is not supported by pyoci")
