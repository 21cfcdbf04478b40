"""JSON Schema checks of config.json, process.json, state and features documents.

jsonschema costs about 180 ms to import, which would double the run time of the
lean verbs (``state``, ``start``, ``kill``, ``delete``). So nothing here imports
it at module level: it is imported inside :func:`_validator` the first time a
check really has to run, and :func:`check_cached` lets ``create`` skip it
altogether: for a config that already passed with the same schema and version,
and on a cache miss by accepting with :mod:`pyoci.spec.fastschema` instead.

Only one error is reported, the deepest one, because that is the one that
names the value the user has to change ("linux.seccomp.syscalls[3].action"
rather than "linux").
"""

from __future__ import annotations

import os

import pyoci
from pyoci.errors import SpecError

try:  # the builtin module: hashlib would load OpenSSL first, milliseconds per create
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover - CPython built without it
    from hashlib import sha256 as _sha256

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, TypeVar

    from jsonschema.exceptions import ValidationError

    T = TypeVar("T")

__all__ = [
    "check",
    "check_cached",
    "errors",
    "format_path",
    "schema_bytes",
    "schema_dir",
    "schema_path",
]

# which -> (schema file, label used as the message prefix)
_KINDS: dict[str, tuple[str, str]] = {
    "config": ("config-schema.json", "config.json"),
    "process": ("config-schema.json", "process.json"),
    "state": ("state-schema.json", "state.json"),
    "features": ("features-schema.json", "features.json"),
}


def _per_kind(fn: Callable[[str], T]) -> Callable[[str], T]:
    """``functools.cache`` for a one-argument function of the schema kind.

    ``functools`` itself would import ``collections``, ``operator``, ``keyword``,
    ``reprlib`` and ``types``: about 4 ms of every ``create``, for three caches.
    """
    memo: dict[str, T] = {}

    def cached(which: str = "config") -> T:
        try:
            return memo[which]
        except KeyError:
            memo[which] = value = fn(which)
            return value

    cached.__name__ = fn.__name__
    cached.__doc__ = fn.__doc__
    cached.__wrapped__ = fn  # type: ignore[attr-defined]
    return cached


# Markers kept in the cache directory; past this the oldest are removed, so a
# host that runs many short-lived containers does not collect files forever.
_CACHE_MAX = 512


def schema_dir() -> str:
    """Where the shipped schemas live.

    An installed pyoci has them as the ``pyoci.schemas`` package next to
    ``pyoci/__init__.py``; a source checkout keeps them in ``<repo>/schemas``.
    Looking at two paths is cheaper than importing ``importlib.resources``.
    """
    pkg = os.path.dirname(os.path.realpath(pyoci.__file__))
    tried = (os.path.join(pkg, "schemas"), os.path.join(os.path.dirname(pkg), "schemas"))
    for cand in tried:
        if os.path.isfile(os.path.join(cand, "config-schema.json")):
            return cand
    raise SpecError(f"schemas not found: looked in {tried[0]} and {tried[1]}")


def _kind(which: str) -> tuple[str, str]:
    try:
        return _KINDS[which]
    except KeyError:
        raise ValueError(f"unknown schema kind {which!r}") from None


def schema_path(which: str = "config") -> str:
    """Path of the schema file that checks documents of kind ``which``."""
    return os.path.join(schema_dir(), _kind(which)[0])


@_per_kind
def schema_bytes(which: str = "config") -> bytes:
    """Raw schema file content; part of the cache key so a schema edit invalidates markers."""
    with open(schema_path(which), "rb") as f:
        return f.read()


def _schema_doc(which: str) -> dict[str, Any]:
    """The parsed schema for ``which``; a fresh dict, since validators keep references to it."""
    from pyoci import jsonio  # not json: that would import re and enum on the fast path

    schema: dict[str, Any] = jsonio.loads(schema_bytes(which))
    if which == "process":
        # exec --process takes only the process object; reuse its definition
        # rather than keeping a second copy of it in another file.
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                  "$ref": "#/$defs/Process"}
    return schema


@_per_kind
def _validator(which: str) -> Any:
    """Build (once per process) the validator for ``which``; imports jsonschema."""
    from jsonschema.validators import validator_for

    schema = _schema_doc(which)
    cls = validator_for(schema)
    return cls(schema)


@_per_kind
def _fast(which: str) -> Any:
    """The fastschema validator for ``which``: no jsonschema import, compiled once per process."""
    from pyoci.spec import fastschema

    return fastschema.compile_schema(_schema_doc(which))


