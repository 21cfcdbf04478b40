"""An unprivileged user of the tests' own, and the runtime run as that user.

The tests run as root (like every integration test) and make a throw-away
user ``pyocirl<hex>`` with ``useradd``: a home, subordinate id ranges in
``/etc/subuid`` and ``/etc/subgid``, and ``/run/user/<uid>`` (0700, the user's)
as ``XDG_RUNTIME_DIR``. All of it is removed after the session, and only what
the fixture made.

The runtime is started with ``runuser`` and a clean environment. Which runtime:
``PYOCI_TEST_RUNTIME`` when set (``/usr/sbin/runc`` checks an expectation
against runc); otherwise this checkout's ``pyoci`` package, copied to a
directory anyone may read and run by Debian's ``/usr/bin/python3`` (root's own
interpreter and checkout may live under a 0700 ``/root``). Its compiled helper
is abi3, and needs Debian's ``python3-cffi-backend``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers

USER_PREFIX = "pyocirl"
SYSTEM_PYTHON = "/usr/bin/python3"
SUB_FILES = ("/etc/subuid", "/etc/subgid")
SUB_SIZE = 65536
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class RootlessUser:
    """The test user and how to run the runtime as them."""

    name: str
    uid: int
    gid: int
    home: Path
    runtime_dir: Path
    subuid: tuple[int, int]  # (start, count)
    subgid: tuple[int, int]
    runtime: list[str]
    pythonpath: str = ""
    made: list[Path] = field(default_factory=list)
    # Set by delegate(): the cgroups the user's commands start in.
    session_cgroups: list[Path] = field(default_factory=list)
    # More of the user's environment (a systemd user session's DBUS_SESSION_BUS_ADDRESS).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The runtime's default state root for this user."""
        name = Path(self.runtime[0]).name
        return self.runtime_dir / ("runc" if name == "runc" else "pyoci")

    def env(self) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": PATH,
               "XDG_RUNTIME_DIR": str(self.runtime_dir), "LANG": "C.UTF-8"}
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        return {**env, **self.extra_env}

    def run(self, argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 60,
            env: dict[str, str] | None = None, check: bool = False,
            stdin: Any = subprocess.DEVNULL,
            tty: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the user, with only the user's environment.

        ``tty``: on a pseudo-terminal of its own (util-linux ``script``), as a user at
        a terminal would; runc wants a controlling terminal for ``terminal: true``.
        """
        if tty:
            argv = ["script", "--quiet", "--return", "--command", shlex.join(argv), "/dev/null"]
        cmd = self.argv(*argv, env=env)
        # Files, not pipes: a detached container keeps its copies of our stdout and
        # stderr open, and a pipe would not see EOF until the container exits.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(cmd, cwd=cwd or self.home, stdout=out, stderr=err,
                                  timeout=timeout, check=False, stdin=stdin)
            out.seek(0)
            err.seek(0)
            res = subprocess.CompletedProcess(
                cmd, proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))
        if check and res.returncode != 0:
            raise helpers.RuntimeCommandError(res.returncode, cmd, res.stdout, res.stderr)
        return res

    def argv(self, *args: str | os.PathLike[str],
             env: dict[str, str] | None = None) -> list[str]:
        """``ARGS`` run as the user with only ``env()`` (plus ``env``), for run() and for
        callers that need a Popen; started in the user's delegated cgroups when there are."""
        full = {**self.env(), **(env or {})}
        cmd = ["runuser", "-u", self.name, "--", "env", "-i",
               *(f"{k}={v}" for k, v in full.items()), *map(os.fspath, args)]
        if self.session_cgroups:
            # Root moves itself into the user's delegated cgroups, then becomes the user:
            # where systemd's user@.service puts a user's session.
            moves = "".join(f"echo $$ > {shlex.quote(str(d))}/cgroup.procs && "
                            for d in self.session_cgroups)
            cmd = ["sh", "-c", f"{moves}exec {shlex.join(cmd)}"]
        return cmd

    def owns_uid(self, uid: int) -> bool:
        """The user's uid or one of its subordinate uids (its containers' processes)."""
        start, count = self.subuid
        return uid == self.uid or start <= uid < start + count

    def runtime_run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """The runtime under test, as the user: ``runtime_run("state", cid)``."""
        return self.run([*self.runtime, *args], **kw)

    def state(self, cid: str, *global_args: str) -> dict[str, Any]:
        res = self.runtime_run(*global_args, "state", cid, check=True)
        return json.loads(res.stdout)

    def bundle(self, template: Path, config: dict[str, Any]) -> Path:
        """A bundle owned by the user: a copy of the rootfs template and ``config``."""
        d = Path(tempfile.mkdtemp(prefix="b-", dir=self.home))
        shutil.copytree(template, d / "rootfs", symlinks=True)
        (d / "config.json").write_text(json.dumps(config, indent=1))
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(d)], check=True)
        return d

    def rootless_config(self, args: Sequence[str], *, terminal: bool = False) -> dict[str, Any]:
        """``spec --rootless`` as the runtime writes it for the user, running ``args``."""
        d = Path(tempfile.mkdtemp(prefix="spec-", dir=self.home))
        subprocess.run(["chown", f"{self.uid}:{self.gid}", str(d)], check=True)
        self.runtime_run("spec", "--rootless", cwd=d, check=True)
        cfg = json.loads((d / "config.json").read_text())
        shutil.rmtree(d)
        cfg["process"]["args"] = list(args)
        cfg["process"]["terminal"] = terminal
        return cfg

    def leftovers(self, root: Path | None = None) -> list[str]:
        root = root or self.root
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def cleanup_containers(self, root: Path | None = None) -> list[str]:
        """Force-delete whatever a test left; return the ids it left."""
        left = self.leftovers(root)
        glob = ["--root", str(root)] if root else []
        for cid in left:
            self.runtime_run(*glob, "delete", "--force", cid, timeout=30)
        return left


