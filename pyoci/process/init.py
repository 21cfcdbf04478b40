"""The container process, from fork to execve, in the order of DESIGN.md.

Stage 1 (the forked child) makes itself non-dumpable, joins and unshares
namespaces and, when a pid or time namespace needs it, forks the init. The
init builds the rootfs, reports *ready*, waits on the exec fifo, and hands
over to the C exec step, after which no Python runs.

When a new pid namespace is the only reason for that second fork (no user
namespace to create first, nothing to join, no time namespace), the parent
clones the child straight into the new pid namespace instead
(``spawn.fork_into``): stage 1 is then the init, and the setup order is
otherwise unchanged. The parent makes itself non-dumpable before it forks,
so either way the child is non-dumpable from birth.
"""

from __future__ import annotations

import errno as errno_mod
import fcntl
import os
import stat

from pyoci import faults, trace
from pyoci._native import check, ffi, lib
from pyoci.linux import devices, lsm, rlimits, rootfs, sched
from pyoci.linux import namespaces as ns
from pyoci.process.sync import Channel
from pyoci.spec.plan import Plan

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
STATUS_FIFO = "start.status"  # the init's verdict for `start` (see Container.start)
TRAMPOLINE_MARKER = "pyoci-exec-trampoline"  # argv[0] the trampoline insists on
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StageError(Exception):
    """A failure inside the container process, reported to the parent as-is."""

    def __init__(self, stage: str, err: int, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.errno = err


class Child:
    """What the forked process needs besides the plan: fds the parent opened for it."""

    def __init__(self, plan: Plan, chan: Channel, fifo_dir: int, console: int | None,
                 cgroup_mount: Any, hooks_in_parent: bool,
                 mount_trees: dict[int, int] | None = None) -> None:
        self.plan = plan
        # mount index -> bind source as a detached tree, made by the parent
        # (rootfs.open_bind_sources, pyoci/linux/idmap.py)
        self.mount_trees = mount_trees or {}
        self.chan = chan
        self.fifo_dir = fifo_dir
        self.console = console
        self.cgroup_mount = cgroup_mount
        self.hooks_in_parent = hooks_in_parent
        self._stage = "init"
        self.notify = -1
        self.host_pid = 0
        self.lsm_attrs: list[tuple[int, bytes]] = []
        self.trampoline = -1
        self.status = -1
        # Set in the child by spawn: cloned straight into its new pid namespace, so
        # it is the init already and forks no second time.
        self.born_in_pidns = False
        if plan.process.get("terminal"):
            # Here, in the parent before fork, rather than at the top: the console
            # needs termios, fcntl and struct (~1 ms), most containers have none,
            # and after pivot_root nothing more can be imported.
            from pyoci.linux import terminal  # noqa: F401
        hooks = plan.config.get("hooks") or {}
        if hooks.get("createContainer") or hooks.get("startContainer"):
            import pyoci.hooks  # noqa: F401 - the same, for the container's hooks

    @property
    def stage(self) -> str:
        """The step under way: named in errors, and logged with --debug."""
        return self._stage

    @stage.setter
    def stage(self, value: str) -> None:
        self._stage = value
        trace.debug(f"init {self.plan.cid}: {value}")

    # -- stage 1 ---------------------------------------------------------------
    def run(self) -> None:
        """Never returns: exits the process on any outcome."""
        try:
            self._stage1()
        except StageError as e:
            self._report(e.stage, e.errno, str(e))
        except OSError as e:
            self._report(self.stage, e.errno or 0, _describe(e))
        except BaseException as e:
            self._report(self.stage, 0, f"{type(e).__name__}: {e}")
        os._exit(1)

    def _report(self, stage: str, err: int, message: str) -> None:
        try:
            self.chan.send("error", stage=stage, errno=err, message=message)
        except OSError:
            pass

    def _stage1(self) -> None:
        plan = self.plan
        # Before any namespace is joined: a container process must never be able to
        # open our /proc/<pid>/exe (the host's Python) or read our memory.
        check(lib.pyoci_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
        _reset_signals()
        msg = self.chan.recv()
        if not msg or msg["type"] != "go":
            os._exit(1)
        self.stage = "join namespaces"
        for nstype, path in plan.join:
            fd = ns.open_ns(path, nstype)
            try:
                ns.join(fd, nstype, path)
            finally:
                os.close(fd)
        if plan.new_userns:
            self.stage = "user namespace"
            ns.unshare(ns.CLONE_NEWUSER)
            # An unprivileged parent (or newuidmap acting for it) may open our
            # /proc/<pid>/*_map only while we are dumpable. Nothing of the
            # container runs yet: we are the runtime's own fork in an empty namespace.
            rootless_maps = os.geteuid() != 0
            if rootless_maps:
                check(lib.pyoci_prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
            self.chan.send("userns")
            reply = self.chan.recv()
            if rootless_maps:
                check(lib.pyoci_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
            if not reply or reply["type"] != "mapped":
                os._exit(1)
            ns.become_root()
        new_ns = plan.new_ns & ~ns.CLONE_NEWPID if self.born_in_pidns else plan.new_ns
        if new_ns:
            self.stage = "unshare namespaces"
            ns.unshare(new_ns)
        offsets = plan.linux.get("timeOffsets")
        if offsets and plan.new_ns & ns.CLONE_NEWTIME:
            self.stage = "time offsets"
            with open("/proc/self/timens_offsets", "w") as f:
                for clock, off in offsets.items():
                    f.write(f"{clock} {off.get('secs', 0)} {off.get('nanosecs', 0)}\n")
        if plan.needs_fork and not self.born_in_pidns:
            _fork_after_pid(self.chan)
        else:
            # We are the init: the parent has our pid from its fork (getpid() would say 1
            # in a new pid namespace). The message only orders "pid" before what follows.
            self.chan.send("pid")
        self._init()

    # -- init ----------------------------------------------------------------
    def _init(self) -> None:
        plan = self.plan
        linux = plan.linux
        process = plan.process
        os.setsid()
        # The host's /proc is still ours until pivot_root: hooks need the host pid.
        self.host_pid = int(os.readlink("/proc/self"))
        in_userns = plan.new_userns or any(t == "user" for t, _ in plan.join)
        if not plan.no_new_keyring:
            self.stage = "session keyring"
            # EINVAL/ENOSYS/EPERM: keyrings unavailable (e.g. restricted); runc tolerates it
            if lib.pyoci_join_session_keyring(plan.cid.encode()) < 0 and ffi.errno not in (
                errno_mod.ENOSYS, errno_mod.EPERM, errno_mod.EACCES
            ):
                check(-1, "session keyring")
        self.stage = "sysctl"
        for key, value in (linux.get("sysctl") or {}).items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(str(value))
            except OSError as e:
                raise StageError("sysctl", e.errno or 0,
                                 f"write sysctl {key}={value}: {_describe(e)}") from None
        if "oomScoreAdj" in process:
            self.stage = "oom score"
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process["oomScoreAdj"]))
        # Without a mount namespace the container shares the runtime's mounts (the
        # spec's "inherit"): nothing is mounted, it is only chrooted into root.path.
        own_mounts = plan.has_ns("mount")
        rootfd = -1
        readonly_later: list[str] = []  # read-only tmpfs mounts, remounted ro last
        if own_mounts:
            self.stage = "rootfs"
            rootfs.prepare_propagation(linux.get("rootfsPropagation"))
            rootfd = rootfs.bind_rootfs(plan.rootfs)
            self.stage = "mount"
            faults.point("create:child-mounts")
            dev_bound = False
            for index, entry in enumerate(plan.config.get("mounts") or []):
                trace.debug(f"init {plan.cid}: mount {entry['destination']} "
                          f"({entry.get('type') or 'bind'} from {entry.get('source', '')})")
                later = rootfs.mount_entry(rootfd, entry, plan.bundle, in_userns,
                                           self.cgroup_mount, linux, self.mount_trees.get(index))
                if later is not None:
                    readonly_later.append(later)
                if entry["destination"].rstrip("/") == "/dev":
                    kinds = {entry.get("type"), *(entry.get("options") or [])}
                    dev_bound = bool(kinds & {"bind", "rbind"})
            self.stage = "devices"
            devices.setup_dev(rootfd, linux.get("devices") or [], in_userns, not dev_bound)
        hooks = plan.config.get("hooks") or {}
        if self.hooks_in_parent:
            self.stage = "prestart hooks"
            self.chan.send("hooks")
            reply = self.chan.recv()
            if not reply or reply["type"] != "hooks-done":
                os._exit(1)
        if hooks.get("createContainer"):
            self.stage = "createContainer hooks"
            from pyoci import hooks as hookmod  # imported by __init__, before the fork

            # In the container's root (mounted, not yet pivoted to), as runc: a relative
            # path must land in the container, never in the host's /.
            hookmod.run(hooks["createContainer"], "createContainer", self._state("created"),
                        cwd=plan.rootfs)
        if plan.seccomp is not None and plan.seccomp.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
            self.stage = "seccomp listener"
            self.notify = _connect_listener(plan.seccomp.listener_path)
        if hooks.get("startContainer"):
            import subprocess  # noqa: F401 - after pivot_root the host's modules are gone
        self.stage = "lsm"
        self.lsm_attrs = lsm.open_exec_attrs(process)
        self.stage = "exec trampoline"
        self.trampoline = open_trampoline()
        self.stage = "pivot root"
        if not own_mounts:
            os.chroot(plan.rootfs)
            os.chdir("/")
        elif plan.no_pivot:
            rootfs.chroot_into(rootfd, plan.rootfs)
        else:
            rootfs.pivot(rootfd, plan.rootfs)
        if rootfd >= 0:
            os.close(rootfd)
        if own_mounts:
            rootfs.reopen_dev_null()
        if process.get("terminal"):
            self.stage = "console"
            assert self.console is not None
            from pyoci.linux import terminal  # imported by __init__, before the fork

            terminal.setup(self.console, process.get("consoleSize"), console_mount=own_mounts,
                           uid=(process.get("user") or {}).get("uid", 0))
            os.close(self.console)
        self.stage = "cwd"
        rootfs.make_cwd(process.get("cwd") or "/")
        if own_mounts:
            self.stage = "readonly mounts"
            for dest in readonly_later:
                rootfs.remount_readonly(dest)
            self.stage = "masked paths"
            for path in linux.get("maskedPaths") or []:
                rootfs.mask_path(path)
            self.stage = "readonly paths"
            for path in linux.get("readonlyPaths") or []:
                rootfs.readonly_path(path)
            if plan.config.get("root", {}).get("readonly"):
                self.stage = "readonly root"
                rootfs.readonly_root()
            rootfs.finish_propagation(linux.get("rootfsPropagation"))
        if plan.config.get("hostname") is not None and plan.has_ns("uts"):
            self.stage = "hostname"
            name = plan.config["hostname"].encode()
            check(lib.pyoci_sethostname(name, len(name)), "hostname")
        if plan.config.get("domainname") is not None and plan.has_ns("uts"):
            self.stage = "domainname"
            name = plan.config["domainname"].encode()
            check(lib.pyoci_setdomainname(name, len(name)), "domainname")
        self.stage = "process attributes"
        apply_process_attributes(process, linux)
        self.stage = "cwd"
        enter_cwd(process.get("cwd") or "/")
        self.stage = "exec"
        env = _environment(process) if process else []
        path = lookup(process["args"][0], env) if process else ""  # none: start refuses
        # Opened before "ready": `start` must always find a writer on it.
        self.status = os.open(STATUS_FIFO, os.O_RDWR | os.O_CLOEXEC, dir_fd=self.fifo_dir)
        self.chan.send("ready")
        self.chan.close()
        self._after_ready(path, env)

    def _after_ready(self, path: str, env: list[str]) -> None:
        """`create` has returned: from here on errors can only go to stderr."""
        plan = self.plan
        # `start` waits on this fifo for our verdict: "ok", or the error that
        # stopped us (a failing startContainer hook must fail `start`).
        status = self.status
        try:
            _wait_for_start(self.fifo_dir)
            os.close(self.fifo_dir)
            if not path:
                raise ValueError("config.json: process: required to start the container")
            hooks = (plan.config.get("hooks") or {}).get("startContainer")
            if hooks:
                from pyoci import hooks as hookmod  # imported by __init__, before the fork

                trace.debug(f"init {plan.cid}: startContainer hooks")
                hookmod.run(hooks, "startContainer", self._state("running"),
                            cwd=None)  # process.cwd, entered before "ready" (as runc)
            lsm.write_exec_attrs(self.lsm_attrs)
            trace.debug(f"init {plan.cid}: started; exec {path} {plan.process['args'][1:]}")
            os.write(status, b"ok")
            exec_process(plan, path, env, self.notify, self._listener_message(),
                         self.trampoline)
        except Exception as e:
            text = f"unable to start container process: {e}"
            os.write(2, f"pyoci: {text}\n".encode())
            try:
                os.write(status, text.encode()[:4000])
            except OSError:
                pass
        os._exit(255)

    def _listener_message(self) -> bytes:
        """The container process state sent with the seccomp listener fd."""
        if self.notify < 0:
            return b""
        from pyoci import SPEC_VERSION, jsonio  # already imported by the parent

        assert self.plan.seccomp is not None
        return jsonio.dumps({
            "ociVersion": SPEC_VERSION, "fds": ["seccompFd"], "pid": self.host_pid,
            "metadata": self.plan.seccomp.listener_metadata, "state": self._state("running"),
        }).encode()

    def _state(self, status: str) -> dict[str, Any]:
        from pyoci import SPEC_VERSION

        return {"ociVersion": SPEC_VERSION, "id": self.plan.cid, "status": status,
                "pid": self.host_pid, "bundle": self.plan.bundle,
                "annotations": self.plan.config.get("annotations") or {}}


# (section, field, apply): the per-process settings made just before the exec step, in order.
_PROCESS_ATTRIBUTES = (
    ("process", "rlimits", rlimits.apply),
    ("linux", "personality", sched.set_personality),
    ("process", "ioPriority", sched.set_io_priority),
    ("process", "scheduler", sched.set_scheduler),
    ("linux", "memoryPolicy", sched.set_memory_policy),
)


def apply_process_attributes(process: dict[str, Any], linux: dict[str, Any]) -> None:
    """rlimits, personality, I/O priority, scheduler and memory policy (those present)."""
    sections = {"process": process, "linux": linux}
    for section, field, apply in _PROCESS_ATTRIBUTES:
        value = sections[section].get(field)
        if value:
            apply(value)


def enter_cwd(cwd: str) -> None:
    """chdir inside the container's root, never through a host fd.

    ``cwd: /proc/self/fd/N`` would otherwise land on whatever host directory
    fd N names and survive execve (CVE-2024-21626): resolve with
    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, then check the result is inside.
    """
    root = os.open("/", rootfs.O_PATH | os.O_CLOEXEC)
    try:
        fd = rootfs.open_in_root(root, cwd, rootfs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StageError("cwd", e.errno or 0, f"chdir to cwd ({cwd!r}) set in config.json "
                         f"failed: {_describe(e, False)}") from None
    finally:
        os.close(root)
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    try:
        here = os.getcwd()
    except OSError:
        here = ""
    if not here.startswith("/"):
        raise StageError("cwd", errno_mod.EPERM, f"cwd ({cwd!r}) is outside the container")


def _wait_for_start(fifo_dir: int) -> None:
    """Block until `start` writes its byte into the exec fifo, then remove the fifo.

    The init reads and `start` writes, so a `start` killed before its write
    only gives us EOF: we wait for the next one instead of starting half-way.
    Removing the fifo ourselves, before execve, keeps the derived status exact
    (in a user namespace we may lack the right; `start` removes it then).
    """
    while True:
        fd = os.open("exec.fifo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=fifo_dir)
        try:
            got = os.read(fd, 1)
        finally:
            os.close(fd)
        if got:
            break
    try:
        os.unlink("exec.fifo", dir_fd=fifo_dir)
    except OSError:
        pass


def _fork_after_pid(chan: Channel) -> None:
    """Fork the init; the parent reports its pid and exits.

    The child waits until the pid is on the channel, so the parent always hears
    "pid" before anything the child says ("hooks", "ready", "error").
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid:
        os.close(r)
        chan.send("pid", pid=pid)
        os.write(w, b"1")
        os._exit(0)
    os.close(w)
    if os.read(r, 1) != b"1":  # the parent died before reporting us
        os._exit(1)
    os.close(r)


def _reset_signals() -> None:
    """Python installs handlers (SIGINT) and ignores SIGPIPE/SIGXFSZ; a container must not
    inherit that, and `kill` must be able to stop a created container."""
    import _signal  # the C module: `signal` builds enums at import

    for sig in range(1, 65):
        if sig in (9, 19, 32, 33):  # SIGKILL, SIGSTOP and glibc's two private ones
            continue
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def _environment(process: dict[str, Any]) -> list[str]:
    env = list(process.get("env") or [])
    names = {e.partition("=")[0] for e in env}
    if "HOME" not in names:
        env.append(f"HOME={_home(process.get('user') or {})}")
    listen = os.environ.get("LISTEN_FDS")
    if listen and "LISTEN_FDS" not in names:
        env += [f"LISTEN_FDS={listen}", f"LISTEN_PID={os.getpid()}"]
    return env


def _home(user: dict[str, Any]) -> str:
    uid = user.get("uid", 0)
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def lookup(arg0: str, env: list[str]) -> str:
    """Resolve args[0] the way Go's exec.LookPath does, with runc's error wording."""
    if "/" in arg0:
        return _check_exec(arg0, arg0)
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for d in path.split(":"):
        candidate = os.path.join(d or ".", arg0)
        try:
            return _check_exec(candidate, arg0)
        except StageError:
            continue
    raise StageError("exec", errno_mod.ENOENT,
                     f'exec: "{arg0}": executable file not found in $PATH')


def _check_exec(path: str, arg0: str) -> str:
    try:
        st = os.stat(path)
    except OSError as e:
        raise StageError("exec", e.errno or 0,
                         f'exec: "{arg0}": stat {path}: {_describe(e, False)}') from None
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        raise StageError("exec", errno_mod.EACCES, f'exec: "{arg0}": permission denied')
    return path


def _connect_listener(path: str | None) -> int:
    import _socket

    if not path:
        raise StageError("seccomp", errno_mod.EINVAL, "linux.seccomp.listenerPath is required "
                         "for SCMP_ACT_NOTIFY")
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise StageError("seccomp", e.errno or 0,
                         f"connect to seccomp listener {path}: {_describe(e, False)}") from None
    return s.detach()


def open_trampoline() -> int:
    """A sealed memfd holding the static exec trampoline (native/trampoline/).

    The final execve goes through it so that /proc/self/exe of the container
    process never names the host's Python (CVE-2019-5736 class). Opened while
    the host's files are still visible; sealed so nothing can rewrite it.
    """
    import pyoci._native

    src = os.path.join(os.path.dirname(pyoci._native.__file__), "trampoline")
    with open(src, "rb") as f:
        code = f.read()
    fd = os.memfd_create("pyoci-trampoline", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(code)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exec_process(plan: Plan, path: str, env: list[str], notify: int = -1,
                 notify_msg: bytes = b"", trampoline: int = -1) -> None:
    """Fill the C exec spec and call it; returns only by raising."""
    process = plan.process
    final = (process.get("execCPUAffinity") or {}).get("final")
    if final:
        sched.set_affinity(0, final, "final")
    user = process.get("user") or {}
    keep: list[Any] = []

    def cstr(s: str) -> Any:
        b = ffi.new("char[]", s.encode())
        keep.append(b)
        return b

    def cvec(items: list[str]) -> Any:
        arr = ffi.new("char *[]", [cstr(i) for i in items] + [ffi.NULL])
        keep.append(arr)
        return arr

    x = ffi.new("struct pyoci_exec *")
    x.path = cstr(path)
    x.argv = cvec(process["args"])
    x.envp = cvec(env)
    x.change_ids = 1
    x.uid = user.get("uid", 0)
    x.gid = user.get("gid", 0)
    groups = user.get("additionalGids")
    setgroups_ok = True
    if plan.new_userns:
        try:
            with open("/proc/self/setgroups") as f:
                setgroups_ok = f.read().strip() == "allow"
        except OSError:
            setgroups_ok = True
    if groups is not None or setgroups_ok:
        g = list(groups or [])
        garr = ffi.new("unsigned int[]", g or [0])
        keep.append(garr)
        x.ngroups = len(g) if setgroups_ok else -1
        x.groups = garr
    else:
        x.ngroups = -1
    x.umask = user.get("umask", 0o022)
    if plan.caps is not None:
        x.caps = 1
        x.cap_bounding = plan.caps["bounding"]
        x.cap_effective = plan.caps["effective"]
        x.cap_permitted = plan.caps["permitted"]
        x.cap_inheritable = plan.caps["inheritable"]
        x.cap_ambient = plan.caps["ambient"]
        x.cap_last = lib.pyoci_cap_last()
    x.no_new_privs = 1 if process.get("noNewPrivileges") else 0
    x.seccomp_notify_sock = notify
    msg = ffi.from_buffer(notify_msg)
    keep.append(msg)
    x.seccomp_notify_msg = ffi.cast("const char *", msg)
    x.seccomp_notify_msg_len = len(notify_msg)
    if plan.seccomp is not None:
        buf = ffi.from_buffer(plan.seccomp.bpf)
        keep.append(buf)
        x.seccomp_filter = buf
        x.seccomp_len = plan.seccomp.instructions
        x.seccomp_flags = plan.seccomp.flags
    listen = int(os.environ.get("LISTEN_FDS") or 0)
    x.keep_fds = plan.preserve_fds + listen
    x.trampoline_fd = trampoline
    x.trampoline_argv = (cvec([TRAMPOLINE_MARKER, path, *process["args"]]) if trampoline >= 0
                         else ffi.NULL)
    stage = ffi.new("const char **")
    lib.pyoci_exec(x, stage)
    err = ffi.errno
    raise OSError(err, f"{ffi.string(stage[0]).decode()}: {os.strerror(err).lower()}")


def _describe(e: OSError, with_name: bool = True) -> str:
    """The error as one line; only the libc text is lower-cased, never a field path
    or value that a message from pyoci itself carries."""
    text = e.strerror or str(e)
    if e.errno and text == os.strerror(e.errno):
        text = text.lower()
    if with_name and e.filename and str(e.filename) not in text:
        return f"{e.filename}: {text}"
    return text
