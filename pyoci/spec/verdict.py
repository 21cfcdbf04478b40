"""Remembered validation verdicts: config.json bytes that passed, with their warnings.

Why: validating costs ``create`` about 2 ms of CPU (importing the checker and
walking the config), paid again for the same bundle by everything that runs
one bundle many times (CI, benchmarks, ``run`` in a loop). A verdict lets the
next ``create`` of the same bytes skip :mod:`pyoci.spec.validate` entirely.
podman writes a new config per container, so its creates miss and validate as
before; a miss costs one ``stat``.

A verdict is exact, never a guess:

* Only a config that passed is stored, so every error is reported afresh.
* The key covers everything the outcome depends on: the config bytes, the
  schema, pyoci's version, the size and mtime of the validation sources (an
  edited checkout invalidates), and the host's one input, the kernel's last
  capability (it decides the "not supported by this kernel" warnings).
* A config that joins a namespace by ``path`` is never stored: that check
  reads the host at create time, and the file it names can change.

Files live in ``<root>/.cache`` (0700), one ``verdict-<key>`` per config
(0600), written to a temporary name and renamed, pruned like the schema
markers. Anything unreadable or malformed is a miss.
"""

from __future__ import annotations

import marshal
import os

import pyoci

try:  # the builtin module: hashlib would load OpenSSL first, milliseconds per create
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover - CPython built without it
    from hashlib import sha256 as _sha256

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

__all__ = ["lookup", "store", "validated"]

PREFIX = "verdict-"
_FORMAT = 1  # bump when the file's content changes shape

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The code whose answer a verdict stands for (the tables of capabilities,
# rlimits and namespaces included).
_SOURCES = tuple(os.path.join(_PKG, *p) for p in (
    ("spec", "validate.py"), ("spec", "schema.py"), ("spec", "fastschema.py"),
    ("spec", "verdict.py"), ("linux", "capabilities.py"), ("linux", "rlimits.py"),
    ("linux", "namespaces.py"),
))


def _cap_last() -> bytes:
    """What validate reads for the kernel's last capability; absent reads as empty."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stamps() -> bytes:
    out = []
    for path in _SOURCES:
        try:
            st = os.stat(path)
            out.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            out.append("-")
    return "\n".join(out).encode()


def _key(raw: bytes) -> str:
    from pyoci.spec.schema import schema_bytes

    h = _sha256()
    for part in (raw, schema_bytes("config"), pyoci.__version__.encode(), _stamps(),
                 _cap_last(), str(_FORMAT).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _path(cache_dir: str, raw: bytes) -> str:
    return os.path.join(cache_dir, PREFIX + _key(raw))


def validated(config: dict[str, Any], raw: bytes, cache_dir: str) -> list[str]:
    """``validate(config, raw, cache_dir)``'s warnings, from a verdict when there is one.

    ``raw`` must be the bytes ``config`` was parsed from: a verdict vouches for
    the bytes. Errors propagate from the validator and leave no verdict.
    """
    known = lookup(cache_dir, raw)
    if known is not None:
        return known
    from pyoci.spec.validate import validate

    warnings = list(validate(config, raw, cache_dir=cache_dir))
    store(cache_dir, raw, config, warnings)
    return warnings


def lookup(cache_dir: str, raw: bytes) -> list[str] | None:
    """The warnings of an earlier pass of exactly ``raw``, or None: validate it."""
    try:
        with open(_path(cache_dir, raw), "rb") as f:
            data = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if (not isinstance(data, tuple) or len(data) != 2 or data[0] != _FORMAT
            or not isinstance(data[1], list)
            or not all(isinstance(w, str) for w in data[1])):
        return None
    return list(data[1])


def _joins_by_path(config: dict[str, Any]) -> bool:
    linux = config.get("linux") or {}
    return any("path" in ns for ns in linux.get("namespaces") or [])


def store(cache_dir: str, raw: bytes, config: dict[str, Any], warnings: list[str]) -> None:
    """Remember that ``raw`` (parsed as ``config``, which passed) gave ``warnings``.

    Best effort: failing to write only costs the next create its validation.
    """
    if _joins_by_path(config):
        return
    path = _path(cache_dir, raw)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, marshal.dumps((_FORMAT, [str(w) for w in warnings])))
        finally:
            os.close(fd)
        os.replace(tmp, path)
        from pyoci.spec.schema import _prune

        _prune(cache_dir, PREFIX)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
