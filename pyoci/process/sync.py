"""The parent <-> child channel: one JSON message per SOCK_SEQPACKET datagram.

``_socket`` is used directly because ``socket`` imports ``enum`` and costs
milliseconds on every ``create``.
"""

from __future__ import annotations

import _socket
import sys

from pyoci import jsonio

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

_MAX = 65536


class Channel:
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
        return cls(a), cls(b)

    def send(self, kind: str, **fields: Any) -> None:
        fields["type"] = kind
        self.sock.send(jsonio.dumps(fields).encode())

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None at EOF (the peer exited or closed)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(_MAX)
        except _socket.timeout:
            raise TimeoutError("timed out waiting for the container process") from None
        except ConnectionResetError:
            return None
        if not data:
            return None
        return jsonio.loads(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def send_fd(sock_fd: int, fd: int, payload: bytes) -> None:
    """One sendmsg with one SCM_RIGHTS fd: what --console-socket receivers expect."""
    s = _socket.socket(fileno=sock_fd)
    try:
        s.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                               fd.to_bytes(4, sys.byteorder))])
    finally:
        s.detach()
