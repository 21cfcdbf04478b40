"""The Python API behind every verb: create, start, state, kill, delete.

This module is on the import path of ``state``, ``start``, ``kill`` and
``delete``, so it imports nothing heavy at the top (not even ``os``: ``posix``
is already loaded): validation, the process code, the hooks and the cgroup
managers are imported where needed, and the common cases (a stopped
container's delete, a paused check) read the recorded cgroup paths directly.
"""

import posix
import time

from pyoci.errors import ContainerNotFound, IncorrectStatus, PyociError
from pyoci.state import status as st
from pyoci.state.store import FIFO, Store

STATUS_FIFO = "start.status"  # written by the init: see pyoci/process/init.py

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


def _fault(point: str) -> None:
    """A crash-test fault point (pyoci.faults), loaded only when one is armed."""
    if b"PYOCI_FAULT" in posix.environ:
        from pyoci import faults

        faults.point(point)


def parse_signal(raw: str) -> int:
    """A number, ``KILL``, ``SIGKILL`` or ``RTMIN+3``, as runc accepts them.

    0 is accepted too: callers use it to ask whether the process exists (kill(2)
    sends nothing then, but still fails for a process that is gone).
    """
    if raw.isdigit():
        sig = int(raw)
        if 0 <= sig <= 64:
            return sig
        raise PyociError(f"invalid signal: {raw}")
    name = raw.upper().removeprefix("SIG")
    if name in SIGNALS:
        return SIGNALS[name]
    for base, first, sign in (("RTMIN", 34, 1), ("RTMAX", 64, -1)):
        if name == base:
            return first
        if name.startswith(base + ("+" if sign > 0 else "-")) and name[6:].isdigit():
            sig = first + sign * int(name[6:])
            if 34 <= sig <= 64:
                return sig
    raise PyociError(f'unknown signal "{raw}"')


