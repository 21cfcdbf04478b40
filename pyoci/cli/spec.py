"""pyoci spec: write a default config.json, as ``runc spec`` does."""

from __future__ import annotations

import os

from pyoci.cli import Flag, ParsedArgs
from pyoci.errors import PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "[command options]"
DESCRIPTION = "The spec command creates the new specification file named config.json."
FLAGS = [
    Flag("bundle", "b", value=True, help="path to the root of the bundle directory"),
    Flag("rootless", help="generate a configuration for a rootless container"),
]


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    import json

    from pyoci.spec.default import default_config

    if args:
        raise UsageError('"spec" requires exactly 0 argument(s)')
    bundle = str(flags.get("bundle") or ".")
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyociError("File config.json exists. Remove it first")
    cfg = default_config(rootless=bool(flags.get("rootless")))
    if flags.get("rootless"):
        for kind, ident in (("uid", os.geteuid()), ("gid", os.getegid())):
            cfg["linux"][f"{kind}Mappings"][0]["hostID"] = ident
    try:
        with open(path, "w") as f:
            json.dump(cfg, f, indent="\t")
            f.write("\n")
    except OSError as e:
        raise PyociError(f"write {path}: {(e.strerror or '').lower()}") from None
    return 0
