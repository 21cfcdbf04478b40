"""pyoci as a library: :class:`Runtime` and the :class:`Container` handles it returns.

Every ``pyoci`` verb is a call here, and the CLI only parses flags and prints.
The lean verbs (``state``, ``start``, ``kill``, ``delete``) come through this
module too, so it imports nothing heavy at the top (``posix``, not ``os``);
create, exec, the cgroup managers and the validator load on first use.

Used in-process, a call leaves the caller as it found it: the dumpable and
child-subreaper flags, the pid namespace its children are born in and the
SIGPIPE disposition are put back, and the cycle collector is not touched. The
one lasting change is wanted: a container's init created here is this
process's child, so :meth:`Container.wait` gets its exit status, and
:meth:`Container.delete` reaps it.
"""

import posix

from pyoci.errors import ContainerNotFound, IncorrectStatus, PyociError
from pyoci.state.store import Store, check_id

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from pyoci.execute import Process

# Inits this process created (and so must reap): pid -> start time.
_children: "dict[int, int | None]" = {}


def default_root() -> str:
    """The state root without ``--root``, by runc's rule for ``XDG_RUNTIME_DIR``.

    Real root keeps ``/run/pyoci`` whatever ``XDG_RUNTIME_DIR`` says; any other
    user gets ``$XDG_RUNTIME_DIR/pyoci``. So does root of a user namespace that
    isn't the host's, unless ``USER`` is ``root``: rootless podman runs the
    runtime that way, as uid 0 of its namespace with the user's
    ``XDG_RUNTIME_DIR`` and no ``--root``, where ``/run/pyoci`` is not writable.
    """
    runtime_dir = posix.environ.get(b"XDG_RUNTIME_DIR")
    if not runtime_dir:
        return "/run/pyoci"
    if posix.geteuid() != 0:
        return runtime_dir.decode(errors="surrogateescape") + "/pyoci"
    if posix.environ.get(b"USER") != b"root":
        from pyoci.rootless import in_initial_userns

        if not in_initial_userns():
            return runtime_dir.decode(errors="surrogateescape") + "/pyoci"
    return "/run/pyoci"


class Runtime:
    """A state root (runc's ``--root``) and the options every command shares.

    ``rootless``: None, True, False or "auto" (runc's ``--rootless``).
    ``systemd_cgroup``: containers get a transient systemd scope (runc's
    ``--systemd-cgroup``; ``cgroupsPath`` is ``slice:prefix:name``).
    ``log``, when given, is called with each warning line (create's, exec's).
    """

    def __init__(self, root: "str | None" = None, *, rootless: "bool | str | None" = None,
                 systemd_cgroup: bool = False, log: "Callable[[str], None] | None" = None
                 ) -> None:
        root = root or default_root()
        if not root.startswith("/"):
            root = f"{posix.getcwd()}/{root}"
        self.root = root
        self.rootless = rootless
        self.systemd_cgroup = systemd_cgroup
        self.log = log
        self.store = Store(root)

    # -- containers ---------------------------------------------------------------
    def create(self, id: str, bundle: str, *, pid_file: "str | None" = None,
               console_socket: "str | None" = None, preserve_fds: int = 0,
               no_pivot: bool = False, no_new_keyring: bool = False,
               foreground: bool = False) -> "Container":
        """Create the container from ``bundle`` (validated; nothing is left behind on error).

        ``foreground``: the caller stays with the container (``pyoci run``), so
        a terminal needs no console socket; the pty master is ``Container.console``.
        """
        from pyoci.create import Options, create
        from pyoci.execute import PR_SET_CHILD_SUBREAPER, caller_kept
        from pyoci.rootless import detect

        flag = self.rootless
        if isinstance(flag, bool):
            flag = "true" if flag else "false"
        opts = Options(bundle=str(bundle), pid_file=pid_file, console_socket=console_socket,
                       no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                       preserve_fds=preserve_fds, foreground=foreground, rootless=detect(flag),
                       systemd_cgroup=self.systemd_cgroup)
        with caller_kept() as kept:
            # A subreaper while the init is made: when it has an intermediate parent
            # that exits (pid namespace not entered by clone3), the init becomes our
            # child, so wait() has its status.
            kept.lib.pyoci_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            created = create(self.store, check_id(id), opts)
        from pyoci.state.status import start_time

        _children[created.pid] = start_time(created.pid)
        console = None
        if created.console is not None:
            from pyoci.execute import receive_master

            console = receive_master(created.console)
        if self.log is not None:
            for w in created.warnings:
                self.log(w)
        return Container(self, id, warnings=created.warnings, console=console)

    def run(self, id: str, bundle: str, **create_options: "Any") -> "Container":
        """create + start; ``with runtime.run(...) as c:`` deletes the container on exit."""
        c = self.create(id, bundle, foreground=True, **create_options)
        try:
            c.start()
        except BaseException:
            try:
                c.delete(force=True)
            except Exception:
                pass
            raise
        return c

    def get(self, id: str) -> "Container":
        """The container ``id``; :class:`pyoci.errors.ContainerNotFound` if there is none."""
        return Container(self, id, self.store.load(check_id(id)))

    def list(self) -> "list[Container]":
        out = []
        for cid in self.store.ids():
            try:
                out.append(Container(self, cid, self.store.load(cid)))
            except PyociError:
                continue
        return out

    def delete(self, id: str, force: bool = False) -> "list[str]":
        """Delete ``id``; with ``force`` also what a crashed create left, and no error if gone.

        Returns the poststop hooks' warnings.
        """
        store = self.store
        try:
            lock = store.lock(id)
        except ContainerNotFound:
            if force:
                return []
            raise
        from pyoci import container as _engine

        try:
            try:
                inner = _engine.Container.load(store, id)
            except ContainerNotFound:
                if not force:
                    raise
                try:
                    _engine.remove_leftover(store, id)  # a create that died before its state
                except ContainerNotFound:
                    pass  # another delete got there first: the outcome is the same
                return []
            warnings = inner.delete(force)
        finally:
            store.unlock(lock)
        _reap(inner.state.get("pid") or 0)
        return warnings