def format_path(parts: Iterable[str | int]) -> str:
    """Render a JSON path the way users write it: ``linux.namespaces[3].type``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _show(value: object, limit: int = 60) -> str:
    import json

    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_JSON_TYPES = {
    bool: "boolean", int: "integer", float: "number", str: "string",
    list: "array", dict: "object", type(None): "null",
}
_ARTICLE = {"integer": "an", "array": "an", "object": "an"}


def _type_name(t: str) -> str:
    return f"{_ARTICLE.get(t, 'a')} {t}"


def _leaf(err: ValidationError) -> ValidationError:
    """Descend into anyOf/oneOf branches to the deepest, most specific failure."""
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


def _describe(err: ValidationError) -> tuple[list[str | int], str]:
    """Turn one jsonschema error into (path, rule) for our one-line message."""
    path: list[str | int] = list(err.absolute_path)
    kw = err.validator
    val = err.validator_value
    inst = err.instance
    if isinstance(err.schema, dict) and "x-rule" in err.schema:
        # A schema may carry its own wording where the raw keyword would be
        # cryptic (a 100-character semver regex, say).
        return path, f"invalid value {_show(inst)}, {err.schema['x-rule']}"
    if "propertyNames" in err.relative_schema_path:
        return path, f"invalid key {_show(inst)}"
    if kw == "required":
        missing = [p for p in val if isinstance(inst, dict) and p not in inst]
        if missing:
            path.append(missing[0])
        return path, "required property is missing"
    if kw == "type":
        want = " or ".join(_type_name(t) for t in ([val] if isinstance(val, str) else val))
        got = _JSON_TYPES.get(type(inst), type(inst).__name__)
        return path, f"must be {want}, got {got} {_show(inst)}"
    if kw == "enum":
        return path, f"invalid value {_show(inst)}, want one of: {', '.join(map(str, val))}"
    if kw == "const":
        return path, f"invalid value {_show(inst)}, want {_show(val)}"
    if kw == "minimum":
        return path, f"{inst} is below the minimum {val}"
    if kw == "maximum":
        return path, f"{inst} is above the maximum {val}"
    if kw == "pattern":
        return path, f"invalid value {_show(inst)}, must match {val}"
    if kw in ("minItems", "minLength"):
        return path, "must not be empty" if val == 1 else f"must have at least {val} entries"
    return path, err.message.splitlines()[0]


def _rank(err: ValidationError) -> int:
    return len(err.absolute_path) + (1 if err.validator == "required" else 0)


def errors(doc: Any, which: str = "config") -> list[str]:
    """Every schema violation of ``doc`` as ``<path>: <rule>``, deepest first.

    Mostly for tests and for ``pyoci validate``-style tooling; :func:`check`
    reports only the first of these.
    """
    label = _kind(which)[1]
    found = [_leaf(e) for e in _validator(which).iter_errors(doc)]
    # sorted() is stable, so equally deep errors keep the schema's order.
    found.sort(key=_rank, reverse=True)
    out = []
    for e in found:
        path, rule = _describe(e)
        where = format_path(path)
        out.append(f"{label}: {where}: {rule}" if where else f"{label}: {rule}")
    return out


def check(doc: Any, which: str = "config") -> None:
    """Raise SpecError with the single most specific schema violation of ``doc``.

    A valid document is accepted by fastschema alone (see :func:`check_cached`),
    so only a rejection pays for importing jsonschema.
    """
    if _fast(which).is_valid(doc):
        return
    errs = errors(doc, which)
    if errs:
        raise SpecError(errs[0])


def _cache_key(raw: bytes, which: str) -> str:
    h = _sha256()
    for part in (raw, schema_bytes(which), pyoci.__version__.encode(), which.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def check_cached(doc: Any, raw: bytes, cache_dir: str | None, which: str = "config") -> None:
    """:func:`check`, skipped when ``raw`` already passed with this schema and version.

    On a miss a valid document is accepted without importing jsonschema.

    ``raw`` must be the bytes ``doc`` was parsed from: the marker vouches for
    the bytes, not for the dict. A failed check writes no marker, so errors
    are always reported afresh. Failing to write the marker only costs speed
    next time, so write errors are ignored.
    """
    if cache_dir is None:
        check(doc, which)
        return
    marker = os.path.join(cache_dir, f"schema-{_cache_key(raw, which)}")
    if os.path.exists(marker):
        return
    # A miss is the common case for podman (ids and paths differ per container),
    # so accept with fastschema, which answers the same as jsonschema on our
    # schemas without its ~150 ms import. Only a rejected document pays for
    # jsonschema, which stays the reference: it words the message, and should
    # the two ever disagree, its verdict is the one that counts.
    check(doc, which)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = f"{marker}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.replace(tmp, marker)
        _prune(cache_dir)
    except OSError:
        pass


def _prune(cache_dir: str, prefix: str = "schema-") -> None:
    """Drop the oldest ``prefix`` files beyond ``_CACHE_MAX``; races with other pruners
    are harmless. Also used for :mod:`pyoci.spec.verdict`'s files."""
    with os.scandir(cache_dir) as it:
        entries = [e for e in it if e.name.startswith(prefix)]
    if len(entries) <= _CACHE_MAX:
        return
    def mtime(e: os.DirEntry[str]) -> float:
        try:
            return e.stat().st_mtime
        except OSError:
            return 0.0
    entries.sort(key=mtime)
    for e in entries[: len(entries) - _CACHE_MAX]:
        try:
            os.unlink(e.path)
        except OSError:
            pass
