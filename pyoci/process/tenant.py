"""``exec``: a new process inside a running container.

It joins every namespace of the container's init, the container's cgroup,
and then goes through the same final C exec step as the init: capabilities,
no_new_privs, seccomp, the user, and fd hygiene. The pid and time namespaces
are entered by pyoci itself for its children, so the one fork lands the
process in them (no second fork); the process then joins the others itself,
the user namespace first and the mount namespace last. It is non-dumpable
from birth, before it is in any of the container's namespaces.
"""

from __future__ import annotations

import os

from pyoci._native import check, lib
from pyoci.errors import IncorrectStatus, ProcessSetupError, PyociError
from pyoci.linux import lsm
from pyoci.linux import namespaces as ns
from pyoci.process.init import (
    PR_SET_DUMPABLE,
    SECCOMP_FILTER_FLAG_NEW_LISTENER,
    StageError,
    _connect_listener,
    _describe,
    _environment,
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
# Namespaces that only take effect for children: the parent joins them itself just
# before it forks, so the child is born inside and no second fork is needed.
FOR_CHILDREN = ("pid", "time")


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
        if isinstance(e, PermissionError) and os.geteuid() != 0:
            # Until start, the init is pyoci's own non-dumpable process: only root may
            # open its namespaces. Making it traceable would hand its host fds to the
            # container, so rootless exec waits for start.
            raise IncorrectStatus("cannot exec in a container that is not started yet when "
                                  "rootless: start it first") from e
        raise IncorrectStatus("container not running") from e
    return fds


def spawn_exec(plan: Plan, init_pid: int, place: Any, console: int | None,
               foreground: bool, oci_state: Any = None) -> int:
    """Fork the process into the container; return its pid once it is ready to exec.

    The pid and time namespaces are entered by us, for our children only
    (``setns`` moves the caller's ``pid_for_children``; for time, pyoci's own
    monotonic clocks too, which it doesn't use), so the fork lands the process
    in them directly: it is our child, with no intermediate process to fork and
    reap. We make ourselves non-dumpable first, and the child inherits that at
    birth: it is never visible inside the container while it could be traced
    or have its host root and fds opened through ``/proc``.

    With a seccomp ``listenerPath`` the new process gets a listener of its own,
    sent to the agent as the init's is, with the container's state from
    ``oci_state()`` (runc's message for exec).
    """
    if not single_threaded():
        raise PyociError("refusing to fork: pyoci is not single-threaded")
    if plan.process.get("terminal"):
        # termios and struct only for a console, and here, before the fork: the
        # child can't import once it has joined the mount namespace.
        from pyoci.linux import terminal  # noqa: F401
    notify, listener_doc = _listener(plan, oci_state)
    try:
        nsfds = open_namespaces(init_pid, plan.config)
    except BaseException:
        if notify >= 0:
            os.close(notify)
        raise
    ours = theirs = None
    if foreground:
        # As before: orphans of a process outside any pid namespace of its own come to us.
        lib.pyoci_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        check(lib.pyoci_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
        ours_first = _rootless_joins(nsfds)
        for nstype, fd in nsfds:
            if nstype in ours_first:
                try:
                    ns.join(fd, nstype, nstype)
                except OSError as e:
                    raise ProcessSetupError("join namespaces", e.errno or 0,
                                            f"join {nstype} namespace: {_describe(e, False)}") \
                        from None
        ours, theirs = Channel.pair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ours.close()
            _child(plan, theirs, [(t, fd) for t, fd in nsfds if t not in ours_first],
                   console, notify, listener_doc)
            os._exit(1)
    finally:
        if theirs is not None:
            theirs.close()
        if notify >= 0:
            os.close(notify)
        for _, fd in nsfds:
            os.close(fd)
    assert ours is not None
    try:
        release(plan, pid, place, ours, "exec:forked")
        msg = ours.recv()
        if msg is None:
            raise ProcessSetupError("exec", 0, "exec process exited before it was ready")
        if msg["type"] == "error":
            raise ProcessSetupError(msg["stage"], msg.get("errno", 0), msg["message"])
    except BaseException:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise
    finally:
        ours.close()
    return pid


def _listener(plan: Plan, oci_state: Any) -> tuple[int, dict[str, Any] | None]:
    """Connect to the seccomp agent, from the host's mount namespace as ``create`` does.

    Returns the socket and the message without its ``pid`` (the child's host pid,
    which only the child reads before it joins the container's namespaces).
    """
    sec = plan.seccomp
    if sec is None or not sec.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        return -1, None
    from pyoci import SPEC_VERSION, jsonio  # noqa: F401 - jsonio for the child, before the fork

    try:
        sock = _connect_listener(sec.listener_path)
    except StageError as e:
        raise ProcessSetupError(e.stage, e.errno, str(e)) from None
    return sock, {"ociVersion": SPEC_VERSION, "fds": ["seccompFd"], "pid": 0,
                  "metadata": sec.listener_metadata,
                  "state": oci_state() if oci_state is not None else {}}


def _rootless_joins(nsfds: list[tuple[str, int]]) -> tuple[str, ...]:
    """The namespaces we join ourselves before the fork: pid and time, and rootless the user one.

    Joining a pid or time namespace takes CAP_SYS_ADMIN over the user namespace
    that owns it. Root has it everywhere; an ordinary user only inside the
    container's user namespace (which the user owns), so joins that one first.
    pyoci keeps its own ids there, and stays non-dumpable (its memory was not
    made in that namespace), so the container can't trace or open it.
    """
    if os.geteuid() == 0 or not any(t == "user" for t, _ in nsfds):
        return FOR_CHILDREN
    return ("user", *FOR_CHILDREN)


def _child(plan: Plan, chan: Channel, nsfds: list[tuple[str, int]], console: int | None,
           notify: int = -1, listener_doc: dict[str, Any] | None = None) -> None:
    stage = "exec"
    try:
        check(lib.pyoci_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))  # inherited; never rely on it
        _reset_signals()
        notify_msg = b""
        if listener_doc is not None:
            # The host's /proc is ours until the mount namespace is joined: our host pid.
            from pyoci import jsonio  # imported by _listener, before the fork

            listener_doc["pid"] = int(os.readlink("/proc/self"))
            notify_msg = jsonio.dumps(listener_doc).encode()
        trampoline = open_trampoline()  # before the mount namespace hides our files
        msg = chan.recv()
        if not msg or msg["type"] != "go":
            os._exit(1)
        stage = "join namespaces"
        for nstype, fd in nsfds:
            try:
                ns.join(fd, nstype, nstype)
            except OSError as e:
                raise StageError(stage, e.errno or 0,
                                 f"join {nstype} namespace: {_describe(e, False)}") from None
            os.close(fd)
        if any(nstype == "user" for nstype, _ in nsfds):
            # setns keeps our host ids, which the namespace doesn't map: what we make
            # (the pty) would belong to nobody, and could not be chowned to the user.
            # Become the namespace's root first, as runc does (EINVAL: 0 is unmapped).
            stage = "user namespace"
            ns.become_root()
        process = plan.process
        if process.get("terminal"):
            stage = "console"
            os.setsid()
            assert console is not None
            from pyoci.linux import terminal  # imported by spawn_exec, before the fork

            terminal.setup(console, process.get("consoleSize"), console_mount=False,
                           uid=(process.get("user") or {}).get("uid", 0))
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
        exec_process(plan, path, env, notify, notify_msg, trampoline=trampoline)
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
