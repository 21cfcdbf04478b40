"""A private podman for the tests: its own config, storage and temp dirs.

Nothing here reads or writes the user's podman setup. Every command gets
``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` pointing at files in a
temp dir, and those files put podman's graphroot, runroot, tmp dir (exit
files, events, file locks), volume path and network config under it too.

Two ``containers.conf`` files share that storage and differ in one line:
``runtime_supports_json`` lists the runtime in one (podman then passes
``--log-format=json --log FILE``, reads FILE as one JSON object and takes its
``msg``) and not in the other (podman uses what conmon forwards from stderr).

What podman 4.3 (rootful) passes to the runtime, found by wrapping it:
``create --bundle B --pid-file P ID``, ``start ID``, ``kill ID 15``,
``kill ID 9``, ``delete --force ID``, ``pause/resume ID``, and
``exec --pid-file P --process F --detach ID``; the global flags are only the
two log flags, never ``--root``, and ``XDG_RUNTIME_DIR`` is set but empty. So
the runtime keeps its state in its own default root, ``/run/<name>`` as root:
``/run/pyoci``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import helpers

IMAGE = "localhost/pyoci-test:latest"
# podman's default init_path (containers.conf); Debian's podman ships it there.
CATATONIT = Path("/usr/libexec/podman/catatonit")
# The runtimes podman lists by default, to which the tests add (or don't) pyoci.
DEFAULT_SUPPORTS_JSON = ("crun", "runc", "kata", "runsc", "krun")

_CGROUP_ROOT = Path("/sys/fs/cgroup")
# What rootful podman 4.3 creates outside its configured dirs whatever the
# config says: netavark's run dir and c/image's blob info cache (by `import`).
# Removed after the session only if they didn't exist before it, deepest first,
# and directories only when empty.
_HOST_LEFTOVERS = (
    Path("/run/containers/networks/ipam.db"), Path("/run/containers/networks/aardvark-dns"),
    Path("/run/containers/networks"), Path("/run/containers"),
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path("/var/lib/containers/cache"), Path("/var/lib/containers"),
)
_CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
# What netavark (the default bridge network, ``-p``) changes on the host and
# leaves behind after its last container: IPv4 forwarding switched on and its
# iptables chains (plus the jumps to them from the built-in chains). Put back
# after the session if the host had none of it before.
_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_NETAVARK_CHAIN = "NETAVARK"
_NETAVARK_BRIDGE = "podman0"


def runtime_path() -> Path:
    """The runtime podman is told to use.

    ``PYOCI_TEST_RUNTIME`` wins (``/usr/sbin/runc`` checks an expectation
    against runc). Otherwise the real ``pyoci`` console script of this Python,
    not a pyenv shim: podman runs ``kill``/``delete`` with an environment that
    has no PATH, where a shim can't find its interpreter.
    """
    override = os.environ.get(helpers.RUNTIME_ENV)
    if override:
        return Path(override)
    return Path(sysconfig.get_path("scripts")) / "pyoci"


def state_root(runtime: Path) -> Path:
    """Where the runtime keeps container state when podman runs it as root.

    podman passes no ``--root`` (see the module docstring), so this is the
    runtime's own default for uid 0: ``/run/pyoci``, ``/run/runc``, ``/run/crun``.
    """
    return Path("/run") / runtime.name


def ulimits() -> list[str]:
    """``default_ulimits`` the runtime can actually apply.

    Without them podman asks for nofile and nproc of 1048576, above this
    sandbox's hard limits (nofile 20000, nproc 32768 under conmon); a runtime
    without CAP_SYS_RESOURCE can't raise a hard limit, so runc fails too.
    """
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]

    def cap(limit: int, want: int) -> int:
        return want if limit == resource.RLIM_INFINITY else min(limit, want)

    return [f"nofile={cap(nofile, 10000)}:{cap(nofile, 10000)}",
            f"nproc={cap(nproc, 4096)}:{cap(nproc, 4096)}"]


def _toml_str(value: str | os.PathLike[str]) -> str:
    return json.dumps(os.fspath(value))


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"




def _iptables_rules(table: str) -> list[str]:
    """``iptables -t TABLE -S``; empty when iptables is missing or fails."""
    if shutil.which("iptables") is None:
        return []
    res = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True,
                         text=True, check=False)
    return res.stdout.splitlines() if res.returncode == 0 else []


def _has_netavark_rules() -> bool:
    return any(_NETAVARK_CHAIN in line for t in ("nat", "filter") for line in _iptables_rules(t))


def _remove_netavark_rules() -> None:
    """Delete netavark's chains and every jump to them, in nat and filter."""
    for table in ("nat", "filter"):
        rules = _iptables_rules(table)
        chains = [r.split()[1] for r in rules
                  if r.startswith("-N ") and r.split()[1].startswith(_NETAVARK_CHAIN)]
        for rule in rules:
            argv = shlex.split(rule)
            if argv[0] == "-A" and not argv[1].startswith(_NETAVARK_CHAIN) \
                    and _NETAVARK_CHAIN in rule:
                subprocess.run(["iptables", "-w", "-t", table, "-D", *argv[1:]], check=False,
                               capture_output=True)
        for op in ("-F", "-X"):
            for chain in chains:
                subprocess.run(["iptables", "-w", "-t", table, op, chain], check=False,
                               capture_output=True)


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def cgroup_v1_dir(pid: int, controller: str) -> Path:
    """The cgroup v1 directory of ``pid`` for ``controller`` (``memory``, ``cpu``, ``pids``).

    Read from ``/proc/PID/cgroup`` and the host's own cgroup mounts, so it
    works whether ``cpu`` is mounted alone or as ``cpu,cpuacct``.
    """
    rel = None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            rel = path
    if rel is None:
        raise LookupError(f"pid {pid} has no {controller} cgroup")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            if fields[dash + 1] == "cgroup" and controller in fields[dash + 3].split(","):
                return Path(fields[4]) / rel.lstrip("/")
    raise LookupError(f"no cgroup v1 mount for {controller}")


