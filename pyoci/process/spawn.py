"""The parent side of ``create``: fork, place, map, run hooks, wait for *ready*."""

from __future__ import annotations

import os

from pyoci._native import check, lib
from pyoci.errors import ProcessSetupError, PyociError
from pyoci.linux import namespaces as ns
from pyoci.process.init import PR_SET_DUMPABLE, Child
from pyoci.process.sync import Channel
from pyoci.spec.plan import Plan

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def single_threaded() -> bool:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Threads:"):
                return int(line.split()[1]) == 1
    return True


def _write_maps(pid: int, linux: dict[str, Any]) -> None:
    for kind in ("uid", "gid"):
        lines = "".join(
            f"{m['containerID']} {m['hostID']} {m['size']}\n"
            for m in linux.get(f"{kind}Mappings") or []
        )
        try:
            with open(f"/proc/{pid}/{kind}_map", "w") as f:
                f.write(lines)
        except OSError as e:
            raise ProcessSetupError(
                "user namespace", e.errno or 0,
                f"write {kind}_map: {(e.strerror or '').lower()}",
            ) from None


def spawn(plan: Plan, state_dir: str, place: Callable[[int], None],
          run_parent_hooks: Callable[[int], None] | None, cgroup_mount: Any,
          on_pid: Callable[[int], None] | None = None, console: int | None = None,
          mount_trees: dict[int, int] | None = None, cgroup_dir: str | None = None,
          placement: dict[str, str] | None = None) -> int:
    """Start the container process; return the init's pid once it is ready.

    ``console`` is a connected socket the init sends the pty master over; the
    caller owns it.
    """
    if not single_threaded():
        raise PyociError("refusing to fork: pyoci is not single-threaded")
    ours, theirs = Channel.pair()
    fifo_dir = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        child = Child(plan, theirs, fifo_dir, console, cgroup_mount,
                      hooks_in_parent=run_parent_hooks is not None, mount_trees=mount_trees)
        # Non-dumpable before the fork, so the child is from birth: one cloned straight
        # into its pid namespace is never dumpable there, not even for an instant.
        check(lib.pyoci_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
        pid, placed, born_in_pidns = fork_into(cgroup_dir, _clone_pidns(plan))
        if pid == 0:  # pragma: no cover - runs in the child
            ours.close()
            child.born_in_pidns = born_in_pidns
            child.run()
            os._exit(1)
        if placed:
            place = _already_placed
        if placement is not None:
            placement["how"] = "clone3" if placed else "cgroup.procs"
    finally:
        theirs.close()
        os.close(fifo_dir)
    init_pid = 0
    try:
        release(plan, pid, place, ours, "create:forked")
        while True:
            msg = ours.recv()
            if msg is None:
                raise ProcessSetupError(
                    "init", 0, "container init exited unexpectedly before it was ready"
                )
            kind = msg["type"]
            if kind == "userns":
                if os.geteuid() != 0:
                    from pyoci import rootless

                    rootless.write_maps(pid, plan.linux)
                else:
                    _write_maps(pid, plan.linux)
                ours.send("mapped")
            elif kind == "pid":
                init_pid = msg.get("pid") or pid  # none: the process we forked is the init
                if on_pid:
                    on_pid(init_pid)
            elif kind == "hooks":
                assert run_parent_hooks is not None
                run_parent_hooks(init_pid)
                ours.send("hooks-done")
            elif kind == "ready":
                if not init_pid:  # cannot happen: the init waits until its pid is sent
                    raise ProcessSetupError("init", 0, "container init ready before its pid")
                break
            elif kind == "error":
                raise ProcessSetupError(msg["stage"], msg.get("errno", 0), msg["message"])
    except BaseException:
        for p in {pid, init_pid} - {0}:
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        _reap(pid)
        if init_pid and init_pid != pid:
            _reap(init_pid)
        raise
    finally:
        ours.close()
    if init_pid != pid:
        _reap(pid)
    return init_pid


def _already_placed(pid: int) -> None:
    """The child was cloned into its cgroup: nothing to write."""


def _clone_pidns(plan: Plan) -> bool:
    """Whether the container process can be cloned straight into its new pid namespace.

    That makes it the init at once: no second fork in the child, which costs
    a copy of the whole interpreter's page tables and its copy-on-write faults
    (~2.5 ms of CPU per create). Only when nothing must happen before the pid
    namespace exists: a new user namespace must own it (so it comes first), a
    joined namespace must be entered non-dumpable and in order, and a time
    namespace only applies to children of the process that unshares it.
    """
    return bool(plan.new_ns & ns.CLONE_NEWPID and not plan.new_ns & ns.CLONE_NEWTIME
                and not plan.new_userns and not plan.join)


def fork_into(cgroup_dir: str | None, new_pidns: bool = False) -> tuple[int, bool, bool]:
    """fork(), straight into ``cgroup_dir`` with clone3(CLONE_INTO_CGROUP) and, with
    ``new_pidns``, into a new pid namespace, where the kernel has it; returns
    (pid, placed, in new pid namespace). Otherwise a plain fork, placed afterwards,
    whose child unshares the pid namespace itself."""
    from pyoci._native import ffi, lib

    fd = -1
    if cgroup_dir:
        try:
            fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
    try:
        for flags in ((ns.CLONE_NEWPID, 0) if new_pidns else (0,)):
            if fd < 0 and not flags:
                break
            pid = lib.pyoci_fork_clone3(fd, flags)
            err = ffi.errno
            if pid >= 0:
                return pid, fd >= 0, bool(flags)
            if flags:
                continue  # the child unshares it then, and reports any error as before
            if err not in (38, 22, 95, 1):  # ENOSYS EINVAL EOPNOTSUPP EPERM: fall back
                raise OSError(err, os.strerror(err), cgroup_dir)
    finally:
        if fd >= 0:
            os.close(fd)  # in the parent and in the child
    return os.fork(), False, False


def release(plan: Plan, pid: int, place: Callable[[int], None], chan: Channel,
            fault: str) -> None:
    """Set up the forked child from outside, then let it go on.

    ``execCPUAffinity.initial`` applies before the cgroup move, as the spec says;
    the cgroup placement happens before the child can unshare its cgroup namespace.
    """
    from pyoci import faults

    faults.point(fault)
    initial = (plan.process.get("execCPUAffinity") or {}).get("initial")
    if initial:
        from pyoci.linux.sched import set_affinity

        set_affinity(pid, initial, "initial")
    place(pid)
    chan.send("go")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def connect_console(path: str) -> int:
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise PyociError(f"connect to console socket {path}: {(e.strerror or '').lower()}") \
            from None
    return s.detach()
