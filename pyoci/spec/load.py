"""Reading config.json and process.json from disk.

Loading is kept apart from validation so that every caller gets the same
one-line errors for the I/O and JSON failures that happen before any schema is
involved, and so that the raw bytes reach :func:`pyoci.spec.schema.check_cached`,
whose cache key is the exact file content rather than a re-serialisation.
"""

from __future__ import annotations

import os

from pyoci import jsonio
from pyoci.errors import SpecError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

__all__ = ["parse_json", "read_config", "read_process"]


def _read_bytes(path: str, label: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        # "no such file or directory" is the wording callers match on (runc
        # says "JSON specification file config.json not found").
        raise SpecError(f"{label}: no such file or directory: {path}") from None
    except IsADirectoryError:
        raise SpecError(f"{label}: is a directory: {path}") from None
    except PermissionError:
        raise SpecError(f"{label}: permission denied: {path}") from None
    except OSError as e:
        raise SpecError(f"{label}: {(e.strerror or str(e)).lower()}: {path}") from None


def parse_json(raw: bytes, label: str) -> dict[str, Any]:
    """Decode ``raw`` into a JSON object, or raise a one-line SpecError.

    Exposed so that ``update --resources -`` and ``exec --process -`` style
    inputs read from stdin get the same diagnostics as files.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{label}: invalid json: not utf-8 at byte {e.start}") from None
    try:
        doc = jsonio.loads(text)
    except ValueError as e:  # json.JSONDecodeError carries the position
        msg, line = getattr(e, "msg", str(e)), getattr(e, "lineno", 1)
        raise SpecError(f"{label}: invalid json: {msg} (line {line})") from None
    except RecursionError:
        raise SpecError(f"{label}: invalid json: nested too deeply") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{label}: top level must be a json object, got {_json_type(doc)}")
    return doc


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def read_config(bundle: str) -> tuple[dict[str, Any], bytes]:
    """Return ``(config, raw bytes)`` of ``<bundle>/config.json``.

    The path in messages is absolute because the runtime is often run from a
    directory unrelated to the bundle (conmon, the containerd shim).
    """
    path = os.path.join(os.path.abspath(bundle), "config.json")
    raw = _read_bytes(path, "config.json")
    return parse_json(raw, "config.json"), raw


def read_process(path: str) -> dict[str, Any]:
    """Return the process object that ``exec --process`` names."""
    raw = _read_bytes(os.path.abspath(path), "process.json")
    return parse_json(raw, "process.json")
