"""The cgroup manager interface and the file helpers every backend shares.

A manager is bound to one container's cgroup path.  It is created once by
``create``/``run`` (which detect the host's mode) and is then rebuilt by later
commands from :meth:`Manager.to_state`, so ``state``/``kill``/``delete`` never
scan mountinfo again.  Everything here is stdlib-only and cheap to import,
because those short-lived commands import this package.
"""

from __future__ import annotations

import errno as _errno
import os
import time
from abc import ABC, abstractmethod

from pyoci.errors import CgroupError
from pyoci.linux.cgroupfiles import (
    remove_unused_parents,
    write_file,  # noqa: F401 - the one writer, re-exported
)

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, ClassVar

    from pyoci.cgroups.oom import OomWatch

CGROUP_ROOT = "/sys/fs/cgroup"

# How often and how long destroy() waits for a cgroup to empty: the kernel
# keeps a cgroup busy for a moment after its last task has exited.
_RMDIR_TRIES = 20
_RMDIR_SLEEP = 0.01
# How often mkdirs() makes a chain again after a parent vanished under it.
_MKDIR_TRIES = 50


def _reason(exc: OSError) -> str:
    """Lower-case strerror, the way runc prints it ("invalid argument")."""
    text = exc.strerror or os.strerror(exc.errno or 0)
    return text.lower()


def read_file(path: str) -> str:
    """Read a cgroup control file, stripped; a missing file is a CgroupError."""
    try:
        return _read_text(path)
    except OSError as exc:
        raise CgroupError(f"cgroup: read {path}: {_reason(exc)}") from exc


def _read_text(path: str) -> str:
    """The file as stripped ASCII text.

    Bytes decoded by hand: ``open(encoding="ascii")`` builds a text wrapper and
    imports the ``encodings.ascii`` codec module, a cost paid on every create.
    """
    with open(path, "rb") as fh:
        return fh.read().decode("ascii", "replace").strip()


def read_optional(path: str) -> str | None:
    """Read a control file that this kernel may not have (stats, optional knobs)."""
    try:
        return _read_text(path)
    except OSError:
        return None


def read_int(path: str, default: int = 0) -> int:
    """Read a numeric control file; "max" and absent files give ``default``."""
    text = read_optional(path)
    if text is None or text == "" or text == "max":
        return default
    try:
        return int(text.split()[0])
    except ValueError:
        return default


