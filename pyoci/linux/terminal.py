"""The container's console: a pty made inside the container, master sent out.

The pty comes from the container's own devpts instance, so the slave is a
device the container can see; its peer is bind-mounted on /dev/console and
becomes fds 0, 1 and 2.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios

from pyoci.linux import mounts as m
from pyoci.process.sync import send_fd

# <asm-generic/ioctls.h>; Python's termios module lacks the pty ones.
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def setup(console_sock: int, size: dict | None, console_mount: bool = True,
          uid: int = 0) -> None:
    """Make the pty; ``console_mount`` (the init only) also puts it on /dev/console.

    The slave is given to ``uid`` (process.user.uid), as runc does: devpts makes it
    ours (root), and a non-root process could not reopen its own terminal
    (``/dev/tty``, ``/proc/self/fd/0``) otherwise. The group stays the one the
    devpts mount chose (``gid=5``, tty).
    """
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        num = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        name = f"/dev/pts/{num}"
        slave = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        _give_to(slave, uid)
        if size:
            fcntl.ioctl(slave, termios.TIOCSWINSZ,
                        struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
        if console_mount:
            if not os.path.exists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                                 0o600))
            m.mount(name, "/dev/console", None, m.MS_BIND)
        send_fd(console_sock, master, name.encode())
    finally:
        os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _give_to(slave: int, uid: int) -> None:
    """chown the slave to ``uid``, keeping its group.

    EINVAL (the uid or the group is not mapped in our user namespace) and EPERM
    (its owner is not mapped) are skipped, as runc skips them: the process then
    keeps a terminal it can use through the fds it has.
    """
    if os.fstat(slave).st_uid == uid:
        return
    try:
        os.fchown(slave, uid, -1)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EPERM):
            raise
