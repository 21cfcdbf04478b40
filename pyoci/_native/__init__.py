"""Thin binding over the compiled cffi module.

The module is compiled by ``pip install`` (out-of-line API mode), so importing
it parses no C. ``check`` turns the C convention (-1 and errno) into
``OSError(errno, strerror, path)``.
"""

from __future__ import annotations

import os

from pyoci._native._pyoci import ffi, lib

__all__ = ["check", "ffi", "lib"]


def check(rc: int, path: str | None = None) -> int:
    """Return ``rc``, or raise OSError with the C errno when it is negative."""
    if rc < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), path) if path else OSError(err, os.strerror(err))
    return rc