class Container:
    """One container of a :class:`Runtime`. Each call reads its state afresh from the store."""

    def __init__(self, runtime: Runtime, id: str, record: "dict[str, Any] | None" = None, *,
                 warnings: "list[str] | None" = None, console: "int | None" = None) -> None:
        self.runtime = runtime
        self.id = id
        self.warnings = warnings or []  # create's
        self.console = console  # the pty master of a foreground create with a terminal
        self._record = record  # loaded just now by get()/list(): the first call uses it

    def __repr__(self) -> str:
        return f"<pyoci.Container {self.id!r}>"

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete(force=True)

    def _fresh(self) -> "dict[str, Any]":
        record, self._record = self._record, None
        return record if record is not None else self.runtime.store.load(self.id)

    def _load(self) -> "Any":
        """The engine's container (pyoci.container), on the container's current record."""
        from pyoci import container as _engine

        return _engine.Container(self.runtime.store, self.id, self._fresh())

    def _locked(self, action: "Callable[[Any], Any]") -> "Any":
        store = self.runtime.store
        lock = store.lock(self.id)
        try:
            self._record = None
            return action(self._load())
        finally:
            store.unlock(lock)

    # -- queries -------------------------------------------------------------------
    def state(self) -> "dict[str, Any]":
        """The runtime-spec state: ociVersion, id, status, pid, bundle, annotations..."""
        from pyoci.state.status import document

        return document(self.id, self._fresh(), self.runtime.store.dir(self.id))

    @property
    def pid(self) -> int:
        """The init's host pid (0 once stopped)."""
        return self.state()["pid"]

    def status(self) -> str:
        return self._load().status()

    def ps(self) -> "list[int]":
        """Host pids of the container's processes: its cgroup's, or without one (rootless),
        those in its pid namespace."""
        return sorted(self._load().pids())

    def stats(self) -> "dict[str, Any]":
        """Resource usage: the ``data`` of runc's ``events --stats``."""
        return self._load().stats()

    def events(self, interval: float = 5.0) -> "Iterator[dict[str, Any]]":
        """runc's event stream: ``stats`` every ``interval`` seconds, ``oom`` as it happens."""
        return self._load().events(interval)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Run the config's process (the init leaves its wait on the exec fifo)."""
        import _signal

        old = _signal.getsignal(13)  # start ignores SIGPIPE; the caller's is put back
        try:
            self._locked(lambda c: c.start())
        finally:
            if _signal.getsignal(13) != old:
                _signal.signal(13, old)

    def kill(self, sig: "int | str" = 15, all: bool = False) -> None:
        """Send ``sig`` (a number or a name: "KILL", "SIGTERM") to the init, or with
        ``all`` to every process in the container's cgroup."""
        inner = self._load()
        if isinstance(sig, str):
            from pyoci.container import parse_signal

            sig = parse_signal(sig)
        inner.kill(int(sig), all)

    def wait(self) -> "int | None":
        """Wait until the container's init has exited; its status, shell-style (128+N
        for signal N), when this process created it, else None."""
        inner = self._load()
        pid = inner.state.get("pid") or 0
        if pid in _children:
            while True:
                try:
                    _, status = posix.waitpid(pid, 0)
                except InterruptedError:
                    continue
                except ChildProcessError:
                    break
                _children.pop(pid, None)
                return (posix.WEXITSTATUS(status) if posix.WIFEXITED(status)
                        else 128 + posix.WTERMSIG(status))
        import time

        delay = 0.001
        while inner.status() != "stopped":
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return None

    def delete(self, force: bool = False) -> "list[str]":
        """Remove the container (with ``force`` even if it runs); the poststop warnings."""
        if self.console is not None:
            posix.close(self.console)
            self.console = None
        return self.runtime.delete(self.id, force)

    def pause(self) -> None:
        self._locked(lambda c: _freeze(c, True))

    def resume(self) -> None:
        self._locked(lambda c: _freeze(c, False))

    def update(self, resources: "dict[str, Any]", *, validate: bool = True) -> None:
        """Change the cgroup limits: a ``linux.resources`` object (device rules are
        left alone, as runc's update does); the stored config follows."""
        resources = dict(resources)
        if validate:
            from pyoci.spec.schema import check

            # As the linux.resources of a config, so errors name the field.
            check({"ociVersion": "1.3.0", "root": {"path": "rootfs"},
                   "linux": {"resources": resources}})
        resources.pop("devices", None)
        self._locked(lambda c: _update(c, resources))

    def exec(self, process: "list[str] | dict[str, Any]", *, tty: bool = False,
             detach: bool = False, env: "list[str] | None" = None, cwd: "str | None" = None,
             user: "str | int | None" = None, **options: "Any") -> "Process":
        """Start a process in the container: ``args``, or a whole process object.

        Returns a :class:`pyoci.execute.Process` with ``.pid``, ``.wait()`` and
        the ``stdin``/``stdout``/``stderr`` pipes asked for (``subprocess.PIPE``),
        and with ``tty`` the pty master as ``.console``. More options:
        ``additional_gids``, ``caps``, ``apparmor``, ``process_label``,
        ``no_new_privs``, ``pid_file``, ``console_socket``, ``preserve_fds``,
        ``cgroups``, ``ignore_paused`` (``pyoci exec``'s flags).
        """
        from pyoci.execute import execute

        options.setdefault("warn", self.runtime.log)
        return execute(self._load(), process, tty=tty, detach=detach, env=env, cwd=cwd,
                       user=user, **options)


