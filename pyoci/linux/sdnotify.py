"""sd_notify passthrough (``NOTIFY_SOCKET``), as runc does it.

When ``create``/``run`` see ``NOTIFY_SOCKET``, the container gets the state
dir's ``notify/`` bound read-only at ``/run/notify`` and
``NOTIFY_SOCKET=/run/notify/notify.sock`` in its environment.  ``start``
binds that socket before the init may run, then waits for the container's
``READY=1`` and relays the datagram, followed by ``MAINPID=<init>``, to the
host's socket: so a ``Type=notify`` unit (podman ``--sdnotify=container``,
Quadlet) becomes active when the container says so, not before.
"""

from __future__ import annotations

import _socket
import os

from pyoci.errors import PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DIR = "notify"
IN_CONTAINER = "/run/notify"
SOCKET_NAME = "notify.sock"


def prepare_config(config: dict[str, Any], state_dir: str) -> None:
    """Add the bind mount and the env var to ``config`` (before the plan is built)."""
    config.setdefault("mounts", []).append({
        "destination": IN_CONTAINER, "type": "bind", "source": os.path.join(state_dir, DIR),
        "options": ["bind", "nosuid", "noexec", "nodev", "ro"]})
    process = config.get("process")
    if process is not None:
        env = [e for e in process.get("env") or [] if not e.startswith("NOTIFY_SOCKET=")]
        env.append(f"NOTIFY_SOCKET={IN_CONTAINER}/{SOCKET_NAME}")
        process["env"] = env


def make_dir(state_dir: str) -> None:
    os.makedirs(os.path.join(state_dir, DIR), mode=0o755, exist_ok=True)


def bind(state_dir: str) -> _socket.socket:
    """The container-side socket, bound and writable by any uid in the container."""
    path = os.path.join(state_dir, DIR, SOCKET_NAME)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        os.chmod(path, 0o777)
    except OSError as exc:
        sock.close()
        raise PyociError(f"notify socket {path}: {(exc.strerror or str(exc)).lower()}") from None
    return sock


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def relay(sock: _socket.socket, host_socket: str, pid: int) -> None:
    """Wait for READY=1 from the container and pass it on; give up if the init dies."""
    sock.settimeout(0.2)
    try:
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if not _alive(pid):
                    return
                continue
            lines = data.splitlines()
            if b"READY=1" not in lines:
                continue
            addr = host_socket
            if addr.startswith("@"):
                addr = "\0" + addr[1:]
            out = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
            try:
                out.connect(addr)
                out.send(data if data.endswith(b"\n") else data + b"\n")
                out.send(f"MAINPID={pid}\n".encode())
            except OSError as exc:
                raise PyociError(f"notify socket {host_socket}: "
                                 f"{(exc.strerror or str(exc)).lower()}") from None
            finally:
                out.close()
            return
    finally:
        sock.close()