def _subrange(path: str, name: str) -> tuple[int, int] | None:
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) == 3 and parts[0] == name:
            return int(parts[1]), int(parts[2])
    return None


def _free_start() -> int:
    """A subordinate range start above every range in use."""
    top = 100000
    for path in SUB_FILES:
        try:
            for line in Path(path).read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    top = max(top, int(parts[1]) + int(parts[2]))
        except FileNotFoundError:
            continue
    return top


def copy_package(base: Path) -> Path:
    """This checkout's pyoci (helper, schemas) copied where any user may read and run it.

    Byte-compiled here, since the user can't write ``__pycache__`` there and
    would otherwise recompile on every call. Returns the directory for PYTHONPATH.
    """
    import pyoci

    lib = base / "lib"
    pkg = Path(pyoci.__file__).resolve().parent
    shutil.copytree(pkg, lib / "pyoci", ignore=shutil.ignore_patterns("__pycache__"))
    if (pkg.parent / "schemas").is_dir():  # a source checkout keeps them beside the package
        shutil.copytree(pkg.parent / "schemas", lib / "schemas")
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(lib)], check=True,
                   capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
    return lib


def _runtime_for_user(tmp: Path) -> tuple[list[str], str]:
    """(argv prefix, PYTHONPATH) that runs the runtime under test as any user."""
    override = os.environ.get(helpers.RUNTIME_ENV)
    if override:
        return [override], ""
    return [SYSTEM_PYTHON, "-m", "pyoci"], str(copy_package(tmp))


def make_user() -> RootlessUser:
    """Create the user and everything it needs; :func:`remove_user` undoes it."""
    name = f"{USER_PREFIX}{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="pyoci-rl-"))
    tmp.chmod(0o755)
    made = [tmp]
    home = tmp / "home"
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh",
                    "--user-group", name], check=True, capture_output=True)
    info = pwd.getpwnam(name)
    ranges = []
    for path, flag in zip(SUB_FILES, ("--add-subuids", "--add-subgids"), strict=True):
        got = _subrange(path, name)
        if got is None:  # useradd adds ranges only when login.defs asks it to
            start = _free_start()
            subprocess.run(["usermod", flag, f"{start}-{start + SUB_SIZE - 1}", name],
                           check=True, capture_output=True)
            got = _subrange(path, name)
            assert got is not None, f"usermod did not add {name} to {path}"
        ranges.append(got)
    runtime_dir = Path(f"/run/user/{info.pw_uid}")
    if runtime_dir.exists():  # someone else's (a removed user's): leave it alone
        runtime_dir = tmp / "xdg"
    runtime_dir.mkdir(parents=True, mode=0o700)
    if runtime_dir.parent != tmp:
        made.append(runtime_dir)
    os.chown(runtime_dir, info.pw_uid, info.pw_gid)
    runtime_dir.chmod(0o700)
    runtime, pythonpath = _runtime_for_user(tmp)
    return RootlessUser(name, info.pw_uid, info.pw_gid, home, runtime_dir, ranges[0], ranges[1],
                        runtime, pythonpath, made)


