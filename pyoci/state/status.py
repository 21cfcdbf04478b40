"""Container status, derived from the kernel rather than trusted from disk.

A recorded pid only counts while a process with that pid has the recorded
start time, which guards against pid reuse. The exec fifo marks *created*; a
frozen cgroup marks *paused*; otherwise the process is *running*.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"
CREATING = "creating"


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid") or 0
    return pid > 0 and start_time(pid) == state.get("pid_start")


def derive(state: dict[str, Any], container_dir: str) -> str:
    if not alive(state):
        return STOPPED
    if os.path.exists(os.path.join(container_dir, "exec.fifo")):
        return CREATED
    cg = state.get("cgroup")
    if cg:
        from pyoci.cgroups import from_state

        if from_state(cg).frozen():
            return PAUSED
    return RUNNING