def _reap(pid: int) -> None:
    """Reap a stopped init this process created, so it leaves no zombie."""
    if pid in _children:
        try:
            posix.waitpid(pid, posix.WNOHANG)
        except ChildProcessError:
            pass
        _children.pop(pid, None)


def _freeze(c: "Any", freeze: bool) -> None:
    status = c.status()
    cg = c.cgroup()
    if cg is not None and getattr(cg, "rootless", False):
        cg.freeze()  # raises, saying why a rootless container without a cgroup can't
    if cg is None or not cg.has_freezer():
        raise PyociError("cannot pause or resume a container without a freezer cgroup")
    if freeze:
        if status not in ("running", "created"):
            raise IncorrectStatus("container not running")
        cg.freeze()
    else:
        if status != "paused":
            raise IncorrectStatus("container not paused")
        cg.thaw()


def _update(c: "Any", resources: "dict[str, Any]") -> None:
    from pyoci import jsonio
    from pyoci.state.store import CONFIG_FILE, write_atomic

    if c.status() == "stopped":
        raise IncorrectStatus("container not running")
    cg = c.cgroup()
    if cg is None:
        raise IncorrectStatus("container has no cgroup to update")
    if resources:
        cg.set(resources)
    store = c.store
    config = store.load_config(c.id)
    merged = config.setdefault("linux", {}).setdefault("resources", {})
    for section, values in resources.items():
        if isinstance(values, dict):
            merged.setdefault(section, {}).update(values)
        else:
            merged[section] = values
    write_atomic(f"{store.dir(c.id)}/{CONFIG_FILE}", jsonio.dumps(config))
