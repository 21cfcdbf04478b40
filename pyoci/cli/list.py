"""pyoci list."""

from __future__ import annotations

import sys

from pyoci.cli import Flag, ParsedArgs
from pyoci.errors import PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options]"
FLAGS = [
    Flag("format", "f", value=True, default="table", help="select one of: table or json"),
    Flag("quiet", "q", help="display only container IDs"),
]


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    if args:
        raise UsageError('"list" requires exactly 0 argument(s)')
    fmt = flags.get("format")
    if fmt not in ("table", "json"):
        raise UsageError(f"invalid format option: {fmt}")
    rows = []
    for c in ctx.runtime().list():
        try:
            rows.append(c.state())
        except PyociError:
            continue
    if flags.get("quiet"):
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif fmt == "json":
        from pyoci import jsonio

        sys.stdout.write(jsonio.dumps(rows) + "\n")
    else:
        lines = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        lines += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"],
                   r["owner"] or "root") for r in rows]
        widths = [max(len(line[i]) for line in lines) for i in range(6)]
        for line in lines:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                             .rstrip() + "\n")
    return 0
