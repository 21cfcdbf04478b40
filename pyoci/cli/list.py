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
            row = c.state()
        except PyociError:
            continue
        if not row.get("owner"):
            row["owner"] = _owner(ctx.store().dir(row["id"]))
        rows.append(row)
    if flags.get("quiet"):
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif fmt == "json":
        from pyoci import jsonio

        sys.stdout.write(jsonio.dumps(rows) + "\n")
    else:
        lines = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        lines += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"],
                   r["owner"]) for r in rows]
        widths = [max(len(line[i]) for line in lines) for i in range(6)]
        for line in lines:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                             .rstrip() + "\n")
    return 0


def _owner(state_dir: str) -> str:
    """The user who owns the container's state directory, as runc's list shows it."""
    import os
    import pwd

    try:
        uid = os.stat(state_dir).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"