def _user_pids(user: RootlessUser) -> list[int]:
    """Processes running as the user or as one of its subordinate uids."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if user.owns_uid(proc.stat().st_uid):
                    pids.append(int(proc.name))
    return pids


def remove_user(user: RootlessUser) -> list[str]:
    """Kill what the user left running, then remove the user, its id ranges, runtime dir
    and files; return what went wrong."""
    problems = []
    for _ in range(50):
        pids = _user_pids(user)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    else:
        problems.append(f"processes of {user.name} survive SIGKILL: {_user_pids(user)}")
    res = subprocess.run(["userdel", "--remove", user.name], capture_output=True, text=True,
                         check=False)
    if res.returncode not in (0, 12):  # 12: home not removed (we remove it below)
        problems.append(f"userdel {user.name}: {res.stderr.strip()}")
    for path in SUB_FILES:  # userdel removes them; make sure, touching only our line
        if _subrange(path, user.name) is not None:
            lines = Path(path).read_text().splitlines(keepends=True)
            Path(path).write_text("".join(line for line in lines
                                          if not line.startswith(f"{user.name}:")))
    for p in reversed(user.made):
        subprocess.run(["rm", "-rf", "--one-file-system", str(p)], check=False)
    return problems


def session_user() -> Iterator[RootlessUser]:
    """The body of the session fixture (see test_rootless.py)."""
    user = make_user()
    try:
        yield user
    finally:
        problems = remove_user(user)
        assert not problems, problems


def cgroup_mounts() -> list[tuple[Path, str]]:
    """(mount point, fs type) of every cgroup hierarchy this process sees."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0]
        if fstype in ("cgroup", "cgroup2"):
            out.append((Path(left.split()[4]), fstype))
    return out


@contextlib.contextmanager
def delegate(user: RootlessUser) -> Iterator[str]:
    """A cgroup subtree handed to the user, as systemd's user@.service does; yields
    its path (relative to each hierarchy) for ``linux.cgroupsPath``.

    In each hierarchy: ``<name>`` owned by the user, the user's commands started
    in its ``session`` child (cgroup v2 lets a process move only between cgroups
    whose common ancestor's cgroup.procs it may write, and keeps processes out
    of a cgroup whose controllers are handed down). Removed afterwards.
    """
    name = f"{user.name}-delegated"
    made: list[Path] = []
    session: list[Path] = []
    try:
        for mount, fstype in cgroup_mounts():
            top = mount / name
            top.mkdir()
            made.append(top)
            if (mount / "cpuset.cpus").exists():  # v1 cpuset: empty until filled
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (top / f).write_text((mount / f).read_text())
            if fstype == "cgroup2":  # hand pids and memory down, where the kernel has them
                have = set((mount / "cgroup.controllers").read_text().split())
                for ctrl in sorted(have & {"pids", "memory"}):
                    (mount / "cgroup.subtree_control").write_text(f"+{ctrl}")
                    (top / "cgroup.subtree_control").write_text(f"+{ctrl}")
            (top / "session").mkdir()
            made.append(top / "session")
            if (mount / "cpuset.cpus").exists():
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (top / "session" / f).write_text((top / f).read_text())
            subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(top)], check=True)
            session.append(top / "session")
        user.session_cgroups = session
        yield f"/{name}"
    finally:
        user.session_cgroups = []
        for d in reversed(made):
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                              key=lambda p: len(p.parts), reverse=True):
                sub.rmdir()
            helpers.wait_for(lambda d=d: _rmdir(d), timeout=10)


def _rmdir(d: Path) -> bool:
    try:
        d.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
