"""Small cgroup file helpers shared by the cgroup managers and the state code.

``pyoci.cgroups`` (the managers) and ``pyoci.state`` (which reads a recorded
cgroup without them, for the lean verbs) both use these, and neither imports
the other: the dependency runs from each of them to here. ``posix`` only, as
the lean verbs need.
"""

import posix

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Iterable
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
