"""JSON without the import cost of the ``json`` package.

``import json`` pulls in ``re`` and ``enum`` and costs several milliseconds:
more than everything else ``pyoci state`` does. The C accelerator ``_json``
that ``json`` itself uses is all we need, so the lean commands use it directly.
"""

import _json

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any



class _Context:
    """The attributes the C scanner reads from a ``JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012  - the scanner expects a plain dict

    @staticmethod
    def parse_constant(name: str) -> "Any":
        raise ValueError(f"invalid constant {name}")


_scan = _json.make_scanner(_Context)
_WS = " \t\n\r"


def loads(text: str | bytes) -> "Any":
    """Parse one JSON document; raise ValueError with the offset on bad input."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    end = len(text)
    idx = 0
    while idx < end and text[idx] in _WS:
        idx += 1
    try:
        obj, idx = _scan(text, idx)
    except (StopIteration, SystemError):
        # The accelerator reports errors through json.decoder; only then pay for it.
        import json

        json.loads(text)  # raises json.JSONDecodeError (a ValueError) with line and column
        raise ValueError("invalid json") from None
    while idx < end and text[idx] in _WS:
        idx += 1
    if idx != end:
        raise ValueError(f"extra data at offset {idx}")
    return obj


def _fail(o: object) -> "Any":
    raise TypeError(f"object of type {type(o).__name__} is not json serialisable")


def dumps(obj: "Any", sort_keys: bool = False) -> str:
    """Serialise compactly (ASCII only), the way runc writes its state."""
    enc = _json.make_encoder(
        {}, _fail, _json.encode_basestring_ascii, None, ":", ",", sort_keys, False, True
    )
    return "".join(enc(obj, 0))