def _libpod_parents() -> list[Path]:
    """podman's cgroupfs parent dirs (``libpod_parent``), one per hierarchy."""
    return [*_CGROUP_ROOT.glob("libpod_parent"), *_CGROUP_ROOT.glob("*/libpod_parent")]


def container_cgroups(cid: str) -> list[Path]:
    """The cgroup dirs of container ``cid`` (cgroupfs manager) that still exist."""
    name = f"libpod-{cid}"
    return [p / name for p in _libpod_parents() if (p / name).exists()]


class PodmanEnv:
    """One private podman setup, shared by a test session.

    ``podman(*args)`` runs podman against it; ``json_log`` picks the
    containers.conf that lists the runtime in ``runtime_supports_json``.
    """

    def __init__(self, base: Path, runtime: Path, cgroup_manager: str = "cgroupfs") -> None:
        self.base = base
        self.runtime = runtime
        self.cgroup_manager = cgroup_manager
        self.state_root = state_root(runtime)
        self.graphroot = base / "root"
        self.runroot = base / "runroot"
        self.tmp_dir = base / "tmp"
        self.driver = "vfs" if helpers.fs_type(base) in ("overlay", "aufs") else "overlay"
        self.storage_conf = base / "storage.conf"
        self.conf_json = base / "containers-json.conf"
        self.conf_plain = base / "containers-plain.conf"
        self._had_libpod_parent = bool(_libpod_parents())
        self._preexisting = {p for p in _HOST_LEFTOVERS if p.exists()}
        self._ip_forward = _IP_FORWARD.read_text().strip()
        self._had_netavark_rules = _has_netavark_rules()
        self._had_bridge = _link_exists(_NETAVARK_BRIDGE)

    # ---- setup ----------------------------------------------------------

    def write_config(self) -> None:
        self.storage_conf.write_text(
            "[storage]\n"
            f"driver = {_toml_str(self.driver)}\n"
            f"graphroot = {_toml_str(self.graphroot)}\n"
            f"runroot = {_toml_str(self.runroot)}\n"
        )
        name = self.runtime.name
        for path, supports in ((self.conf_json, [*DEFAULT_SUPPORTS_JSON, name]),
                               (self.conf_plain, [r for r in DEFAULT_SUPPORTS_JSON if r != name])):
            path.write_text(
                "[containers]\n"
                f"default_ulimits = {_toml_list(ulimits())}\n"
                "\n[engine]\n"
                f"cgroup_manager = {_toml_str(self.cgroup_manager)}\n"
                'events_logger = "file"\n'
                # File locks live in tmp_dir; the default "shm" would share
                # /dev/shm/libpod_lock with the host's podman.
                'lock_type = "file"\n'
                f"tmp_dir = {_toml_str(self.tmp_dir)}\n"
                f"volume_path = {_toml_str(self.base / 'volumes')}\n"
                f"runtime_supports_json = {_toml_list(supports)}\n"
                "\n[engine.runtimes]\n"
                f"{name} = {_toml_list([os.fspath(self.runtime)])}\n"
                "\n[network]\n"
                'network_backend = "netavark"\n'
                f"network_config_dir = {_toml_str(self.base / 'networks')}\n"
            )

    def env(self, json_log: bool = True) -> dict[str, str]:
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = os.fspath(self.conf_json if json_log else self.conf_plain)
        env["CONTAINERS_STORAGE_CONF"] = os.fspath(self.storage_conf)
        for var in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINERS_REGISTRIES_CONF"):
            env.pop(var, None)
        return env

    def import_image(self, rootfs: Path) -> None:
        tarball = self.base / "rootfs.tar"
        subprocess.run(["tar", "-C", os.fspath(rootfs), "--numeric-owner", "-cf",
                        os.fspath(tarball), "."], check=True)
        self.podman("import", tarball, IMAGE, check=True, timeout=120)
        tarball.unlink()

    # ---- running podman -------------------------------------------------

    def podman(self, *args: str | os.PathLike[str], json_log: bool = True,
               runtime: bool = False, input: str | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS`` and return its status and output.

        ``runtime=True`` inserts ``--runtime <runtime path>`` after the verb
        (``run``, ``create``...). Output goes through files, as in
        ``helpers.run_pyoci``: conmon outlives ``podman run -d`` and must not
        be able to keep a pipe of ours open.
        """
        argv = [os.fspath(a) for a in args]
        if runtime:
            argv[1:1] = ["--runtime", os.fspath(self.runtime)]
        cmd = ["podman", *argv]
        return run_through_files(cmd, input=input, timeout=timeout, check=check,
                                 env=self.env(json_log), cwd=self.base)

    def run(self, *args: str | os.PathLike[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """``podman run --rm --network none --runtime RT ARGS`` (ARGS end with image + cmd)."""
        return self.podman("run", "--rm", "--network", "none", *args, runtime=True, **kw)

    def inspect(self, cid: str, fmt: str) -> str:
        return self.podman("inspect", "--format", fmt, cid, check=True).stdout.strip()

    def ctr_run_dir(self, cid: str) -> Path:
        """The container's run dir: podman puts the ``oci-log`` of ``create`` there."""
        return self.runroot / f"{self.driver}-containers" / cid / "userdata"

    def state_dirs(self) -> set[str]:
        """Ids of this setup's containers that have a dir in the runtime's state root.

        The state root (``/run/pyoci``) is shared with every other podman,
        and every other test session, on the host that runs the same runtime,
        so only ids this setup created count: a session that force-deleted
        "leaked" state dirs it didn't own would kill another session's
        containers (they die with 137 mid-test). The runtime's dotfiles are
        the store's own and never count.
        """
        if not self.state_root.is_dir():
            return set()
        present = {p.name for p in self.state_root.iterdir() if _CONTAINER_ID.match(p.name)}
        return present & self.own_ids() if present else present

    def own_ids(self) -> set[str]:
        """Every container id this setup's podman has created.

        From its events log (``events_logger = "file"`` in ``tmp_dir``): podman
        logs a ``create`` event, with the full id, before it runs the runtime.
        """
        log = self.tmp_dir / "events" / "events.log"
        ids = set()
        with contextlib.suppress(FileNotFoundError), open(log) as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("Type") == "container" and _CONTAINER_ID.match(
                            str(event.get("ID", ""))):
                        ids.add(event["ID"])
        return ids

    # ---- teardown -------------------------------------------------------

    def cleanup_containers(self) -> list[str]:
        """Remove every container; return the problems met on the way."""
        problems = []
        res = self.podman("rm", "--all", "--force", "--time", "0", timeout=120)
        if res.returncode != 0:
            problems.append(f"podman rm -af: {res.stderr.strip()}")
        return problems

    def teardown(self, state_before: set[str]) -> list[str]:
        """Remove containers, images, mounts, conmons and the temp dir.

        Returns what had to be cleaned up by force, for the session to report.
        """
        problems = self.cleanup_containers()
        res = self.podman("rmi", "--all", "--force", timeout=120)
        if res.returncode != 0:
            problems.append(f"podman rmi -af: {res.stderr.strip()}")
        problems += self._kill_conmons()
        leaked = self.state_dirs() - state_before
        for cid in sorted(leaked):
            problems.append(f"{self.state_root / cid} left behind")
            helpers.run_pyoci("delete", "--force", cid, root=self.state_root, timeout=30)
        for target in sorted(helpers.mounts_under(self.base), key=len, reverse=True):
            problems.append(f"mount {target} left behind")
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        if not self._had_libpod_parent:
            # Empty cgroups podman made for conmon and as the containers' parent.
            for parent in _libpod_parents():
                for sub in sorted(parent.glob("*/"), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        sub.rmdir()
                with contextlib.suppress(OSError):
                    parent.rmdir()
        for path in _HOST_LEFTOVERS:
            if path not in self._preexisting:
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()
        self._restore_network()
        return problems

    def _restore_network(self) -> None:
        """Undo what netavark did to the host, where the host had none of it before."""
        if not self._had_bridge and _link_exists(_NETAVARK_BRIDGE):
            subprocess.run(["ip", "link", "delete", _NETAVARK_BRIDGE], check=False,
                           capture_output=True)
        if not self._had_netavark_rules:
            _remove_netavark_rules()
        if _IP_FORWARD.read_text().strip() != self._ip_forward:
            _IP_FORWARD.write_text(self._ip_forward + "\n")

    def _kill_conmons(self) -> list[str]:
        """SIGKILL conmon processes started for this setup (their args name our paths)."""
        problems = []
        marker = os.fspath(self.base).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"conmon") and any(marker in a for a in argv):
                problems.append(f"conmon pid {proc.name} still running")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
        return problems


def run_through_files(cmd: list[str], *, input: str | None = None, timeout: float = 60,
                      check: bool = False, env: dict[str, str] | None = None,
                      cwd: str | os.PathLike[str] | None = None,
                      ) -> subprocess.CompletedProcess[str]:
    """Run podman's ``cmd`` with its output in files, never pipes.

    As in ``helpers.run_pyoci``: conmon outlives ``podman run -d`` and must not be
    able to keep a pipe of ours open.
    """
    files: list[IO[Any]] = []
    try:
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        files += [out, err]
        stdin: Any = subprocess.DEVNULL
        if input is not None:
            stdin = tempfile.TemporaryFile()
            files.append(stdin)
            stdin.write(input.encode())
            stdin.seek(0)
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(cmd, timeout, _read(out), _read(err)) from None
        result = subprocess.CompletedProcess(cmd, rc, _read(out), _read(err))
    finally:
        for f in files:
            f.close()
    if check and result.returncode != 0:
        raise helpers.RuntimeCommandError(result.returncode, cmd, result.stdout, result.stderr)
    return result


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


@contextlib.contextmanager
def podman_env(rootfs: Path, cgroup_manager: str = "cgroupfs") -> Iterator[PodmanEnv]:
    """Set up a private podman with the test image; tear everything down after."""
    base = Path(tempfile.mkdtemp(prefix="pyoci-podman-"))
    env = PodmanEnv(base, runtime_path(), cgroup_manager)
    before = env.state_dirs()
    try:
        env.write_config()
        env.import_image(rootfs)
        yield env
    finally:
        problems = env.teardown(before)
        if problems:
            # Visible in the session's output; the per-test checks fail the tests.
            print("podman teardown:", *problems, sep="\n  ")


def parse_oci_log(text: str) -> Mapping[str, Any]:
    """The runtime's ``--log`` file the way podman reads it: one JSON object."""
    return json.loads(text)


def checked(env: PodmanEnv) -> Iterator[PodmanEnv]:
    """Yield ``env``, then fail the test if it left a container or runtime state behind.

    Containers the test forgot are removed first, so one failure doesn't cascade
    into the tests after it. Use as ``yield from podman_env.checked(podman)``.
    """
    import pytest

    before = env.state_dirs()
    yield env
    ids = env.podman("ps", "--all", "--quiet", "--no-trunc", check=True).stdout.split()
    problems = [f"container {cid[:12]} not removed" for cid in ids]
    problems += env.cleanup_containers()
    leaked = env.state_dirs() - before
    problems += [f"state dir {env.state_root / cid} left behind" for cid in sorted(leaked)]
    for cid in leaked:
        helpers.run_pyoci("delete", "--force", cid, root=env.state_root, timeout=30)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
