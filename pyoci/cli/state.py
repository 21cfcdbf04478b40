"""pyoci state: the runtime-spec state JSON, indented like runc's."""

from __future__ import annotations

import sys

from pyoci.cli.args import Flag, ParsedArgs, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "<container-id>"
FLAGS: list[Flag] = []


def run(ctx: Any, flags: ParsedArgs, args: list[str]) -> int:
    from pyoci.container import Container

    cid = one_id(args, "state")
    state = Container.load(ctx.store(), cid).oci_state()
    sys.stdout.write(pretty(state) + "\n")
    return 0


def pretty(obj: Any, indent: str = "") -> str:
    """Two-space indented JSON, without importing ``json``."""
    from pyoci import jsonio

    if isinstance(obj, dict) and obj:
        inner = indent + "  "
        items = [f"{inner}{jsonio.dumps(str(k))}: {pretty(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(obj, list) and obj:
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + pretty(v, inner) for v in obj) + f"\n{indent}]"
    return jsonio.dumps(obj)
