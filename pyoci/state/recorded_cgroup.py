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

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
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


def remove_unused_parents(created: "Iterable[str]", leaves: "Iterable[str]") -> None:
    """Remove the parents this container's create made, deepest first, where nobody uses them.

    Only ``rmdir`` decides: the kernel refuses it while any cgroup lives inside,
    so a sibling is never touched, walked into or waited for. A parent still in
    use simply stays (runc and crun never remove parents at all).
    """
    skip = set(leaves)
    for path in sorted(set(created) - skip, key=lambda p: p.count("/"), reverse=True):
        try:
            posix.rmdir(path)
        except OSError:
            continue


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


def placer(cgroup_state: "dict[str, Any]") -> "Callable[[int], None]":
    """A function that moves a pid into the container's cgroup in every hierarchy."""
    dirs = directories(cgroup_state)
    if dirs is None:
        from pyoci.cgroups import from_state

        return from_state(cgroup_state).apply

    def place(pid: int) -> None:
        for d in dirs:
            write_procs(d, pid)

    return place


def write_procs(directory: str, pid: int) -> None:
    """``pid`` into ``directory/cgroup.procs``."""
    write_file(f"{directory}/cgroup.procs", pid)


def write_file(path: str, value: str | int) -> None:
    """Write one value to a cgroup control file (the managers' writer too).

    Each value gets its own ``write(2)``: the kernel parses a cgroup file per
    write call, so buffering two values together would corrupt both.
    """
    from pyoci.errors import CgroupError

    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"cgroup: open {path}: {_reason(exc)}") from exc
    try:
        posix.write(fd, str(value).encode())
    except OSError as exc:
        raise CgroupError(f"cgroup: write {path}: {_reason(exc)}") from exc
    finally:
        posix.close(fd)


def _reason(exc: OSError) -> str:
    return (exc.strerror or posix.strerror(exc.errno or 0)).lower()
