"""pyoci events: cgroup statistics and OOM notifications, in runc's JSON format."""

from __future__ import annotations

import sys

from pyoci.cli import Flag, ParsedArgs, one_id
from pyoci.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id>"
FLAGS = [
    Flag("interval", value=True, default="5s", help="set the stats collection interval"),
    Flag("stats", help="display the container's stats then exit"),
]

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def parse_duration(raw: str) -> float:
    """A Go duration string (``5s``, ``1m30s``, ``250ms``) in seconds."""
    text = raw.strip()
    if not text:
        raise UsageError(f"invalid interval: {raw}")
    total, i = 0.0, 0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < len(text) and not (text[k].isdigit() or text[k] == "."):
            k += 1
        num, unit = text[i:j], text[j:k]
        if not num or unit not in _DURATION_UNITS:
            raise UsageError(f"invalid interval: {raw}")
        total += float(num) * _DURATION_UNITS[unit]
        i = k
    if total <= 0:
        raise UsageError(f"invalid interval: {raw}")
    return total


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci import jsonio
    cid = one_id(args, "events")
    interval = parse_duration(str(flags.get("interval") or "5s"))
    container = ctx.runtime().get(cid)

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(jsonio.dumps(event) + "\n")
        sys.stdout.flush()

    if flags.get("stats"):
        emit({"type": "stats", "id": cid, "data": container.stats()})
        return 0
    for event in container.events(interval):
        emit(event)
    return 0
