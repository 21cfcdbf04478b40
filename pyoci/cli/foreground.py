"""Waiting on a foreground container process: ``run`` and ``exec`` without ``--detach``.

The runtime stays the process's parent (or subreaper), relays the signals a
shell or caller sends it, and exits with the process's status the way a shell
reports it. Its own module so that ``exec`` doesn't import ``run`` and
``create`` for it.
"""

import posix

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def settle() -> None:
    """Before waiting on a process that may run for days: cycle collection back on.

    The verb set up without it (pyoci.cli._without_gc); what setup made is
    permanent, so it is frozen and later collections skip it.
    """
    import gc

    gc.freeze()
    gc.enable()


def wait(pid: int) -> int:
    """Reap children until the init exits; return its status the way a shell would."""
    while True:
        try:
            got, status = posix.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if got == pid:
            if posix.WIFEXITED(status):
                return posix.WEXITSTATUS(status)
            return 128 + posix.WTERMSIG(status)


def reaped(pid: int, out: list[int]) -> bool:
    """Non-blocking: has the init exited? Stores its shell-style status in ``out``."""
    while True:
        try:
            got, status = posix.waitpid(-1, posix.WNOHANG)
        except ChildProcessError:
            out.append(255)
            return True
        if got == 0:
            return False
        if got == pid:
            out.append(posix.WEXITSTATUS(status) if posix.WIFEXITED(status)
                       else 128 + posix.WTERMSIG(status))
            return True


def forward_signals(pid: int) -> "Any":
    """Relay the signals a foreground runtime receives to the container's init."""
    import _signal as signal  # the C module: `signal` builds enums at import

    relayed = [2, 15, 1, 3, 10, 12, 28]  # INT TERM HUP QUIT USR1 USR2 WINCH
    old = {}

    def relay(sig: int, _frame: "Any") -> None:
        try:
            posix.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in relayed:
        old[sig] = signal.signal(sig, relay)

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore
