"""Container status, derived from the kernel rather than trusted from disk, and the state document.

A recorded pid only counts while a process with that pid has the recorded
start time, which guards against pid reuse. The exec fifo marks *created*; a
frozen cgroup marks *paused*; otherwise the process is *running*.
"""

import posix

from pyoci import SPEC_VERSION

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
        fd = posix.open(f"/proc/{pid}/stat", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = posix.read(fd, 4096)  # the kernel fills it in one read
    except OSError:
        return None
    finally:
        posix.close(fd)
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(state: "dict[str, Any]") -> bool:
    pid = state.get("pid") or 0
    return pid > 0 and start_time(pid) == state.get("pid_start")


def derive(state: "dict[str, Any]", container_dir: str) -> str:
    if not alive(state):
        return STOPPED
    try:
        posix.stat(f"{container_dir}/exec.fifo")
        return CREATED
    except FileNotFoundError:
        pass
    cg = state.get("cgroup")
    if cg:
        from pyoci.linux.cgroupfiles import frozen

        if frozen(cg):
            return PAUSED
    return RUNNING



def document(cid: str, state: "dict[str, Any]", container_dir: str) -> "dict[str, Any]":
    """The runtime-spec state of the container, as ``state`` prints it and hooks read it."""
    status = derive(state, container_dir)
    return {
        "ociVersion": SPEC_VERSION,
        "id": cid,
        "pid": state.get("pid", 0) if status != STOPPED else 0,
        "status": status,
        "bundle": state.get("bundle", ""),
        "rootfs": state.get("rootfs", ""),
        "created": state.get("created", ""),
        "owner": state.get("owner", ""),
        "annotations": state.get("annotations") or {},
    }
