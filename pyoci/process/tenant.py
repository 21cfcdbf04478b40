"""``exec``: a new process inside a running container.

It joins every namespace of the container's init (the user namespace first,
the mount namespace last), the container's cgroup, and then goes through the
same final C exec step as the init: capabilities, no_new_privs, seccomp, the
user, and fd hygiene. It is made non-dumpable before it joins anything.
"""

from __future__ import annotations

import os

from pyoci._native import check, lib
from pyoci.errors import IncorrectStatus, ProcessSetupError, PyociError
from pyoci.linux import lsm, terminal
from pyoci.linux import namespaces as ns
from pyoci.process.init import (
    PR_SET_DUMPABLE,
    StageError,
    _describe,
    _environment,
    _fork_after_pid,
    _reset_signals,
    apply_process_attributes,
    enter_cwd,
    exec_process,
    lookup,
    open_trampoline,
)
from pyoci.process.spawn import release, single_threaded
from pyoci.process.sync import Channel
from pyoci.spec.plan import Plan

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

PR_SET_CHILD_SUBREAPER = 36


class Execd:
    def __init__(self, pid: int, console: int | None) -> None:
        self.pid = pid
        self.console = console


def open_namespaces(pid: int, config: dict[str, Any]) -> list[tuple[str, int]]:
    """fds of the init's namespaces, in join order, opened before anything is joined."""
    wanted = {n["type"] for n in (config.get("linux") or {}).get("namespaces") or []}
    fds = []
    try:
        for nstype in ns.JOIN_ORDER:
            if nstype not in wanted:
                continue
            # pid and time: the namespaces the init lives in, not pid_for_children
            path = f"/proc/{pid}/ns/{ns.PROC_NAMES[nstype]}"
            fds.append((nstype, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as e:
        for _, fd in fds:
            os.close(fd)
        raise IncorrectStatus("container not running") from e
    return fds


def spawn_exec(plan: Plan, init_pid: int, place: Any, console: int | None,
               foreground: bool) -> int:
    """Fork, join, report the exec'd process's pid; the caller waits when foreground."""
    if not single_threaded():
        raise PyociError("refusing to fork: pyoci is not single-threaded")
    nsfds = open_namespaces(init_pid, plan.config)
    ours, theirs = Channel.pair()
    if foreground:
        # The process may be our grandchild (pid namespace): become its reaper.
        lib.pyoci_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ours.close()
            _child(plan, theirs, nsfds, console)
            os._exit(1)
    finally:
        theirs.close()
        for _, fd in nsfds:
            os.close(fd)
    target = 0
    try:
        release(plan, pid, place, ours, "exec:forked")
        while True:
            msg = ours.recv()
            if msg is None:
                raise ProcessSetupError("exec", 0, "exec process exited before it was ready")
            if msg["type"] == "pid":
                target = msg["pid"]
            elif msg["type"] == "ready":
                break
            elif msg["type"] == "error":
                raise ProcessSetupError(msg["stage"], msg.get("errno", 0), msg["message"])
    except BaseException:
        for p in {pid, target} - {0}:
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise
    finally:
        ours.close()
    if target != pid:
        os.waitpid(pid, 0)
    return target


def _child(plan: Plan, chan: Channel, nsfds: list[tuple[str, int]], console: int | None) -> None:
    stage = "exec"
    try:
        check(lib.pyoci_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
        _reset_signals()
        trampoline = open_trampoline()  # before the mount namespace hides our files
        msg = chan.recv()
        if not msg or msg["type"] != "go":
            os._exit(1)
        stage = "join namespaces"
        needs_fork = False
        for nstype, fd in nsfds:
            try:
                ns.join(fd, nstype, nstype)
            except OSError as e:
                raise StageError(stage, e.errno or 0,
                                 f"join {nstype} namespace: {_describe(e, False)}") from None
            needs_fork = needs_fork or nstype in ("pid", "time")
            os.close(fd)
        if needs_fork:
            _fork_after_pid(chan)
        else:
            chan.send("pid", pid=os.getpid())
        process = plan.process
        if process.get("terminal"):
            stage = "console"
            os.setsid()
            assert console is not None
            terminal.setup(console, process.get("consoleSize"), console_mount=False)
            os.close(console)
        stage = "cwd"
        enter_cwd(process.get("cwd") or "/")
        stage = "process attributes"
        apply_process_attributes(process, {})
        stage = "exec"
        env = _environment(process)
        path = lookup(process["args"][0], env)
        attrs = lsm.open_exec_attrs(process)
        chan.send("ready")
        chan.close()
        lsm.write_exec_attrs(attrs)
        exec_process(plan, path, env, trampoline=trampoline)
    except StageError as e:
        _send(chan, e.stage, e.errno, str(e))
    except OSError as e:
        _send(chan, stage, e.errno or 0, _describe(e))
    except BaseException as e:
        _send(chan, stage, 0, f"{type(e).__name__}: {e}")
    os._exit(255)


def _send(chan: Channel, stage: str, err: int, message: str) -> None:
    try:
        chan.send("error", stage=stage, errno=err, message=message)
    except OSError:
        os.write(2, f"pyoci: exec failed: {message}\n".encode())
