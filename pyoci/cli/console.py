"""The foreground console of ``run`` with a terminal: receive the pty master
from the container and copy bytes between it and our own stdin/stdout, the way
runc does for a foreground container."""

from __future__ import annotations

import os
import select

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def receive_master(sock_fd: int) -> int:
    from pyoci.execute import receive_master

    return receive_master(sock_fd)


class Proxy:
    """Raw mode on our tty while the container owns the terminal, restored after."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.saved: Any = None
        if os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop typed-ahead input
            self.resize()

    def resize(self) -> None:
        import fcntl
        import termios

        if os.isatty(0):
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def pump(self, done: Any) -> None:
        """Copy until the master closes (the container exited) or ``done()``,
        then drain what the process wrote just before it exited."""
        try:
            self._copy(done)
        finally:
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0)
                data = os.read(self.master, 65536) if ready else b""
            except OSError:
                return
            if not data:
                return
            os.write(1, data)

    def _copy(self, done: Any) -> None:
        fds = [self.master, 0]
        while not done():
            try:
                ready, _, _ = select.select(fds, [], [], 0.1)
            except InterruptedError:
                continue
            if self.master in ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(self.master, data)

    def close(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        os.close(self.master)
