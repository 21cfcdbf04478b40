"""pyoci features: what this build and this host really support (features.md)."""

from __future__ import annotations

import sys

from pyoci.cli import Flag, ParsedArgs
from pyoci.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = ""
FLAGS: list[Flag] = []


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.cli.state import pretty
    from pyoci.features import features

    if args:
        raise UsageError('"features" requires exactly 0 argument(s)')
    sys.stdout.write(pretty(features()) + "\n")
    return 0
