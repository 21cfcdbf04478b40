"""Per-container directories under ``--root``.

Layout of ``<root>/<id>/``:

- ``state.marshal``: what later commands need (pid and its start time, bundle,
  cgroup manager state, hooks), written atomically so a reader never sees a
  partial file. It is private to pyoci (callers read ``pyoci state``), so it
  is in ``marshal`` format: the module is loaded before Python runs a line,
  while reading JSON would load the ``_json`` extension, which costs the
  lean commands more than all their own work. ``marshal`` reads what any
  Python 3 wrote for these plain types (dicts, lists, strings, numbers);
- ``config.json``: the validated config, read only by commands that need it;
- ``exec.fifo``: present from ``create`` until ``start`` (the status is
  *created* while it exists);
- the directory itself is the ``flock`` that serialises commands on one container.

``state``, ``start``, ``kill`` and ``delete`` read this on every call, so it uses
``posix`` directly: ``import os`` alone costs a sixth of the interpreter's start.
"""

import marshal
import posix

from pyoci.errors import ContainerExists, ContainerNotFound, StateError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.marshal"
LEGACY_STATE_FILE = "state.json"  # what pyoci wrote before its state became a marshal record
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
    tmp = f"{path}.{posix.getpid()}.tmp"
    try:
        _write_atomic(path, tmp, data, mode, durable)
    except OSError as e:
        if e.filename:
            raise
        raise OSError(e.errno, f"write {path}: {posix.strerror(e.errno or 0).lower()}") from None


def _write_atomic(path: str, tmp: str, data: bytes, mode: int, durable: bool) -> None:
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
        if durable:
            posix.fsync(fd)
    except BaseException:
        posix.close(fd)
        _unlink_quiet(tmp)
        raise
    posix.close(fd)
    try:
        posix.rename(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def _unlink_quiet(path: str) -> None:
    try:
        posix.unlink(path)
    except OSError:
        pass


def _has_state(container_dir: str) -> bool:
    return (exists(f"{container_dir}/{STATE_FILE}")
            or exists(f"{container_dir}/{LEGACY_STATE_FILE}"))


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


class Store:
    """The ``--root`` directory: one sub-directory per container."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, cid: str) -> str:
        return f"{self.root}/{check_id(cid)}"

    def ensure_root(self) -> None:
        import os  # only create makes the root

        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StateError(f"create root directory {self.root}: {e.strerror.lower()}") from e

    def claim(self, cid: str) -> str:
        """Make the container's directory; exactly one concurrent ``create`` wins."""
        self.ensure_root()
        path = self.dir(cid)
        try:
            posix.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(cid) from None
        except OSError as e:
            raise StateError(f"create state directory {path}: {e.strerror.lower()}") from e
        return path

    def exists(self, cid: str) -> bool:
        return _has_state(self.dir(cid))

    def load(self, cid: str) -> "dict[str, Any]":
        path = f"{self.dir(cid)}/{STATE_FILE}"
        try:
            raw = read_file(path)
        except (FileNotFoundError, NotADirectoryError):
            return self._load_legacy(cid)
        try:
            state = marshal.loads(raw)
        except (ValueError, EOFError, TypeError) as e:
            raise StateError(f"corrupt state file {path}: {e}") from None
        if not isinstance(state, dict):
            raise StateError(f"corrupt state file {path}: not a mapping")
        return state

    def _load_legacy(self, cid: str) -> "dict[str, Any]":
        """A container made by an older pyoci, which kept its state as JSON.

        Read so that an upgrade doesn't strand running containers; the next
        save writes the marshal record, which is read from then on.
        """
        path = f"{self.dir(cid)}/{LEGACY_STATE_FILE}"
        try:
            raw = read_file(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(cid) from None
        from pyoci import jsonio

        try:
            state = jsonio.loads(raw)
        except ValueError as e:
            raise StateError(f"corrupt state file {path}: {e}") from None
        if not isinstance(state, dict):
            raise StateError(f"corrupt state file {path}: not a mapping")
        return state

    def save(self, cid: str, state: "dict[str, Any]", durable: bool = True) -> None:
        path = f"{self.dir(cid)}/{STATE_FILE}"
        try:
            write_atomic(path, marshal.dumps(state), durable=durable)
        except OSError as e:
            raise StateError(f"write state file {path}: {e.strerror.lower()}") from e

    def load_config(self, cid: str) -> "dict[str, Any]":
        from pyoci import jsonio

        return jsonio.loads(read_file(f"{self.dir(cid)}/{CONFIG_FILE}"))

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
            fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(cid) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = posix.stat(path).st_ino == posix.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            posix.close(fd)
            raise ContainerNotFound(cid)
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        posix.close(fd)

    def remove(self, cid: str) -> None:
        """Remove the directory and everything in it (files only: no mounts live here).

        It is first renamed into ``<root>/.trash``: the id is free at once, and a
        half-finished removal never looks like a container.
        """
        path = self.dir(cid)
        trash = f"{self.root}/.trash"
        try:
            posix.mkdir(trash, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise StateError(f"create {trash}: {(e.strerror or '').lower()}") from e
        doomed = f"{trash}/{cid}.{posix.getpid()}"
        try:
            posix.rename(path, doomed)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StateError(f"remove state directory {path}: {(e.strerror or '').lower()}") from e
        for name in posix.listdir(doomed):
            _unlink_quiet(f"{doomed}/{name}")
        try:
            posix.rmdir(doomed)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StateError(f"remove state directory {doomed}: "
                             f"{(e.strerror or '').lower()}") from e

    def ids(self) -> list[str]:
        try:
            names = posix.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _has_state(f"{self.root}/{n}"))


def read_file(path: str) -> bytes:
    """The whole file, with one ``read`` for the small files kept here."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return read_fd(fd)
    finally:
        posix.close(fd)


def read_fd(fd: int) -> bytes:
    """Everything left to read from ``fd``."""
    chunks = [posix.read(fd, 65536)]
    while chunks[-1]:
        chunks.append(posix.read(fd, 65536))
    return b"".join(chunks)