class Container:
    def __init__(self, store: Store, cid: str, state: "dict[str, Any]") -> None:
        self.store = store
        self.id = cid
        self.state = state
        self.dir = store.dir(cid)

    @classmethod
    def load(cls, store: Store, cid: str) -> "Container":
        return cls(store, cid, store.load(cid))

    # -- queries -----------------------------------------------------------
    def status(self) -> str:
        return st.derive(self.state, self.dir)

    def oci_state(self) -> "dict[str, Any]":
        """The state JSON callers parse (CALLERS.md item 9)."""
        return st.document(self.id, self.state, self.dir)

    def cgroup(self) -> "Any":
        cg = self.state.get("cgroup")
        if not cg:
            return None
        from pyoci.cgroups import from_state

        return from_state(cg)

    # -- start ----------------------------------------------------------------
    def start(self) -> None:
        status = self.status()
        if status == st.STOPPED:
            raise IncorrectStatus("cannot start a container that has stopped")
        if status != st.CREATED:
            raise IncorrectStatus("cannot start an already running container")
        if self.state.get("no_process"):
            raise PyociError("config.json: process: required to start the container, "
                            "and it was created without one")
        notify = None
        if self.state.get("notify_socket"):
            from pyoci.linux import sdnotify

            notify = sdnotify.bind(self.dir)  # before the init can run and send
        fifo = f"{self.dir}/{FIFO}"
        _fault("start:before-fifo")
        fd = self._open_fifo(fifo)
        try:
            status = posix.open(f"{self.dir}/{STATUS_FIFO}",
                                posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
        except FileNotFoundError:
            status = -1
        try:
            _fault("start:after-fifo")
            try:
                posix.write(fd, b"0")
            except BrokenPipeError:
                raise IncorrectStatus("cannot start a container that has stopped") from None
        finally:
            posix.close(fd)
        try:
            posix.unlink(fifo)
        except FileNotFoundError:
            pass
        if status >= 0:
            try:
                verdict = self._await_verdict(status)
            finally:
                posix.close(status)
                try:
                    posix.unlink(f"{self.dir}/{STATUS_FIFO}")
                except FileNotFoundError:
                    pass
            if verdict != "ok":
                raise PyociError(verdict or "container process exited before it started")
        hooks = (self.state.get("hooks") or {}).get("poststart")
        if hooks:
            from pyoci import hooks as hookmod

            try:
                hookmod.run(hooks, "poststart", self.oci_state(),
                            cwd=hookmod.bundle_cwd(self.state.get("bundle", "")))
            except PyociError:
                self._kill_all(9)
                raise
        if notify is not None:
            # runc takes the host's socket from start's own environment.
            host = (posix.environ.get(b"NOTIFY_SOCKET") or b"").decode() \
                or self.state["notify_socket"]
            sdnotify.relay(notify, host, self.state["pid"])

    @staticmethod
    def _await_verdict(fd: int) -> str:
        """Read the init's verdict: "ok" just before its exec, or the error that stopped it.

        The init holds the fifo open until it execs or exits, so EOF comes only
        after it has said what it had to say, and a blocking read is all it takes.
        """
        posix.set_blocking(fd, True)  # opened non-blocking only so the open can't wait
        chunks: list[bytes] = []
        while True:
            data = posix.read(fd, 4096)
            if not data:
                break
            chunks.append(data)
            if b"".join(chunks) == b"ok":
                break
        return b"".join(chunks).decode(errors="replace")

    def _open_fifo(self, fifo: str) -> int:
        """Open the exec fifo for writing once the init is waiting on it.

        ENXIO means no reader yet: the init may still be on its way from
        "ready" to the fifo, so retry while it lives.
        """
        import _signal

        _signal.signal(13, _signal.SIG_IGN)  # EPIPE instead of dying if the init dies
        delay = 0.0005
        while True:
            try:
                return posix.open(fifo, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
            except FileNotFoundError:
                raise IncorrectStatus("cannot start an already running container") from None
            except OSError as e:
                if e.errno != 6:  # ENXIO
                    raise
            if not st.alive(self.state):
                raise IncorrectStatus("cannot start a container that has stopped")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    # -- kill -------------------------------------------------------------------
    def kill(self, sig: int, all_processes: bool = False) -> None:
        status = self.status()
        if all_processes:
            # As runc: --all signals whatever is left in the cgroup, so a stopped
            # container is no error (only the init's own signal needs it running).
            self._kill_all(sig)
            return
        if status == st.STOPPED:
            raise IncorrectStatus("container not running")
        try:
            posix.kill(self.state["pid"], sig)
        except ProcessLookupError:
            raise IncorrectStatus("container not running") from None

    def pids(self) -> "list[int]":
        """The container's processes: its cgroup's, or without one, found in /proc."""
        cg = self.cgroup()
        if cg is not None and cg.mode != "none":
            return cg.pids()
        if not st.alive(self.state):
            return []
        from pyoci.linux.proctree import container_pids

        return container_pids(self.state["pid"], bool(self.state.get("pidns")))

    def _kill_all(self, sig: int) -> None:
        cg = self.cgroup()
        if cg is not None and cg.mode == "none":
            for pid in self.pids():
                try:
                    posix.kill(pid, sig)
                except ProcessLookupError:
                    pass
        elif cg is not None and cg.exists():
            cg.kill_all(sig)
        elif st.alive(self.state):
            try:
                posix.kill(self.state["pid"], sig)
            except ProcessLookupError:
                pass

    # -- events -----------------------------------------------------------------
    def _event_cgroup(self) -> "Any":
        if self.status() == st.STOPPED:
            raise IncorrectStatus("container not running")
        cg = self.cgroup()
        if cg is None:
            raise IncorrectStatus("container has no cgroup")
        return cg

    def stats(self) -> "dict[str, Any]":
        """Resource usage, the ``data`` of runc's ``events --stats``."""
        return self._event_cgroup().stats()

    def events(self, interval: float) -> "Iterator[dict[str, Any]]":
        """runc's event stream: ``stats`` every ``interval`` seconds, ``oom`` as it happens.

        The OOM watch (pyoci.cgroups.oom) is registered before the first event is
        yielded, so a caller that has seen one event can't miss a later OOM.  The
        stream ends once the container has stopped (runc's ends when its cgroup
        empties or goes), after a last look for the OOM that may have stopped it.
        """
        import select

        cg = self._event_cgroup()
        watch = cg.oom_watch()
        poller = select.poll()
        if watch is not None:
            poller.register(watch.fileno(), watch.poll_events)
        try:
            next_stats = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= next_stats:
                    yield {"type": "stats", "id": self.id, "data": cg.stats()}
                    next_stats = max(next_stats + interval, now)
                stopped = self._stopped()
                wait = 0.0 if stopped else min(next_stats - time.monotonic(), 0.5)
                if watch is not None and poller.poll(max(wait, 0.0) * 1000):
                    for _ in range(watch.check()):
                        yield {"type": "oom", "id": self.id}
                    if watch.gone:
                        poller.unregister(watch.fileno())
                        watch.close()
                        watch = None
                elif watch is None and not stopped:
                    time.sleep(max(wait, 0.0))
                if stopped:
                    return
        finally:
            if watch is not None:
                watch.close()

    def _stopped(self) -> bool:
        """Whether the container has stopped (or was deleted) since it was loaded."""
        try:
            return Container.load(self.store, self.id).status() == st.STOPPED
        except ContainerNotFound:
            return True

    # -- delete -----------------------------------------------------------------
    def delete(self, force: bool = False) -> list[str]:
        """Remove everything the container holds; return poststop warnings."""
        status = self.status()
        if status != st.STOPPED:
            if not force:
                raise IncorrectStatus(
                    f"cannot delete container {self.id} that is not stopped: {status}"
                )
            if status == st.PAUSED:
                cg = self.cgroup()
                if cg is not None:
                    cg.thaw()
            self._kill_all(9)
            self._wait_gone()
        _fault("delete:killed")
        if self.state.get("cgroup"):
            self._remove_cgroup()
        elif self.state.get("cgroup_intent"):
            _remove_abandoned_cgroup(self.state["cgroup_intent"])
        _fault("delete:cgroup")
        self.store.remove(self.id)
        warnings: list[str] = []
        hooks = (self.state.get("hooks") or {}).get("poststop")
        if hooks:
            from pyoci import hooks as hookmod

            state = self.oci_state()
            state["status"] = st.STOPPED
            cwd = hookmod.bundle_cwd(state["bundle"])
            for i, hook in enumerate(hooks):  # a failing poststop hook doesn't stop the rest
                try:
                    hookmod.run([hook], "poststop", state, first_index=i, cwd=cwd)
                except PyociError as e:
                    warnings.append(str(e))
        return warnings

    def _remove_cgroup(self) -> None:
        """Remove the container's cgroup: directly when it is simply empty, else by its manager."""
        from pyoci.state.recorded_cgroup import remove_if_empty

        if remove_if_empty(self.state["cgroup"]):
            return
        cg = self.cgroup()
        # Whatever is still in the container's cgroup belongs to it: without a pid
        # namespace the init's death leaves the rest alive.
        if cg.exists() and cg.pids():
            cg.kill_all(9)
            self._wait_gone()
        cg.destroy()

    def _wait_gone(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while st.alive(self.state):
            if time.monotonic() > deadline:
                raise PyociError(f"container {self.id} did not die after SIGKILL")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        cg = self.cgroup()
        while cg is not None and cg.exists() and cg.pids():
            if time.monotonic() > deadline:
                break
            time.sleep(delay)


def _remove_abandoned_cgroup(intent: "dict[str, Any]") -> None:
    """A create died between making its cgroup and recording it: remove the leaves."""
    from pyoci.cgroups import from_state

    mgr = from_state(intent)
    # A create killed half-way through mkdir may have made only some hierarchies'
    # directories: destroy() removes whichever leaves exist.
    if mgr.exists():
        mgr.kill_all(9)
        deadline = time.monotonic() + 5
        while mgr.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
    mgr.destroy()


def remove_leftover(store: Store, cid: str) -> None:
    """``delete --force`` of an id with no usable state: clear what a crash left."""
    try:
        is_dir = (posix.stat(store.dir(cid)).st_mode & 0o170000) == 0o040000  # S_ISDIR
    except FileNotFoundError:
        is_dir = False
    if not is_dir:
        raise ContainerNotFound(cid)
    store.remove(cid)
