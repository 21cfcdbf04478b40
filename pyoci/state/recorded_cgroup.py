"""The container's cgroup as its state record holds it, used without the cgroups package.

``state`` of a running container asks whether it is paused, ``exec`` moves its
process into the container's cgroup, and ``delete`` of a stopped container
removes its cgroup directories: each is a file read, a few writes to
``cgroup.procs`` or a few ``rmdir`` calls on paths the state already holds,
while rebuilding the cgroup manager would import the whole cgroups package
(and ``os``) for them. Anything out of the ordinary (tasks still inside, a
frozen cgroup, nested cgroups, a mode not listed here) is left to the manager;
``tests/unit/test_recorded_cgroup.py`` checks that placement writes exactly the
files the managers' ``apply`` writes.
"""

import posix

from pyoci.linux.cgroupfiles import (  # noqa: F401 - the shared helpers, importable here too
    frozen,
    remove_unused_parents,
    write_file,
    write_procs,
)

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def remove_if_empty(cgroup_state: "dict[str, Any]") -> bool:
    """Remove the container's cgroup directly, if it is simply empty.

    True when it is gone. False when the manager must take over: tasks
    still inside (without a pid namespace the init's death leaves the rest
    alive), a frozen cgroup, a mode not listed here, or an ``rmdir`` that
    fails (EBUSY: nested cgroups, or tasks still on their way out).
    """
    if cgroup_state.get("mode") == "none":
        return True
    if cgroup_state.get("systemd"):
        return False  # the unit has to be stopped: the manager's job
    leaves = directories(cgroup_state)
    if not leaves or frozen(cgroup_state):
        return False
    for leaf in leaves:
        try:
            fd = posix.open(f"{leaf}/cgroup.procs", posix.O_RDONLY | posix.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError:
            return False
        try:
            if posix.read(fd, 64).strip():
                return False
        finally:
            posix.close(fd)
    for leaf in leaves:
        try:
            posix.rmdir(leaf)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    remove_unused_parents(cgroup_state.get("created") or (), leaves)
    return True


def directories(cgroup_state: "dict[str, Any]") -> list[str] | None:
    """The directories ``apply`` writes a pid into, in its order; None: ask the manager."""
    mode = cgroup_state.get("mode")
    if mode == "none":
        return []
    path = cgroup_state.get("path") or ""
    if mode in ("v1", "hybrid"):
        dirs = sorted(set((cgroup_state.get("paths") or {}).values()))
        if mode == "hybrid":
            if not cgroup_state.get("unified_root"):
                return None
            dirs.append(_under(cgroup_state["unified_root"], path))
        return dirs
    if mode == "v2":
        leaf = (cgroup_state.get("paths") or {}).get("")
        return [leaf] if leaf else None
    return None


def _under(root: str, path: str) -> str:
    inner = path.strip("/")
    return f"{root.rstrip('/')}/{inner}" if inner else root


