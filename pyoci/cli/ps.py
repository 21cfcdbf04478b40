"""pyoci ps: the processes in the container's cgroup."""

from __future__ import annotations

import sys

from pyoci.cli import Flag, ParsedArgs
from pyoci.errors import PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id> [ps options]"
FLAGS = [Flag("format", "f", value=True, default="table", help="select one of: table or json")]
STOP = True


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.container import Container
    from pyoci.state.store import check_id

    if not args:
        raise UsageError('"ps" requires a minimum of 1 argument(s): container id is missing')
    c = Container.load(ctx.store(), check_id(args[0]))
    pids = sorted(c.pids())
    fmt = flags.get("format")
    if fmt == "json":
        from pyoci import jsonio

        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise UsageError(f"invalid format option: {fmt}")
    import subprocess

    ps_args = args[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode != 0:
        raise PyociError(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0]
    try:
        col = header.split().index("PID")
    except ValueError:
        raise PyociError("couldn't find PID field in ps output") from None
    keep = set(pids)
    sys.stdout.write(header + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in keep:
            sys.stdout.write(line + "\n")
    return 0
