"""The container's cgroup as its state record holds it, read without the cgroups package.

``state`` of a running container asks whether it is paused, and ``delete`` of a
stopped one removes its cgroup directories: each is a file read or a few
``rmdir`` calls on paths the state already holds, while rebuilding the cgroup
manager would import the whole cgroups package (and ``os``) for them. Anything
out of the ordinary (tasks still inside, a frozen cgroup, nested cgroups) is
left to the manager.
"""

import posix

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


# mode -> (key in the recorded paths, file, content when frozen)
_FREEZER = {
    "v1": ("freezer", "freezer.state", b"FROZEN"),
    "hybrid": ("freezer", "freezer.state", b"FROZEN"),
    "v2": ("", "cgroup.freeze", b"1"),
}


def frozen(cgroup_state: "dict[str, Any]") -> bool:
    """Whether the container's cgroup is frozen, read straight from the recorded path.

    ``state`` of a running container asks this on every call; rebuilding the
    cgroup manager would import the whole cgroups package for one file read.
    The managers' own ``frozen()`` use the same table.
    """
    where = _FREEZER.get(cgroup_state.get("mode") or "")
    directory = where and (cgroup_state.get("paths") or {}).get(where[0])
    if not where or not directory:
        return False
    try:
        fd = posix.open(f"{directory}/{where[1]}", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return False
    try:
        return posix.read(fd, 64).strip() == where[2]
    finally:
        posix.close(fd)


def remove_if_empty(cgroup_state: "dict[str, Any]") -> bool:
    """Remove the directories the container's create made, if they are simply empty.

    True when they are gone. False when the manager must take over: tasks
    still inside (without a pid namespace the init's death leaves the rest
    alive), a frozen cgroup, a leaf that pyoci didn't make, or an ``rmdir``
    that fails (EBUSY: nested cgroups, or tasks still on their way out).
    """
    mode = cgroup_state.get("mode")
    if mode == "none":
        return True
    created = set(cgroup_state.get("created") or ())
    leaves = {p for p in (cgroup_state.get("paths") or {}).values() if p}
    if mode not in _FREEZER or not leaves or not leaves <= created or frozen(cgroup_state):
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
    for path in sorted(created, key=lambda p: p.count("/"), reverse=True):
        try:
            posix.rmdir(path)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True
