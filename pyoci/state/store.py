"""Per-container directories under ``--root``.

Layout of ``<root>/<id>/``:

- ``state.json``: what later commands need (pid and its start time, bundle,
  cgroup manager state, hooks), written atomically so a reader never sees a
  partial file;
- ``config.json``: the validated config, read only by commands that need it;
- ``exec.fifo``: present from ``create`` until ``start`` (the status is
  *created* while it exists);
- the directory itself is the ``flock`` that serialises commands on one container.
"""

from __future__ import annotations

import errno
import os

from pyoci import jsonio
from pyoci.errors import ContainerExists, ContainerNotFound, StateError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
FIFO = "exec.fifo"

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")


def check_id(cid: str) -> str:
    """Apply runc's id rule, so an id can never name a path outside ``--root``."""
    if not cid:
        raise UsageError("container id cannot be empty")
    if cid in (".", "..") or not _ID_CHARS.issuperset(cid) or len(cid) > 1024:
        raise UsageError(f"invalid id format: {cid}")
    return cid


def write_atomic(path: str, data: bytes | str, mode: int = 0o600, durable: bool = True) -> None:
    """tmp + fsync + rename in the same directory: readers see old or new, never half.

    ``durable=False`` skips the fsync: the rename alone already protects readers
    and survives a crash of the process, which is all a transient record needs.
    """
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        _write_atomic(path, tmp, data, mode, durable)
    except OSError as e:
        if e.filename:
            raise
        raise OSError(e.errno, f"write {path}: {os.strerror(e.errno or 0).lower()}") from None


def _write_atomic(path: str, tmp: str, data: bytes, mode: int, durable: bool) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quiet(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Store:
    """The ``--root`` directory: one sub-directory per container."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, check_id(cid))

    def ensure_root(self) -> None:
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StateError(f"create root directory {self.root}: {e.strerror.lower()}") from e

    def claim(self, cid: str) -> str:
        """Make the container's directory; exactly one concurrent ``create`` wins."""
        self.ensure_root()
        path = self.dir(cid)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(cid) from None
        except OSError as e:
            raise StateError(f"create state directory {path}: {e.strerror.lower()}") from e
        return path

    def exists(self, cid: str) -> bool:
        return os.path.exists(os.path.join(self.dir(cid), STATE_FILE))

    def load(self, cid: str) -> dict[str, Any]:
        path = os.path.join(self.dir(cid), STATE_FILE)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise ContainerNotFound(cid) from None
        except NotADirectoryError:
            raise ContainerNotFound(cid) from None
        try:
            return jsonio.loads(raw)
        except ValueError as e:
            raise StateError(f"corrupt state file {path}: {e}") from None

    def save(self, cid: str, state: dict[str, Any], durable: bool = True) -> None:
        path = os.path.join(self.dir(cid), STATE_FILE)
        try:
            write_atomic(path, jsonio.dumps(state), durable=durable)
        except OSError as e:
            raise StateError(f"write state file {path}: {e.strerror.lower()}") from e

    def load_config(self, cid: str) -> dict[str, Any]:
        with open(os.path.join(self.dir(cid), CONFIG_FILE), "rb") as f:
            return jsonio.loads(f.read())

    def lock(self, cid: str) -> int:
        """Take the container's lock; returns the fd to pass to :meth:`unlock`.

        The lock is the directory itself, so taking it creates nothing that a
        concurrent ``delete`` would have to race against. Whoever waited while
        the container was deleted finds its directory gone (or moved aside) and
        reports that the container does not exist.
        """
        import fcntl

        path = self.dir(cid)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(cid) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            raise ContainerNotFound(cid)
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        os.close(fd)

    def remove(self, cid: str) -> None:
        """Remove the directory and everything in it (files only: no mounts live here).

        It is first renamed into ``<root>/.trash``: the id is free at once, and a
        half-finished removal never looks like a container.
        """
        path = self.dir(cid)
        trash = os.path.join(self.root, ".trash")
        try:
            os.mkdir(trash, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise StateError(f"create {trash}: {(e.strerror or '').lower()}") from e
        doomed = os.path.join(trash, f"{cid}.{os.getpid()}")
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StateError(f"remove state directory {path}: {(e.strerror or '').lower()}") from e
        for name in os.listdir(doomed):
            _unlink_quiet(os.path.join(doomed, name))
        try:
            os.rmdir(doomed)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise StateError(f"remove state directory {doomed}: "
                                 f"{(e.strerror or '').lower()}") from e

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(os.path.join(self.root, n, STATE_FILE)))