def parse_flat_keyed(text: str | None) -> dict[str, int]:
    """Parse ``key value`` lines (memory.stat, cpu.stat, cgroup.events)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_procs(path: str) -> list[int]:
    """The pids listed in one cgroup.procs file; a vanished cgroup has none."""
    text = read_optional(os.path.join(path, "cgroup.procs"))
    return [int(p) for p in text.split()] if text else []


def walk_dirs(top: str) -> Iterator[str]:
    """``top`` and every cgroup beneath it, parents before children."""
    if not os.path.isdir(top):
        return
    yield top
    for root, dirs, _files in os.walk(top):
        for d in dirs:
            yield os.path.join(root, d)


def mkdirs(path: str, on_new: Any = None) -> list[str]:
    """Create ``path`` and missing parents; return the ones made, shallowest first.

    ``on_new(dir)`` runs right after each new directory appears, before its
    child is made: v1 cpuset needs cpus/mems copied down level by level.
    A parent that vanishes half-way was removed by another container's delete
    while it was empty (that delete can't see a create that hasn't made its
    leaf yet), so the chain is simply made again.
    """
    made: list[str] = []
    for attempt in range(_MKDIR_TRIES):
        try:
            _mkdir_chain(path, on_new, made)
            return made
        except FileNotFoundError as exc:
            if attempt == _MKDIR_TRIES - 1:
                raise CgroupError(f"cgroup: mkdir {exc.filename}: {_reason(exc)}") from exc
    return made


def _mkdir_chain(path: str, on_new: Any, made: list[str]) -> None:
    missing: list[str] = []
    cur = path
    while not os.path.isdir(cur):
        missing.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue  # a concurrent create made it; it is not ours to remove
        except FileNotFoundError:
            raise  # a parent vanished: mkdirs() makes the chain again
        except OSError as exc:
            raise CgroupError(f"cgroup: mkdir {d}: {_reason(exc)}") from exc
        if d not in made:
            made.append(d)
        if on_new is not None:
            on_new(d)


def rmdir_retry(path: str) -> None:
    """Remove one cgroup directory, waiting briefly while its tasks exit.

    A missing directory counts as removed so destroy() stays idempotent.
    """
    for attempt in range(_RMDIR_TRIES):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != _errno.EBUSY or attempt == _RMDIR_TRIES - 1:
                raise CgroupError(f"cgroup: rmdir {path}: {_reason(exc)}") from exc
            time.sleep(_RMDIR_SLEEP * (attempt + 1))


def remove_leaf(leaf: str) -> None:
    """Remove the container's own cgroup directory and any cgroups nested in it.

    Cgroups the container made inside its own (systemd in the container, say)
    are its own too; rmdir of a cgroup with children fails, so they go first.
    Nothing outside ``leaf`` is ever walked: a parent is shared with siblings.
    """
    if not os.path.isdir(leaf):
        return
    for sub in sorted(walk_dirs(leaf), key=lambda p: p.count("/"), reverse=True):
        rmdir_retry(sub)


def parse_rdma(rdma: dict[str, Any]) -> list[str]:
    """``linux.resources.rdma`` to rdma.max lines (same syntax on v1 and v2)."""
    lines = []
    for device, limits in rdma.items():
        parts = [device]
        if (limits or {}).get("hcaHandles") is not None:
            parts.append(f"hca_handle={limits['hcaHandles']}")
        if (limits or {}).get("hcaObjects") is not None:
            parts.append(f"hca_object={limits['hcaObjects']}")
        if len(parts) > 1:
            lines.append(" ".join(parts))
    return lines


class Manager(ABC):
    """One container's cgroup, in whatever hierarchy layout the host uses.

    ``path`` is the cgroup path relative to each hierarchy's root, e.g.
    ``/pyoci/abc``.  ``created`` lists the absolute directories this manager
    made, so ``destroy`` never removes a parent that someone else owns (a
    podman-made slice, a pre-existing ``/pyoci``).
    """

    mode: ClassVar[str] = ""

    def __init__(self, path: str, created: Iterable[str] = ()) -> None:
        self.path = path
        self.created: list[str] = list(created)
        # Settings the last set() could not apply on this host and skipped
        # (e.g. "devices" on v2 until the eBPF program exists), so the caller
        # decides whether to warn or refuse instead of the miss being silent.
        self.ignored: list[str] = []
        # Rootless: no device rules at all (runc ignores the devices controller then);
        # the devices are the host's, bound in, and writing rules needs privileges.
        self.skip_devices = False

    # -- lifecycle -------------------------------------------------------
    @abstractmethod
    def create(self, resources: dict[str, Any] | None = None) -> None:
        """Make the container's cgroup directories and apply ``resources``."""

    @abstractmethod
    def apply(self, pid: int) -> None:
        """Move ``pid`` into the container's cgroup in every hierarchy."""

    @abstractmethod
    def set(self, resources: dict[str, Any]) -> None:
        """Apply ``linux.resources`` (also the body of ``update``)."""

    def leaves(self) -> list[str]:
        """The container's own directory in each hierarchy (``apply`` writes its pid there).

        A leaf is the container's even if it existed before ``create`` (as in runc and
        crun): one left behind with limits in it would shape the next container.
        """
        return []

    def destroy(self) -> None:
        """Remove the container's leaves, then the parents it made if nobody else uses them.

        Safe to repeat. A parent goes only if ``rmdir`` takes it, which the kernel
        refuses while any sibling cgroup lives in it; a sibling's create that
        loses the race makes the parent again (see :func:`mkdirs`).
        """
        first: CgroupError | None = None
        leaves = self.leaves()
        for leaf in leaves:
            try:
                remove_leaf(leaf)
            except CgroupError as exc:
                first = first or exc
        if first is not None:
            raise first
        remove_unused_parents(self.created, leaves)
        self.created = []

    # -- inspection and control -----------------------------------------
    @abstractmethod
    def pids(self) -> list[int]:
        """Every pid in the container's cgroup and its descendants."""

    @abstractmethod
    def freeze(self) -> None:
        """Freeze every task, returning only once the kernel says frozen."""

    @abstractmethod
    def thaw(self) -> None:
        """Undo :meth:`freeze`."""

    @abstractmethod
    def frozen(self) -> bool:
        """Whether the cgroup is frozen (the ``paused`` status)."""

    def frozen_by_anyone(self) -> bool:
        """Frozen by its own freezer or an ancestor's (v1's freezer.state shows both)."""
        return self.frozen()

    def kill_all(self, sig: int) -> None:
        """Signal every process in the cgroup.

        Without cgroup.kill the cgroup is frozen first so that a process
        forking in a loop can't add children between reading the pid list
        and signalling it. Signal 0 only asks whether they exist: no freeze.
        """
        can_freeze = sig != 0 and self.has_freezer()
        was_frozen = can_freeze and self.frozen()
        if can_freeze and not was_frozen:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
        finally:
            # A paused container stays paused (its signals wait for resume),
            # except for SIGKILL: frozen tasks can't die, so they are thawed.
            if can_freeze and (not was_frozen or sig == 9):
                self.thaw()

    def clone_dir(self) -> str | None:
        """The one directory a child can be cloned straight into (CLONE_INTO_CGROUP), if any.

        Only a pure v2 host has a single hierarchy; v1 and hybrid placement needs a
        cgroup.procs write per hierarchy.
        """
        return None

    def has_freezer(self) -> bool:
        """Whether freeze/thaw can work on this host."""
        return True

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Resource usage in the shape of ``runc events --stats`` ``data``."""

    def exists(self) -> bool:
        """Whether the container's cgroup directory is still there."""
        return False

    def oom_watch(self) -> OomWatch | None:
        """A :class:`pyoci.cgroups.oom.OomWatch` on the memory cgroup, or None without one."""
        return None

    # -- persistence -----------------------------------------------------
    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable description from which :func:`from_state` rebuilds us."""

    def _base_state(self) -> dict[str, Any]:
        return {"mode": self.mode, "path": self.path, "created": list(self.created)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"
