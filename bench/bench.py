#!/usr/bin/env python3
"""Side-by-side start-up benchmark: pyoci against runc (and crun where it runs).

Usage: python bench/bench.py [--runs N] [--runtimes pyoci,runc,crun] [--ops ...] [--out FILE]

Every runtime runs the same busybox bundle (``/bin/true``, no terminal). For
each operation the runtimes take turns run by run, first in the given order,
then in the reverse order. Each timed process is started with posix_spawn and
reaped with ``os.wait4``: wall time is measured around spawn + wait, CPU time is
the user + system time that ``wait4`` reports for the child and every
descendant it waited for. Setup (creating the container a ``start`` needs, and
so on) uses the same runtime and is not timed. Besides the runtime verbs it
times ``exec`` into a running container, ``podman run`` with each runtime, and
a batch of parallel ``run``s (throughput), and reports peak RSS. See
bench/README.md.

Runs as root. Must not be imported by pyoci; imports nothing from it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

OPS = ("run", "create", "start", "state", "kill", "delete", "exec", "podman", "throughput", "rss")
LEAN_OPS = ("state", "start", "kill", "delete")
# crun needs its private mount namespace (hybrid cgroups), which podman can't give it.
NO_PODMAN = tuple(o for o in OPS if o != "podman")
FLOOR_TARGET = 1.25
FLOOR = "python -I -S"  # the interpreter floor, as a participant of the lean ops' alternation
CLONE_NEWNS = 0x00020000
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


# --------------------------------------------------------------------------- runtimes


@dataclass
class Runtime:
    name: str
    argv: list[str]  # the command before the global flags
    root: str = ""
    globals_: list[str] = field(default_factory=list)  # extra global flags
    ops: tuple[str, ...] = OPS
    mnt_ns: int | None = None  # fd of the mount namespace the runtime must run in
    setup_argv: list[str] | None = None  # runtime used for untimed setup, if different
    helper: subprocess.Popen | None = None  # process holding mnt_ns open
    note: str = ""

    def cmd(self, *args: str, setup: bool = False) -> list[str]:
        base = self.setup_argv if (setup and self.setup_argv) else self.argv
        return [*base, "--root", self.root, *self.globals_, *args]


class Namespaces:
    """Run a child in another mount namespace: setns around the spawn."""

    def __init__(self) -> None:
        self.home = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.cwd = os.getcwd()

    def enter(self, fd: int | None) -> None:
        if fd is not None:
            _check(_libc.setns(fd, CLONE_NEWNS), "setns")

    def leave(self, fd: int | None) -> None:
        if fd is not None:
            _check(_libc.setns(self.home, CLONE_NEWNS), "setns back")
            os.chdir(self.cwd)


NS: Namespaces


def ns_helper(script: str) -> tuple[subprocess.Popen | None, int | None, str]:
    """A `sleep` in a private mount namespace prepared by ``script``.

    Returns (process, fd of its mount namespace, error text).
    """
    full = f"set -e\n{script}\necho ready\nexec sleep infinity\n"
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", full],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.wait()
        return None, None, proc.stderr.read().strip() or f"exit {proc.returncode}"
    fd = os.open(f"/proc/{proc.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    return proc, fd, ""


def stop_helper(rt: Runtime) -> None:
    if rt.mnt_ns is not None:
        os.close(rt.mnt_ns)
        rt.mnt_ns = None
    if rt.helper is not None:
        rt.helper.kill()
        rt.helper.wait()
        rt.helper = None


def pyoci_script() -> Path:
    return Path(sysconfig.get_path("scripts")) / "pyoci"


def script_interpreter(script: Path) -> str:
    first = script.read_text().splitlines()[0]
    if not first.startswith("#!"):
        raise SystemExit(f"{script}: no shebang")
    return first[2:].split()[0]


def make_runtime(name: str) -> Runtime:
    if name == "pyoci":
        script = pyoci_script()
        if not os.access(script, os.X_OK):
            raise SystemExit(f"{script} not found: pip install -e . first")
        return Runtime(name, [str(script)], note=f"{script}")
    if name == "pyoci-isolated":
        # pyoci's own cost: `python -I -S`, sys.path set by hand, no site or .pth files.
        # create/run need the editable install's finder (pyoci.schemas), so only the lean verbs.
        script = pyoci_script()
        import importlib.util

        spec = importlib.util.find_spec("pyoci")
        assert spec is not None and spec.submodule_search_locations
        parent = str(Path(next(iter(spec.submodule_search_locations))).parent)
        paths = [parent, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
        code = (
            f"import sys; sys.path[:0] = {paths!r}; sys.argv[0] = 'pyoci'; "
            "from pyoci.cli import main; sys.exit(main())"
        )
        return Runtime(
            name,
            [script_interpreter(script), "-I", "-S", "-c", code],
            ops=LEAN_OPS,
            setup_argv=[str(script)],
            note="python -I -S, sys.path set by hand (no site, no .pth)",
        )
    if name == "runc":
        path = shutil.which("runc")
        if not path:
            return Runtime(name, [], ops=(), note="unavailable: runc not installed")
        return Runtime(name, [path], note=path)
    if name in ("crun", "crun-nocg"):
        path = shutil.which("crun")
        if not path:
            return Runtime(name, [], ops=(), note="unavailable: crun not installed")
        if name == "crun":
            # crun refuses hybrid cgroups while a controller is bound to cgroup v2;
            # binding hugetlb to v1 (in a private mount namespace) is the usual fix.
            probe = (
                "d=$(mktemp -d)\n"
                'mount -t cgroup -o hugetlb none "$d" || { rmdir "$d"; exit 1; }\n'
                'umount "$d"; rmdir "$d"\n'
                "[ -d /sys/fs/cgroup/hugetlb ] || mkdir /sys/fs/cgroup/hugetlb\n"
                "mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb"
            )
            rt = Runtime(
                name,
                [path],
                ops=NO_PODMAN,
                note="hugetlb bound to cgroup v1 in a private mount ns",
            )
        else:
            # Not comparable: crun without any cgroup work. Needs a mount namespace in
            # which /sys/fs/cgroup is a pure cgroup2 mount, or crun rejects the host.
            probe = "mount -t cgroup2 none /sys/fs/cgroup"
            rt = Runtime(
                name,
                [path],
                globals_=["--cgroup-manager=disabled"],
                ops=NO_PODMAN,
                note="crun --cgroup-manager=disabled, cgroup2 at /sys/fs/cgroup in a "
                "private mount ns: no cgroup work at all, NOT comparable",
            )
        rt.helper, rt.mnt_ns, err = ns_helper(probe)
        if rt.mnt_ns is None:
            rt.ops = ()
            why = [ln for ln in err.splitlines() if "dmesg" not in ln] or ["setup failed"]
            rt.note = "unavailable: " + " ".join(why)
        return rt
    raise SystemExit(f"unknown runtime {name!r}")


# --------------------------------------------------------------------------- processes


@dataclass
class Sample:
    wall: float  # seconds
    user: float
    sys: float
    # rss op only (KiB): ru_maxrss of `create` and of `run` (via /usr/bin/time), and the
    # /proc status of the init waiting between create and start.
    create_rss: int = 0
    run_rss: int = 0
    init: dict[str, int] | None = None

    @property
    def cpu(self) -> float:
        return self.user + self.sys


class Failed(Exception):
    pass


def _spawn(argv: list[str], err: int, env: dict[str, str] | None = None) -> int:
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, err, 2),
    ]
    return os.posix_spawn(argv[0], argv, os.environ if env is None else env, file_actions=actions)


def _failure(argv: list[str], status: int, err: tempfile._TemporaryFileWrapper) -> str:
    err.seek(0)
    text = err.read().decode(errors="replace").strip()
    return f"{' '.join(argv[-3:])}: exit {os.waitstatus_to_exitcode(status)}: {text[-300:]}"


def timed(rt: Runtime, argv: list[str], env: dict[str, str] | None = None) -> Sample:
    """Spawn ``argv``, wait for it with wait4; wall and CPU time of it and its waited children."""
    with tempfile.TemporaryFile() as err:
        NS.enter(rt.mnt_ns)
        try:
            t0 = time.perf_counter()
            pid = _spawn(argv, err.fileno(), env)
        finally:
            NS.leave(rt.mnt_ns)
        _, status, ru = os.wait4(pid, 0)
        t1 = time.perf_counter()
        if status != 0:
            raise Failed(_failure(argv, status, err))
    return Sample(t1 - t0, ru.ru_utime, ru.ru_stime)


def timed_batch(rt: Runtime, argvs: list[list[str]]) -> Sample:
    """Spawn every argv at once, wait for all: total wall, summed CPU, largest maxrss."""
    errs = [tempfile.TemporaryFile() for _ in argvs]
    try:
        pids: dict[int, int] = {}
        NS.enter(rt.mnt_ns)
        try:
            t0 = time.perf_counter()
            for i, argv in enumerate(argvs):
                pids[_spawn(argv, errs[i].fileno())] = i
        finally:
            NS.leave(rt.mnt_ns)
        user = sys_ = 0.0
        failures = []
        for pid, i in pids.items():
            _, status, ru = os.wait4(pid, 0)
            user += ru.ru_utime
            sys_ += ru.ru_stime
            if status != 0:
                failures.append(_failure(argvs[i], status, errs[i]))
        t1 = time.perf_counter()
    finally:
        for f in errs:
            f.close()
    if failures:
        raise Failed(f"{len(failures)}/{len(argvs)} failed, first: {failures[0]}")
    return Sample(t1 - t0, user, sys_)


GNU_TIME = "/usr/bin/time"


def max_rss(rt: Runtime, argv: list[str]) -> int:
    """ru_maxrss (KiB) of ``argv``'s process tree, as GNU time's wait4 reports it.

    Not from our own wait4: a child spawned by this process (vfork or fork) starts with
    our memory map, and exec records that map's high-water RSS (~20 MiB of Python) as the
    child's. GNU time is small (its child's floor is ~1 MiB).
    """
    with tempfile.NamedTemporaryFile("r") as out, tempfile.TemporaryFile() as err:
        NS.enter(rt.mnt_ns)
        try:
            pid = _spawn([GNU_TIME, "-f", "%M", "-o", out.name, *argv], err.fileno())
        finally:
            NS.leave(rt.mnt_ns)
        _, status, _ = os.wait4(pid, 0)
        if status != 0:
            raise Failed(_failure(argv, status, err))
        return int(out.read().split()[-1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem of ``pid`` in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(val.split()[0])
    return out


def call(rt: Runtime, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """An untimed setup command. Output goes to files, not pipes: a created container
    inherits the runtime's stdio and would hold a pipe open."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        NS.enter(rt.mnt_ns)
        try:
            proc = subprocess.Popen(
                rt.cmd(*args, setup=True), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        finally:
            NS.leave(rt.mnt_ns)
        proc.wait(timeout=60)
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if check and proc.returncode != 0:
        raise Failed(f"setup {rt.name} {' '.join(args)}: exit {proc.returncode}: {e.strip()}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, o, e)


def reap() -> None:
    """Collect orphaned container processes (we are their subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_status(rt: Runtime, cid: str, want: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        reap()
        st = json.loads(call(rt, "state", cid).stdout).get("status")
        if st == want:
            return
        if time.monotonic() > deadline:
            raise Failed(f"{rt.name} {cid}: status {st}, wanted {want}")
        time.sleep(0.005)


# --------------------------------------------------------------------------- podman

PODMAN_IMAGE = "localhost/pyoci-bench:latest"
CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# What rootful podman 4.3 creates outside its configured dirs whatever the config says
# (as in tests/integration/podman_env.py); removed after, if they didn't exist before.
PODMAN_HOST_LEFTOVERS = (
    Path("/run/containers/networks/ipam.db"),
    Path("/run/containers/networks/aardvark-dns"),
    Path("/run/containers/networks"),
    Path("/run/containers"),
    Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
    Path("/var/lib/containers/cache"),
    Path("/var/lib/containers"),
)


def _toml(value: str | list[str]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def _podman_ulimits() -> list[str]:
    """default_ulimits a runtime can apply (podman asks 1048576, above the hard limits here)."""
    out = []
    for name, lim in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(lim)[1]
        v = 4096 if name == "nproc" else 10000
        v = v if hard == resource.RLIM_INFINITY else min(hard, v)
        out.append(f"{name}={v}:{v}")
    return out


def _fs_type(path: Path) -> str:
    best, fstype = "", ""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, fields[fields.index("-") + 1]
    return fstype


def _libpod_cgroups() -> set[Path]:
    return {*CGROUP_ROOT.glob("libpod_parent"), *CGROUP_ROOT.glob("*/libpod_parent")}


class PodmanBench:
    """A private podman (own storage, tmp dir, file locks, cgroupfs), adapted from
    tests/integration/podman_env.py; the image is the bench bundle's rootfs."""

    def __init__(self, base: Path, runtimes: dict[str, str]) -> None:
        self.base = base
        self.runtimes = runtimes  # runtime name -> path given to `--runtime`
        self.storage_conf = base / "storage.conf"
        self.conf = base / "containers.conf"
        self.driver = "vfs" if _fs_type(base) in ("overlay", "aufs") else "overlay"
        self.preexisting = {p for p in PODMAN_HOST_LEFTOVERS if p.exists()}
        self.libpod_before = {d for p in _libpod_cgroups() for d in p.glob("**/")}
        self.had_libpod = bool(_libpod_cgroups())
        base.mkdir(parents=True, exist_ok=True)
        self.storage_conf.write_text(
            "[storage]\n"
            f"driver = {_toml(self.driver)}\n"
            f"graphroot = {_toml(str(base / 'root'))}\n"
            f"runroot = {_toml(str(base / 'runroot'))}\n"
        )
        defaults = ["crun", "runc", "kata", "runsc", "krun"]
        json_ok = [*defaults, *(Path(p).name for p in runtimes.values())]
        self.conf.write_text(
            "[containers]\n"
            f"default_ulimits = {_toml(_podman_ulimits())}\n"
            "\n[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'lock_type = "file"\n'
            f"tmp_dir = {_toml(str(base / 'tmp'))}\n"
            f"volume_path = {_toml(str(base / 'volumes'))}\n"
            f"runtime_supports_json = {_toml(sorted(set(json_ok)))}\n"
            "\n[engine.runtimes]\n"
            + "".join(f"{Path(p).name} = {_toml([p])}\n" for p in runtimes.values())
            + "\n[network]\n"
            'network_backend = "netavark"\n'
            f"network_config_dir = {_toml(str(base / 'networks'))}\n"
        )
        self.env = dict(os.environ)
        self.env["CONTAINERS_CONF"] = str(self.conf)
        self.env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        for var in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINERS_REGISTRIES_CONF"):
            self.env.pop(var, None)

    def _state(self, path: str) -> set[str]:
        """Our containers' state dirs in the runtime's root (other sessions share it)."""
        root = Path("/run") / Path(path).name
        if not root.is_dir():
            return set()
        ours = set()
        for p in root.iterdir():
            if CONTAINER_ID.match(p.name):
                for name in ("state.json", "state.marshal"):  # runc's, pyoci's
                    with contextlib.suppress(OSError):
                        if str(self.base).encode() in (p / name).read_bytes():
                            ours.add(p.name)
        return ours

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                ["podman", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.base,
            )
            proc.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        return subprocess.CompletedProcess(proc.args, proc.returncode, o, e)

    def import_image(self, rootfs: Path) -> None:
        tarball = self.base / "rootfs.tar"
        subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True
        )
        res = self.podman("import", str(tarball), PODMAN_IMAGE)
        tarball.unlink()
        if res.returncode != 0:
            raise Failed(f"podman import: {res.stderr.strip()}")

    def argv(self, rt: Runtime) -> list[str]:
        return [
            shutil.which("podman") or "/usr/bin/podman",
            "run",
            "--runtime",
            self.runtimes[rt.name],
            "--rm",
            "--network",
            "none",
            PODMAN_IMAGE,
            "/bin/true",
        ]

    def run(self, rt: Runtime) -> Sample:
        return timed(Runtime("podman", []), self.argv(rt), env=self.env)

    def teardown(self) -> list[str]:
        notes = []
        for args in (("rm", "--all", "--force", "--time", "0"), ("rmi", "--all", "--force")):
            res = self.podman(*args)
            if res.returncode != 0:
                notes.append(f"podman {' '.join(args)}: {res.stderr.strip()}")
        marker = str(self.base).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"conmon") and any(marker in a for a in argv):
                notes.append(f"podman: conmon {proc.name} still running: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), 9)
        prefix = os.path.realpath(self.base).rstrip("/") + "/"
        with open("/proc/self/mountinfo") as f:
            mounts = [ln.split()[4] for ln in f if ln.split()[4].startswith(prefix)]
        for target in sorted(mounts, key=len, reverse=True):
            notes.append(f"podman: mount {target} left behind: unmounted")
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        for n, p in self.runtimes.items():
            # podman passes no --root: state is in /run/<basename>, shared with other
            # sessions; ours name our base dir. Reported, not touched.
            new = self._state(p)
            if new:
                notes.append(f"podman: {len(new)} new state dir(s) in /run/{Path(p).name} ({n})")
        # Empty cgroups podman made (libpod-<id> of our containers, conmon, the parent):
        # only the ones that appeared during the bench; rmdir fails on any in use.
        for parent in _libpod_cgroups():
            for d in sorted(parent.glob("**/"), key=lambda d: len(d.parts), reverse=True):
                if d not in self.libpod_before and (d != parent or not self.had_libpod):
                    with contextlib.suppress(OSError):
                        d.rmdir()
        for path in PODMAN_HOST_LEFTOVERS:
            if path not in self.preexisting:
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()
        return notes


# --------------------------------------------------------------------------- operations


class Bench:
    def __init__(self, bundle: str, sleep_bundle: str, parallel: int) -> None:
        self.bundle = bundle
        self.sleep_bundle = sleep_bundle  # same rootfs, process `sleep`: exec target
        self.parallel = parallel
        self.serial = 0
        self.token = os.urandom(3).hex()  # so leftovers can be told apart from others'
        self.ids: dict[str, set[str]] = {}
        self.exec_ids: dict[str, str] = {}  # runtime name -> its running `sleep` container
        self.init_comm: dict[str, str] = {}  # runtime name -> comm of the waiting init
        self.podman: PodmanBench | None = None

    def new_id(self, rt: Runtime, op: str) -> str:
        self.serial += 1
        cid = f"bench-{self.token}-{op}-{self.serial}"
        self.ids.setdefault(rt.name, set()).add(cid)
        return cid

    def create(self, rt: Runtime, cid: str) -> None:
        call(rt, "create", "--bundle", self.bundle, cid)

    def remove(self, rt: Runtime, cid: str) -> None:
        call(rt, "delete", "--force", cid, check=False)
        reap()

    def exec_target(self, rt: Runtime) -> str:
        """The runtime's own running `sleep` container, made on first use (untimed)."""
        cid = self.exec_ids.get(rt.name)
        if cid is None:
            cid = self.new_id(rt, "exec")
            self.exec_ids[rt.name] = cid
            call(rt, "create", "--bundle", self.sleep_bundle, cid)
            call(rt, "start", cid)
            wait_status(rt, cid, "running")
        return cid

    def throughput(self, rt: Runtime) -> Sample:
        ids = [self.new_id(rt, "tp") for _ in range(self.parallel)]
        try:
            return timed_batch(rt, [rt.cmd("run", "--bundle", self.bundle, c) for c in ids])
        finally:
            for cid in ids:  # `run` deletes its container; only failures leave state
                if os.path.exists(os.path.join(rt.root, cid)):
                    call(rt, "delete", "--force", cid, check=False)
            reap()

    def measure(self, rt: Runtime, op: str) -> Sample:
        if op == "exec":
            return timed(rt, rt.cmd("exec", self.exec_target(rt), "/bin/true"))
        if op == "podman":
            assert self.podman is not None
            return self.podman.run(rt)
        if op == "throughput":
            return self.throughput(rt)
        cid = self.new_id(rt, op)
        try:
            if op == "run":
                return timed(rt, rt.cmd("run", "--bundle", self.bundle, cid))
            if op == "create":
                return timed(rt, rt.cmd("create", "--bundle", self.bundle, cid))
            if op == "rss":
                run_rss = max_rss(rt, rt.cmd("run", "--bundle", self.bundle, cid))
                create_rss = max_rss(rt, rt.cmd("create", "--bundle", self.bundle, cid))
                # The init waiting for `start` (runc: `runc init`).
                pid = json.loads(call(rt, "state", cid).stdout)["pid"]
                sample = Sample(0.0, 0.0, 0.0, create_rss, run_rss)
                with contextlib.suppress(OSError, ValueError):
                    sample.init = proc_status(pid)
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    self.init_comm[rt.name] = comm
                return sample
            self.create(rt, cid)
            if op == "start":
                return timed(rt, rt.cmd("start", cid))
            if op == "state":
                return timed(rt, rt.cmd("state", cid))
            if op == "kill":
                return timed(rt, rt.cmd("kill", cid, "KILL"))
            if op == "delete":
                call(rt, "start", cid)
                wait_status(rt, cid, "stopped")
                return timed(rt, rt.cmd("delete", cid))
            raise ValueError(op)
        finally:
            self.remove(rt, cid)

    def cleanup(self, runtimes: list[Runtime]) -> list[str]:
        """Delete every container we made; kill what a runtime left behind. Returns notes."""
        notes = []
        for rt in runtimes:
            for cid in sorted(self.ids.get(rt.name, ())):
                if rt.root and os.path.exists(os.path.join(rt.root, cid)):
                    call(rt, "delete", "--force", cid, check=False)
            reap()
        # As subreaper we inherited every orphaned container process: any still alive
        # is one a runtime lost track of.
        helpers = {rt.helper.pid for rt in runtimes if rt.helper is not None}
        for pid in our_children():
            if pid in helpers:
                continue
            notes.append(f"leftover process {pid} ({proc_cmd(pid)}): killed")
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        reap()
        for top in Path("/sys/fs/cgroup").iterdir():
            for d in sorted(top.glob(f"**/bench-{self.token}-*"), reverse=True):
                try:
                    d.rmdir()
                    notes.append(f"leftover cgroup {d}: removed")
                except OSError as e:
                    notes.append(f"leftover cgroup {d}: {e.strerror}")
        return notes


def our_children() -> list[int]:
    pids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def proc_cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def alternate(
    names: list[str], runs: int, measure: Callable[[str], Sample], progress: str
) -> tuple[dict[str, list[Sample]], list[dict[str, list[Sample]]], list[str]]:
    """Runtimes take turns run by run, in the given order, then reversed.

    Returns all samples per runtime, the samples per order, and failure messages.
    """
    per_order: list[dict[str, list[Sample]]] = []
    errors: list[str] = []
    for order in (names, names[::-1]):
        got: dict[str, list[Sample]] = {n: [] for n in names}
        for _ in range(runs):
            for n in order:
                try:
                    got[n].append(measure(n))
                except Failed as e:
                    errors.append(f"{n}: {e}")
        per_order.append(got)
        print(f"  {progress} order {','.join(order)} done", file=sys.stderr)
    merged = {n: [s for o in per_order for s in o[n]] for n in names}
    return merged, per_order, errors


def med(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def ratio(per_order: list[dict[str, list[Sample]]], a: str, b: str, attr: str) -> float | None:
    """Geometric mean over the orders of median(a)/median(b) within each order."""
    rs = []
    for o in per_order:
        if o.get(a) and o.get(b):
            rs.append(med(o[a], attr) / med(o[b], attr))
    if not rs:
        return None
    return math.exp(sum(math.log(r) for r in rs) / len(rs))


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def fx(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}×"


# --------------------------------------------------------------------------- bundle


def build_bundle(dest: Path, python: str) -> str:
    subprocess.run([python, "-m", "pyoci.demo", str(dest)], check=True, stdout=subprocess.DEVNULL)
    cfg_path = dest / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"]["terminal"] = False
    # crun 1.8.1 rejects ociVersion 1.3.0 ("unknown version specified"); nothing in this
    # bundle is newer than 1.0.2, so every runtime gets the same, older, version string.
    cfg["ociVersion"] = "1.0.2"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return str(dest)


def build_sleep_bundle(dest: Path, bundle: str) -> str:
    """The same rootfs (read-only, shared) with `sleep` as the process: the exec target."""
    cfg = json.loads((Path(bundle) / "config.json").read_text())
    cfg["process"]["args"] = ["/bin/sleep", "100000"]
    cfg["root"]["path"] = str(Path(bundle) / cfg["root"]["path"])
    dest.mkdir()
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    return str(dest)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--runs", type=int, default=20, help="runs per runtime verb, per order (default 20)"
    )
    ap.add_argument("--podman-runs", type=int, default=5, help="podman runs per order (default 5)")
    ap.add_argument(
        "--batches", type=int, default=2, help="throughput batches per order (default 2)"
    )
    ap.add_argument("--rss-runs", type=int, default=3, help="rss runs per order (default 3)")
    ap.add_argument(
        "--parallel", type=int, default=50, help="containers per throughput batch (default 50)"
    )
    ap.add_argument(
        "--runtimes",
        default="pyoci,runc,crun",
        help="comma-separated: pyoci, runc, crun, and the diagnostics pyoci-isolated, crun-nocg",
    )
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of the ops")
    ap.add_argument("--out", help="also write the markdown report here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench.py runs containers: run it as root", file=sys.stderr)
        return 2
    names = [n.strip() for n in a.runtimes.split(",") if n.strip()]
    ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    for o in ops:
        if o not in OPS:
            ap.error(f"unknown op {o}")
    runs = {o: a.runs for o in OPS} | {
        "podman": a.podman_runs,
        "throughput": a.batches,
        "rss": a.rss_runs,
    }
    if "rss" in ops and not os.access(GNU_TIME, os.X_OK):
        print(f"{GNU_TIME} (GNU time) not found: rss skipped", file=sys.stderr)
        ops.remove("rss")

    global NS
    NS = Namespaces()
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")

    python = script_interpreter(pyoci_script())
    work = Path(tempfile.mkdtemp(prefix="pyoci-bench-"))
    runtimes: list[Runtime] = []
    bench: Bench | None = None
    notes: list[str] = []
    load = os.getloadavg()
    t_start = time.monotonic()
    try:
        bundle = build_bundle(work / "bundle", python)
        bench = Bench(bundle, build_sleep_bundle(work / "sleep", bundle), a.parallel)
        for n in names:
            rt = make_runtime(n)
            rt.root = str(work / f"root-{n}")
            os.makedirs(rt.root)
            runtimes.append(rt)
        by_name = {rt.name: rt for rt in runtimes}
        # A runtime that can't run the bundle at all is reported as unavailable.
        for rt in runtimes:
            if not rt.ops:
                continue
            try:
                bench.measure(rt, "run")
            except Failed as e:
                rt.ops = ()
                rt.note = f"unavailable: {e}"
        live = [rt.name for rt in runtimes if rt.ops]
        podman_rts = [n for n in live if "podman" in by_name[n].ops]
        if "podman" in ops and podman_rts:
            if not shutil.which("podman"):
                for n in podman_rts:
                    by_name[n].ops = tuple(o for o in by_name[n].ops if o != "podman")
                notes.append("podman not installed: podman op skipped")
            else:
                paths = {n: by_name[n].argv[0] for n in podman_rts}
                bench.podman = PodmanBench(work / "podman", paths)
                bench.podman.import_image(Path(bundle) / "rootfs")
                for n in podman_rts:  # warm-up (storage, image layers); untimed
                    try:
                        bench.podman.run(by_name[n])
                    except Failed as e:
                        rt = by_name[n]
                        rt.ops = tuple(o for o in rt.ops if o != "podman")
                        rt.note += f"; podman run failed: {e}"

        floor_cmds = {
            "python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
            "python -c pass": [python, "-c", "pass"],
        }
        plain = Runtime("floor", [])

        def measure(n: str, op: str) -> Sample:
            if n == FLOOR:
                return timed(plain, floor_cmds["python -I -S -c pass"])
            return bench.measure(by_name[n], op)

        results: dict[str, tuple[dict, list, list]] = {}
        for op in ops:
            who = [n for n in live if op in by_name[n].ops]
            if not who or runs[op] <= 0:
                continue
            if op in LEAN_OPS and any(n.startswith("pyoci") for n in who):
                # The floor takes its turns in the same alternation, so the ratio to it
                # compares samples taken side by side, not minutes apart.
                who = [*who, FLOOR]
            results[op] = alternate(who, runs[op], lambda n, op=op: measure(n, op), op)
        floor = alternate(list(floor_cmds), a.runs, lambda n: timed(plain, floor_cmds[n]), "floor")
        elapsed = time.monotonic() - t_start
        report = render(a, runs, runtimes, bench, results, floor, python, elapsed, load)
    finally:
        if bench is not None:
            if bench.podman is not None:
                notes += bench.podman.teardown()
            notes += bench.cleanup(runtimes)
        for rt in runtimes:
            stop_helper(rt)
        reap()
        shutil.rmtree(work, ignore_errors=True)
    if notes:
        report += "\n\nCleanup:\n\n" + "\n".join(f"- {n}" for n in notes)
    print(report)
    if a.out:
        Path(a.out).write_text(report + "\n")
    return 0


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def render(
    a: argparse.Namespace,
    runs: dict[str, int],
    runtimes: list[Runtime],
    bench: Bench,
    results: dict[str, tuple[dict, list, list]],
    floor: tuple[dict, list, list],
    python: str,
    elapsed: float,
    load: tuple[float, float, float],
) -> str:
    live = [rt.name for rt in runtimes if rt.ops]
    base = "runc" if "runc" in live else None
    load_end = os.getloadavg()
    lines = [
        f"## pyoci start-up benchmark ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} CPUs, {elapsed:.0f} s)",
        "",
        f"Runs per order: {a.runs} per runtime verb, {a.podman_runs} podman, {a.batches} "
        f"throughput batches of {a.parallel}. Load average (1/5/15 min) at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, at end {load_end[0]:.2f} / "
        f"{load_end[1]:.2f} / {load_end[2]:.2f}.",
        "",
        "Bundle: busybox, `/bin/true`, terminal false. Medians over both orders; ratios are the "
        "geometric mean of the per-order median ratios. CPU = user + sys of the runtime process "
        "and the children it waited for (wait4). `exec`: `/bin/true` into the runtime's own "
        "running `sleep` "
        "container. `podman`: `podman run --rm --network none IMAGE /bin/true` (its CPU is "
        "podman's and what podman waited for, not conmon's nor the runtime's `create`).",
        "",
        "| op | runtime | wall ms | CPU ms | user ms | sys ms | wall / runc | CPU / runc | n |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    errors: list[str] = []
    for op, (merged, per_order, errs) in results.items():
        errors += [f"{op}: {e}" for e in errs]
        if op in ("throughput", "rss"):
            continue
        for n, samples in merged.items():
            if not samples:
                lines.append(f"| {op} | {n} | – | – | – | – | – | – | 0 |")
                continue
            rw = ratio(per_order, n, base, "wall") if base else None
            rc = ratio(per_order, n, base, "cpu") if base else None
            lines.append(
                f"| {op} | {n} | {ms(med(samples, 'wall'))} | {ms(med(samples, 'cpu'))} | "
                f"{ms(med(samples, 'user'))} | {ms(med(samples, 'sys'))} | {fx(rw)} | {fx(rc)} | "
                f"{len(samples)} |"
            )

    if "throughput" in results:
        merged, per_order, _ = results["throughput"]
        lines += [
            "",
            f"Throughput: {a.parallel} `run --bundle B <distinct id>` of `/bin/true` spawned at "
            "once; wall = first spawn to last reaped; CPU summed over the batch.",
            "",
            "| runtime | batch wall s | containers/s | CPU s | CPU ms / container | "
            "wall / runc | CPU / runc | n batches |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, samples in merged.items():
            if not samples:
                lines.append(f"| {n} | – | – | – | – | – | – | 0 |")
                continue
            wall, cpu = med(samples, "wall"), med(samples, "cpu")
            rw = ratio(per_order, n, base, "wall") if base else None
            rc = ratio(per_order, n, base, "cpu") if base else None
            lines.append(
                f"| {n} | {wall:.2f} | {a.parallel / wall:.1f} | {cpu:.2f} | "
                f"{cpu / a.parallel * 1000:.1f} | {fx(rw)} | {fx(rc)} | {len(samples)} |"
            )

    if "rss" in results:
        merged = results["rss"][0]
        lines += [
            "",
            "Memory (MiB). `create` / `run` max RSS: ru_maxrss of the runtime's process tree "
            "(the largest single process), from GNU time's wait4 (median / max); `run`'s tree "
            "includes the container (busybox `true`, ~1 MiB), `create`'s doesn't include the "
            "init it leaves behind. Waiting init: `/proc/<pid>/status` of the init between "
            "`create` and `start` (median).",
            "",
            "| runtime | create max RSS | run max RSS | init VmRSS | init RssAnon | "
            "init RssFile | init comm | n |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for n, samples in merged.items():
            if not samples:
                lines.append(f"| {n} | – | – | – | – | – | – | 0 |")
                continue
            inits = [s.init for s in samples if s.init]

            def rss(attr: str, samples: list[Sample] = samples) -> str:
                vals = [getattr(s, attr) for s in samples]
                return f"{mib(statistics.median(vals))} / {mib(max(vals))}"

            def init(key: str, inits: list[dict[str, int]] = inits) -> str:
                vals = [i[key] for i in inits if key in i]
                return mib(statistics.median(vals)) if vals else "–"

            lines.append(
                f"| {n} | {rss('create_rss')} | {rss('run_rss')} | {init('VmRSS')} | "
                f"{init('RssAnon')} | {init('RssFile')} | `{bench.init_comm.get(n, '?')}` | "
                f"{len(samples)} |"
            )

    fm, _, ferrs = floor
    errors += [f"floor: {e}" for e in ferrs]
    lines += [
        "",
        f"Interpreter floor (`{python}`):",
        "",
        "| command | wall ms | CPU ms | n |",
        "|---|---:|---:|---:|",
    ]
    for n, samples in fm.items():
        lines.append(
            f"| `{n}` | {ms(med(samples, 'wall'))} | {ms(med(samples, 'cpu'))} | {len(samples)} |"
        )
    floor_cpu = med(fm["python -I -S -c pass"], "cpu")
    site_cpu = med(fm["python -c pass"], "cpu")
    lean = [n for n in live if n.startswith("pyoci")]
    if lean and any(op in results for op in LEAN_OPS):
        lines += [
            "",
            f"pyoci CPU / `python -I -S -c pass` CPU: the geometric mean of the per-order "
            f"median ratios, the floor's samples taken in the same alternation (the `{FLOOR}` "
            f"rows above) (target ≤ {FLOOR_TARGET}×; `python -c pass` is "
            f"{site_cpu / floor_cpu:.2f}× alone):",
            "",
            "| op | " + " | ".join(lean) + " |",
            "|---|" + "---:|" * len(lean),
        ]
        for op in LEAN_OPS:
            if op not in results:
                continue
            cells = []
            for n in lean:
                samples = results[op][0].get(n)
                if not samples:
                    cells.append("–")
                    continue
                r = ratio(results[op][1], n, FLOOR, "cpu")
                if r is None:
                    r = med(samples, "cpu") / floor_cpu
                cells.append(f"{r:.2f}× {'ok' if r <= FLOOR_TARGET else 'over'}")
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines += ["", "Runtimes:", ""]
    for rt in runtimes:
        lines.append(f"- **{rt.name}**: {rt.note}")
    if errors:
        lines += ["", f"Failures ({len(errors)}, excluded from the statistics):", ""]
        lines += [f"- {e}" for e in errors[:20]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
