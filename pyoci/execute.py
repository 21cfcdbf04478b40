"""``exec`` below the command line: a new process in a running container.

What ``pyoci exec`` and :meth:`pyoci.Container.exec` share: the process
object (from a process.json or from exec's options on top of the container's
own process), its plan, the console, the cgroup placement, the spawn, the pid
file, and the wait. The CLI only parses flags into these arguments.

Run in a library caller's process, the spawn must leave that process as it
was: the dumpable flag and the pid namespace its children are born in (both
changed for the fork) are put back, and the child-subreaper flag too unless
the caller asked to stay the process's foreground parent.
"""

from __future__ import annotations

import os

from pyoci.errors import CgroupError, IncorrectStatus, PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
PIPE = -1  # as subprocess.PIPE


class Process:
    """A process started by exec: its host pid, the stdio asked for, and its exit status."""

    def __init__(self, pid: int, console: int | None = None,
                 stdio: tuple[Any, Any, Any] = (None, None, None)) -> None:
        self.pid = pid
        self.console = console  # the pty master, for a terminal without a console socket
        self.stdin: IO[bytes] | None = stdio[0]
        self.stdout: IO[bytes] | None = stdio[1]
        self.stderr: IO[bytes] | None = stdio[2]
        self.returncode: int | None = None

    def wait(self) -> int:
        """Wait for the process; its status the way a shell reports it (128+N for a signal)."""
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                self.returncode = 255
                break
            except InterruptedError:
                continue
            self.returncode = shell_status(status)
        return self.returncode

    def poll(self) -> int | None:
        """The exit status if the process has exited, else None; never blocks."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 255
            else:
                if pid:
                    self.returncode = shell_status(status)
        return self.returncode

    def close(self) -> None:
        """Close the pipes and the console this handle holds."""
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                f.close()
        if self.console is not None:
            os.close(self.console)
            self.console = None


def shell_status(status: int) -> int:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def build_process(args: list[str], base: dict[str, Any], cache: str, *, tty: bool = False,
                  env: list[str] | None = None, cwd: str | None = None,
                  user: str | int | None = None, additional_gids: list[Any] | None = None,
                  caps: list[str] | None = None, apparmor: str | None = None,
                  process_label: str | None = None, no_new_privs: bool = False
                  ) -> dict[str, Any]:
    """The process object of ``exec ARGS``: the container's own process, with the options on top.

    ``user`` is ``"uid[:gid]"`` or a uid. Only what the options set is checked
    (the rest comes from the stored, validated config); the full validator
    words the error when a check fails.
    """
    if not args:
        raise UsageError("exec: no command given (args or --process)")
    process: dict[str, Any] = {
        "terminal": bool(tty),
        "args": list(args),
        "env": list(base.get("env") or []),
        "cwd": str(cwd or base.get("cwd") or "/"),
        "user": dict(base.get("user") or {"uid": 0, "gid": 0}),
        "noNewPrivileges": bool(base.get("noNewPrivileges")) or bool(no_new_privs),
    }
    for key in ("capabilities", "apparmorProfile", "selinuxLabel", "rlimits", "oomScoreAdj"):
        if key in base:
            process[key] = base[key]
    for item in env or []:
        name = item.partition("=")[0]
        process["env"] = [e for e in process["env"] if e.partition("=")[0] != name] + [item]
    if user is not None and user != "":
        uid, _, gid = str(user).partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise UsageError(f"invalid user format: {user}") from None
        process["user"].pop("additionalGids", None)
    gids = additional_gids or []
    if gids:
        try:
            process["user"]["additionalGids"] = [int(g) for g in gids]
        except ValueError:
            raise UsageError(f"invalid additional-gids: {gids}") from None
    caps = list(caps or [])
    if caps:
        sets = dict(process.get("capabilities") or {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            sets[kind] = list(dict.fromkeys([*(sets.get(kind) or []), *caps]))
        process["capabilities"] = sets
    if apparmor:
        process["apparmorProfile"] = apparmor
    if process_label:
        process["selinuxLabel"] = process_label
    if not _flags_valid(process):
        # The reference check words the error; it imports jsonschema only on a miss.
        from pyoci import jsonio
        from pyoci.spec.validate import validate_process

        validate_process(process, jsonio.dumps(process, sort_keys=True).encode(), cache)
    return process


def checked_process(process: dict[str, Any], cache: str, raw: bytes | None = None
                    ) -> dict[str, Any]:
    """A whole process object (exec --process), validated as process.json."""
    from pyoci.spec.validate import validate_process

    if raw is None:
        from pyoci import jsonio

        raw = jsonio.dumps(process, sort_keys=True).encode()
    validate_process(process, raw, cache)
    return process


_MAX_ID = 1 << 32


def _flags_valid(process: dict[str, Any]) -> bool:
    """Whether the fields the command line can set are certainly valid.

    Everything else was copied from the container's config.json, which is stored
    validated, so only what the flags put in needs checking: the strings (no NUL,
    ``cwd`` absolute) and the ids (uint32). False sends the process through the
    full validator, which then words the error exactly as it always has.
    """
    strings = [*process["args"], *process["env"], process["cwd"]]
    for sets in (process.get("capabilities") or {}).values():
        strings += sets if isinstance(sets, list) else [None]
    for key in ("apparmorProfile", "selinuxLabel"):
        if key in process:
            strings.append(process[key])
    if not process["args"] or not process["cwd"].startswith("/") or any(
            type(s) is not str or "\0" in s for s in strings):
        return False
    user = process["user"]
    ids = [user.get("uid"), user.get("gid"), *(user.get("additionalGids") or [])]
    return all(type(i) is int and 0 <= i < _MAX_ID for i in ids)


def execute(container: Any, process: dict[str, Any] | list[str], *, tty: bool = False,
            detach: bool = False, env: list[str] | None = None, cwd: str | None = None,
            user: str | int | None = None, additional_gids: list[Any] | None = None,
            caps: list[str] | None = None, apparmor: str | None = None,
            process_label: str | None = None, no_new_privs: bool = False,
            pid_file: str | None = None, console_socket: str | None = None,
            preserve_fds: int = 0, cgroups: list[str] | None = None,
            ignore_paused: bool = False, stdin: Any = None, stdout: Any = None,
            stderr: Any = None, keep_subreaper: bool = False,
            warn: Callable[[str], None] | None = None,
            debug: Callable[[str], None] | None = None, process_raw: bytes | None = None
            ) -> Process:
    """Start a process in ``container`` (a :class:`pyoci.container.Container`).

    ``process`` is the args, or a whole process object. ``stdin``/``stdout``/
    ``stderr`` are None (the caller's own), :data:`PIPE` or a file descriptor
    (or anything with ``fileno()``). With ``tty`` and no ``console_socket``
    the pty master comes back as ``Process.console``. ``keep_subreaper``: the
    caller stays the child subreaper (a foreground ``pyoci exec``), so orphans
    of the process come to it.
    """
    from pyoci.process import execplan
    from pyoci.state import status as st

    status = container.status()
    if status == st.STOPPED:
        raise IncorrectStatus("cannot exec in a stopped container")
    if status == st.PAUSED and not ignore_paused:
        raise IncorrectStatus("cannot exec in a paused container (use --ignore-paused)")
    store, cid = container.store, container.id
    cache = f"{store.root}/.cache"
    base = execplan.load(store.dir(cid), cid, container.state.get("bundle", ""),
                         f"{cache}/seccomp")
    if isinstance(process, dict):
        process = checked_process(process, cache, process_raw)
    else:
        process = build_process(list(process), base.process, cache, tty=tty, env=env, cwd=cwd,
                                user=user, additional_gids=additional_gids, caps=caps,
                                apparmor=apparmor, process_label=process_label,
                                no_new_privs=no_new_privs)
    from pyoci.linux import lsm

    lsm.check_available(process, {}, "process")
    if console_socket and not process.get("terminal"):
        raise PyociError("cannot use console socket if pyoci will not detach or allocate tty")
    plan = base.plan(process, preserve_fds=preserve_fds, console_socket=console_socket)
    for w in plan.warnings:
        if warn is not None:
            warn(w)
    console = ours = None
    if process.get("terminal"):
        if console_socket:
            from pyoci.process.spawn import connect_console

            console = connect_console(os.path.abspath(str(console_socket)))
        else:
            import _socket

            a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            ours, console = a.detach(), b.detach()
    cg_state = container.state.get("cgroup")
    place = placer(cg_state) if cg_state else (lambda p: None)
    if cgroups:
        place = _sub_cgroup_placer(cg_state or {}, list(cgroups), place)
    if debug is not None:
        debug(f"exec {cid}: {process['args']} into the namespaces of init pid "
              f"{container.state['pid']}")
    ends, swapped = _stdio(stdin, stdout, stderr)
    try:
        with caller_kept(keep_subreaper):
            from pyoci.process.tenant import spawn_exec

            pid = spawn_exec(plan, container.state["pid"], place, console,
                             foreground=not detach, oci_state=container.oci_state)
    except BaseException:
        if ours is not None:
            os.close(ours)
        for f in ends:
            if f is not None:
                f.close()
        raise
    finally:
        _restore_stdio(swapped)
        if console is not None:
            os.close(console)
    if debug is not None:
        debug(f"exec {cid}: process pid {pid} started")
    master = None
    if ours is not None:
        try:
            master = receive_master(ours)
        except OSError:
            master = None
    if pid_file:
        from pyoci.state.store import write_atomic

        write_atomic(os.path.abspath(str(pid_file)), str(pid), 0o644)
    return Process(pid, master, ends)


def receive_master(sock_fd: int) -> int:
    """The pty master the container process sends over the console socket pair (closes it)."""
    import _socket
    import sys

    s = _socket.socket(fileno=sock_fd)
    try:
        _msg, anc, _flags, _addr = s.recvmsg(4096, _socket.CMSG_SPACE(4))
    finally:
        s.close()
    for level, kind, data in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            return int.from_bytes(data[:4], sys.byteorder)
    raise OSError(5, "no pty master received from the container")


def _stdio(*wanted: Any) -> tuple[list[Any], list[tuple[int, int]]]:
    """Put the asked-for stdio on fds 0-2 of this process for the fork; the parent's ends.

    The exec'd process inherits fds 0, 1 and 2 of the runtime (as with the
    CLI), so a library caller's choice is put there for the fork only and
    :func:`_restore_stdio` puts the caller's own back. spawn_exec refuses to
    fork unless the process is single-threaded, so nothing else sees the swap.
    """
    ends: list[Any] = [None, None, None]
    swapped: list[tuple[int, int]] = []
    if all(w is None for w in wanted):
        return ends, swapped
    try:
        for fd, w in enumerate(wanted):
            if w is None:
                continue
            if w == PIPE:
                r, wr = os.pipe()
                child, parent = (r, wr) if fd == 0 else (wr, r)
                ends[fd] = open(parent, "wb" if fd == 0 else "rb", buffering=0)
            else:
                child = os.dup(w if isinstance(w, int) else w.fileno())
            saved = os.dup(fd)
            swapped.append((fd, saved))
            os.dup2(child, fd)
            os.close(child)
    except BaseException:
        _restore_stdio(swapped)
        raise
    return ends, swapped


def _restore_stdio(swapped: list[tuple[int, int]]) -> None:
    for fd, saved in swapped:
        os.dup2(saved, fd)
        os.close(saved)


class caller_kept:
    """Keep the dumpable flag, the pid namespace for children and (optionally) the
    child-subreaper flag of this process as they were before a spawn."""

    def __init__(self, keep_subreaper: bool = False) -> None:
        self.keep_subreaper = keep_subreaper

    def __enter__(self) -> caller_kept:
        from pyoci._native import ffi, lib

        self.lib = lib
        self.dumpable = lib.pyoci_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
        self.subreaper = ffi.new("int *")
        lib.pyoci_prctl(PR_GET_CHILD_SUBREAPER, int(ffi.cast("uintptr_t", self.subreaper)), 0, 0, 0)
        self.ns = [(t, os.open(f"/proc/self/ns/{t}_for_children", os.O_RDONLY | os.O_CLOEXEC))
                   for t in ("pid", "time") if os.path.exists(f"/proc/self/ns/{t}_for_children")]
        return self

    def __exit__(self, *exc: object) -> None:
        from pyoci.linux import namespaces as ns

        lib = self.lib
        try:
            for t, fd in self.ns:
                try:
                    if os.readlink(f"/proc/self/ns/{t}_for_children") != os.readlink(
                            f"/proc/self/fd/{fd}"):
                        ns.join(fd, t, f"/proc/self/ns/{t}_for_children")
                except OSError:
                    # A rootless exec joined the container's user namespace first
                    # (pyoci.process.tenant): there the old namespaces are out of
                    # reach, and that join can't be undone anyway.
                    continue
        finally:
            for _, fd in self.ns:
                os.close(fd)
        if self.dumpable >= 0:
            lib.pyoci_prctl(PR_SET_DUMPABLE, self.dumpable, 0, 0, 0)
        if not self.keep_subreaper:
            lib.pyoci_prctl(PR_SET_CHILD_SUBREAPER, self.subreaper[0], 0, 0, 0)


def placer(cgroup_state: dict[str, Any]) -> Callable[[int], None]:
    """A function that moves a pid into the container's cgroup in every hierarchy."""
    from pyoci.state.recorded_cgroup import directories, write_procs

    dirs = directories(cgroup_state)
    if dirs is None:
        from pyoci.cgroups import from_state

        return from_state(cgroup_state).apply

    user_bus = (cgroup_state.get("systemd") or {}).get("user_bus")

    def place(pid: int) -> None:
        try:
            for d in dirs:
                write_procs(d, pid)
        except CgroupError as exc:
            from pyoci import rootless

            if not user_bus or not rootless.is_permission_error(exc):
                raise
            # Rootless under the user's systemd, called from outside the user's own
            # subtree: the kernel won't let the user move the pid across, systemd will.
            from pyoci.cgroups import from_state

            from_state(cgroup_state).attach(pid)

    return place


