"""pyoci state: the runtime-spec state JSON, indented like runc's."""

import sys

from pyoci.cli import Flag, ParsedArgs, one_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = "<container-id>"
FLAGS: list[Flag] = []


def run(ctx: "Any", flags: ParsedArgs, args: list[str]) -> int:
    cid = one_id(args, "state")
    sys.stdout.write(pretty(ctx.runtime().get(cid).state()) + "\n")
    return 0


def pretty(obj: "Any", indent: str = "") -> str:
    """Two-space indented JSON, ASCII only, without importing ``json`` or ``_json``.

    Loading the ``_json`` extension costs ``pyoci state`` more than everything
    else it does; the state document is a handful of strings and numbers.
    """
    if isinstance(obj, dict) and obj:
        inner = indent + "  "
        items = [f"{inner}{_string(str(k))}: {pretty(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(obj, list | tuple) and obj:
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + pretty(v, inner) for v in obj) + f"\n{indent}]"
    if isinstance(obj, str):
        return _string(obj)
    if obj is None or isinstance(obj, bool):
        return {None: "null", True: "true", False: "false"}[obj]
    if isinstance(obj, int | float) and obj == obj and obj not in (float("inf"), float("-inf")):
        return repr(obj)
    if isinstance(obj, dict | list | tuple):
        return "{}" if isinstance(obj, dict) else "[]"
    raise TypeError(f"object of type {type(obj).__name__} is not json serialisable")


_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)} | {
    ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r",
}


def _string(s: str) -> str:
    """A JSON string with every non-ASCII character escaped, as ``json.dumps`` writes it."""
    s = s.translate(_ESCAPES)
    if not s.isascii():
        s = "".join(c if c.isascii() else _escape_wide(ord(c)) for c in s)
    return f'"{s}"'


def _escape_wide(code: int) -> str:
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
