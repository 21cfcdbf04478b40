"""pyoci update: change a running container's cgroup limits.

``--resources FILE|-`` takes a linux.resources object (device rules are left
alone, as runc does); otherwise runc's individual flags build one.
"""

from __future__ import annotations

import sys

from pyoci.cli import Flag, ParsedArgs, one_id
from pyoci.errors import UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options] <container-id>"
FLAGS = [
    Flag("resources", "r", value=True, help="path to a resources JSON file, or '-' for stdin"),
    Flag("blkio-weight", value=True, help="per cgroup weight, 10 to 1000"),
    Flag("cpu-period", value=True, help="CPU CFS period (usecs)"),
    Flag("cpu-quota", value=True, help="CPU CFS hardcap limit (usecs)"),
    Flag("cpu-share", value=True, help="CPU shares"),
    Flag("cpu-rt-period", value=True, help="CPU realtime period (usecs)"),
    Flag("cpu-rt-runtime", value=True, help="CPU realtime hardcap limit (usecs)"),
    Flag("cpuset-cpus", value=True, help="CPU(s) to use"),
    Flag("cpuset-mems", value=True, help="memory node(s) to use"),
    Flag("memory", value=True, help="memory limit (bytes, or with a k/m/g suffix)"),
    Flag("memory-reservation", value=True, help="memory reservation (soft limit)"),
    Flag("memory-swap", value=True, help="memory + swap limit; -1 for unlimited swap"),
    Flag("pids-limit", value=True, help="maximum number of pids"),
    Flag("l3-cache-schema", value=True, help="Intel RDT L3 cache schema (unsupported)"),
    Flag("mem-bw-schema", value=True, help="Intel RDT memory bandwidth schema (unsupported)"),
]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def parse_size(flag: str, raw: str) -> int:
    """runc's RAMInBytes: 1024-based suffixes; -1 means unlimited."""
    text = raw.strip().lower()
    if text == "-1":
        return -1
    num = text.rstrip("kmgtb")
    unit = text[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -2
    if value < 0 or unit not in _UNITS:
        raise UsageError(f"invalid value for --{flag}: {raw}")
    return int(value * _UNITS[unit])


def _int(flag: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"invalid value for --{flag}: {raw}") from None


def resources_from_flags(flags: ParsedArgs) -> dict[str, Any]:
    res: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        res.setdefault(section, {})[key] = value

    for flag, section, key in (("memory", "memory", "limit"),
                               ("memory-reservation", "memory", "reservation"),
                               ("memory-swap", "memory", "swap")):
        if flags.get(flag) is not None:
            put(section, key, parse_size(flag, str(flags.get(flag))))
    for flag, key in (("cpu-period", "period"), ("cpu-quota", "quota"), ("cpu-share", "shares"),
                      ("cpu-rt-period", "realtimePeriod"), ("cpu-rt-runtime", "realtimeRuntime")):
        if flags.get(flag) is not None:
            put("cpu", key, _int(flag, str(flags.get(flag))))
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if flags.get(flag) is not None:
            put("cpu", key, str(flags.get(flag)))
    if flags.get("pids-limit") is not None:
        put("pids", "limit", _int("pids-limit", str(flags.get("pids-limit"))))
    if flags.get("blkio-weight") is not None:
        put("blockIO", "weight", _int("blkio-weight", str(flags.get("blkio-weight"))))
    if flags.get("l3-cache-schema") or flags.get("mem-bw-schema"):
        raise UsageError("intel rdt is not supported by pyoci on this host")
    return res


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.spec.load import parse_json

    cid = one_id(args, "update")
    source = flags.get("resources")
    if source:
        raw = sys.stdin.buffer.read() if source == "-" else _read(str(source))
        resources = parse_json(raw, "resources")
    else:
        resources = resources_from_flags(flags)
    ctx.runtime().get(cid).update(resources, validate=bool(source))
    return 0


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"read {path}: {(e.strerror or '').lower()}") from None