def _sub_cgroup_placer(cg_state: dict[str, Any], specs: list[str], default: Any) -> Any:
    """``--cgroup [<controller>:]<path>``: run in an existing sub-cgroup of the container's.

    Controllers not named go to the container's own cgroup, as with runc. The
    path is joined onto the container's cgroup as runc joins it: a leading "/"
    is still inside it, so ``/`` (or ``memory:/``) is the container's own cgroup.
    """
    dirs: dict[str, str] = dict(cg_state.get("paths") or {})
    if cg_state.get("unified_root"):
        dirs["unified"] = os.path.join(cg_state["unified_root"], cg_state["path"].lstrip("/"))
    if not dirs:
        raise UsageError("exec --cgroup: the container has no cgroup")
    chosen: dict[str, str] = {}
    for spec in specs:
        ctrl, sep, sub = spec.rpartition(":")
        names = [c for c in (ctrl.split(",") if sep else list(dirs)) if c]
        if ".." in sub.split("/"):
            raise UsageError(f"exec --cgroup {spec}: the path must be relative to the "
                             "container's cgroup")
        sub = sub.strip("/")
        for name in names:
            key = "" if name == "unified" and "" in dirs else name
            if key not in dirs:
                raise UsageError(f"exec --cgroup {spec}: unknown controller {name}")
            target = os.path.join(dirs[key], sub)
            if not os.path.isdir(target):
                raise UsageError(f"exec --cgroup {spec}: no such sub-cgroup {target}")
            chosen[key] = target

    def place(pid: int) -> None:
        default(pid)  # the container's cgroup everywhere, then the named sub-cgroups
        for target in chosen.values():
            with open(os.path.join(target, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    return place
