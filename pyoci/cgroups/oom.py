"""OOM notification: how the kernel tells that a container's memory cgroup ran out.

``pyoci events`` reports ``{"type":"oom"}`` as it happens, as runc does, from
one of two kernel mechanisms:

* cgroup v1: an eventfd registered for ``memory.oom_control`` by writing
  ``"<eventfd> <oom_control fd>"`` to ``cgroup.event_control``.  The kernel
  signals it each time the memcg goes under OOM, and once more when the cgroup
  is removed (then ``cgroup.event_control`` is gone, which tells the two apart).
* cgroup v2: ``memory.events`` is a kernfs file that wakes ``poll(POLLPRI)``
  whenever one of its counters changes; an OOM kill shows as ``oom_kill``
  going up.  (runc watches the same file with inotify and reports ``oom_kill``.)

A watch is a file descriptor for the caller's poll loop plus :meth:`OomWatch.check`,
called when that descriptor is ready, which says how many OOMs to report.
"""

from __future__ import annotations

import os

from pyoci.cgroups.base import _reason, parse_flat_keyed, write_file
from pyoci.errors import CgroupError

_EVENT_CONTROL = "cgroup.event_control"


class OomWatch:
    """One registered OOM notification; ``fileno()`` becomes ready on news."""

    #: the poll() events that mean "look at me" for this descriptor
    poll_events = 0

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.gone = False  # the cgroup was removed: nothing more will come

    def fileno(self) -> int:
        return self.fd

    def check(self) -> int:
        """How many ``oom`` events the news since the last call amounts to."""
        raise NotImplementedError

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class V1OomWatch(OomWatch):
    """An eventfd registered on ``memory.oom_control`` of a v1 memory cgroup."""

    poll_events = 0x001  # POLLIN: the eventfd's counter is non-zero

    def __init__(self, memdir: str) -> None:
        self.control = os.path.join(memdir, _EVENT_CONTROL)
        oom_control = os.path.join(memdir, "memory.oom_control")
        try:
            ofd = os.open(oom_control, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError(f"cgroup: open {oom_control}: {_reason(exc)}") from exc
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            try:
                # The kernel keeps the registration for as long as the eventfd
                # lives; the oom_control descriptor is only needed for this write.
                write_file(self.control, f"{efd} {ofd}")
            except BaseException:
                os.close(efd)
                raise
        finally:
            os.close(ofd)
        super().__init__(efd)

    def check(self) -> int:
        """One event per wake-up, however many the counter coalesced (as runc)."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0
        if not os.path.exists(self.control):
            self.gone = True  # the wake-up was the cgroup's removal, not an OOM
            return 0
        return 1


class V2OomWatch(OomWatch):
    """``poll(POLLPRI)`` on ``memory.events`` of a v2 cgroup, counting ``oom_kill``."""

    poll_events = 0x002 | 0x008  # POLLPRI, POLLERR: kernfs's "file changed"

    def __init__(self, cgdir: str) -> None:
        self.path = os.path.join(cgdir, "memory.events")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError(f"cgroup: open {self.path}: {_reason(exc)}") from exc
        super().__init__(fd)
        # Reading arms the notification: poll() reports changes after the last read.
        self.oom_kills = self._read()

    def _read(self) -> int:
        try:
            data = os.pread(self.fd, 4096, 0)
        except OSError:
            self.gone = True  # kernfs refuses reads once the cgroup is removed
            return getattr(self, "oom_kills", 0)
        return parse_flat_keyed(data.decode("ascii", "replace")).get("oom_kill", 0)

    def check(self) -> int:
        """One event when ``oom_kill`` went up since the last look (runc: on any change
        with ``oom_kill`` > 0, which repeats the report on unrelated counter changes)."""
        count = self._read()
        if count <= self.oom_kills:
            return 0
        self.oom_kills = count
        return 1
