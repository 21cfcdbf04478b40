"""Fault injection for the crash-safety tests.

``PYOCI_FAULT=<point>`` makes the process that reaches that named point kill
itself with SIGKILL, exactly as an OOM kill or a caller's timeout would. The
check is one dictionary lookup, so it stays on every path.
"""

from __future__ import annotations

import os

POINTS = (
    "create:claimed", "create:cgroup", "create:forked", "create:child-mounts",
    "create:hooks", "create:ready", "start:before-fifo", "start:after-fifo",
    "exec:forked", "delete:killed", "delete:cgroup",
)


def point(name: str) -> None:
    if os.environ.get("PYOCI_FAULT") == name:
        if os.getpid() == 1:  # a namespace's init ignores its own SIGKILL
            os._exit(137)
        os.kill(os.getpid(), 9)
