"""Shared checks for the reliability tests: is the machine as clean as before?

A container leaves traces in five places: its state dir under ``--root``, its
cgroup dirs in every hierarchy, mounts in the host's mount table, processes
(the init and anything it forked), and zombies nobody reaped. ``Snapshot``
records all of them before a test step and ``Snapshot.problems`` lists what
appeared since, so a test can assert ``== []`` and show every leak at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers
from hypothesis.configuration import set_hypothesis_home_dir

# hypothesis keeps caches in ./.hypothesis: keep them out of the work tree
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "pyoci-hypothesis"))

CGROUP_ROOT = Path("/sys/fs/cgroup")
CREATE_ARGS = ["/probe", "exit", "0"]
DEFAULT_TIMEOUT = 60


def env_int(name: str, default: int) -> int:
    """An integer knob from the environment (the long forms documented in README.md)."""
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def new_id(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---- what a container can leave behind ---------------------------------------

def state_dirs(root: Path) -> list[str]:
    """Entries under --root that are not the store's own dotfiles."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def cgroup_dirs() -> set[str]:
    """Every cgroup directory of every hierarchy (a few dozen on a test host)."""
    out: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return out
    for hier in CGROUP_ROOT.iterdir():
        if not hier.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(hier):
            out.add(dirpath)
    return out


def cgroup_dirs_for(cid: str) -> list[str]:
    """The container's default cgroup leaf in each hierarchy (v1, unified, v2)."""
    found = []
    for hier in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        leaf = hier / "pyoci" / cid
        if leaf.is_dir():
            found.append(str(leaf))
    if (CGROUP_ROOT / "pyoci" / cid).is_dir():  # a pure cgroup v2 host
        found.append(str(CGROUP_ROOT / "pyoci" / cid))
    return found


def mountinfo() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def mounts_mentioning(needle: str) -> list[str]:
    return [line for line in mountinfo() if needle in line]


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def stat_fields(pid: int) -> list[str]:
    """Fields after the comm of /proc/PID/stat: [state, ppid, ...]; [] if gone."""
    text = _read(f"/proc/{pid}/stat")
    return text.rsplit(")", 1)[1].split() if ")" in text else []


def processes_mentioning(needles: Iterable[str]) -> list[str]:
    """Live processes whose command line, cgroup, root or cwd mentions a needle.

    The cgroup catches a container process after its exec (its argv no longer
    names the id); root and cwd catch one still inside the bundle's rootfs.
    """
    needles = [n for n in needles if n]
    me = os.getpid()
    out = []
    for pid in pids():
        if pid == me:
            continue
        f = stat_fields(pid)
        if not f or f[0] in ("Z", "X"):
            continue
        cmd = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
        where = {
            "cmdline": cmd,
            "cgroup": _read(f"/proc/{pid}/cgroup"),
            "root": _link(f"/proc/{pid}/root"),
            "cwd": _link(f"/proc/{pid}/cwd"),
        }
        for n in needles:
            hits = [k for k, v in where.items() if n in v]
            if hits:
                out.append(f"pid {pid} ({cmd.strip()[:80]}): {n!r} in {','.join(hits)}")
                break
    return out


OUR_COMMS = ("probe", "sh", "busybox", "pyoci", "python3", "python3.11")


def zombies() -> list[str]:
    """Unreaped zombies that are ours: children of this process, or orphans of ours.

    An orphan is reparented to pid 1, which on a shared host also collects
    other tools' zombies (conmon...); only the container's and runtime's own
    programs count there.
    """
    me = os.getpid()
    out = []
    for pid in pids():
        f = stat_fields(pid)
        if not f or f[0] != "Z":
            continue
        comm = _read(f"/proc/{pid}/comm").strip()
        if int(f[1]) == me or (int(f[1]) == 1 and comm in OUR_COMMS):
            out.append(f"pid {pid} ppid {f[1]} ({comm})")
    return out


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def files_under(root: Path) -> list[str]:
    """Every path under --root, dotfiles included (for the soak test's growth check)."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        out += [os.path.join(dirpath, n) for n in dirs + files]
    return sorted(out)


@dataclass
class Snapshot:
    """The machine before a step; ``problems()`` lists what the step left behind.

    Other work may share the host (podman, other runtimes, other test runs), so
    only new cgroup dirs and processes that name one of ours count: an id, a
    bundle path, or an extra ``needles`` entry such as a fuzzed cgroupsPath.
    """

    root: Path
    needles: Sequence[str] = ()
    cgroups: set[str] = field(default_factory=cgroup_dirs)
    mounts: int = field(default_factory=lambda: len(mountinfo()))

    def problems(self, *, ids: Sequence[str] = (), bundles: Sequence[Path] = (),
                 settle: float = 5.0) -> list[str]:
        """Leaks, after waiting up to ``settle`` s for dying processes to go.

        SIGKILLed processes take a moment to vanish from /proc, and a cgroup
        can't be checked until they have: poll briefly, then report everything.
        """
        deadline = time.monotonic() + settle
        while True:
            found = self._check(ids, bundles)
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def _check(self, ids: Sequence[str], bundles: Sequence[Path]) -> list[str]:
        found = [f"state dir left: {d}" for d in state_dirs(self.root)]
        needles = [n for n in (*self.needles, *ids, *(str(b) for b in bundles)) if n]
        new_cg = sorted(d for d in cgroup_dirs() - self.cgroups
                        if any(n in d for n in needles))
        found += [f"cgroup dir left: {d}" for d in new_cg]
        for cid in ids:
            found += [f"cgroup dir left: {d}" for d in cgroup_dirs_for(cid)
                      if d not in new_cg]
        for b in bundles:
            found += [f"mount left: {m}" for m in mounts_mentioning(str(b))]
        found += [f"process left: {p}" for p in processes_mentioning(needles)]
        return found


# ---- running the runtime -----------------------------------------------------

def pyoci(*args: str | os.PathLike[str], root: Path, timeout: float = DEFAULT_TIMEOUT,
          **kw: Any) -> subprocess.CompletedProcess[str]:
    """``pyoci --root ROOT ARGS``; a hang fails the test with the command line."""
    try:
        return helpers.run_pyoci(*args, root=root, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"hung for {timeout}s: {' '.join(map(str, e.cmd))}\n"
                             f"stderr so far: {e.stderr}") from None


def error_problems(res: subprocess.CompletedProcess[str], *,
                   exit_code: int | None = 1) -> list[str]:
    """What is wrong with a failed command's output, [] if it is a clean error.

    Clean: a non-zero exit (``exit_code`` exactly, unless None), and exactly one
    non-empty stderr line that is neither a traceback nor an ``internal error``
    (the CLI's catch-all for an exception no code path expected).
    """
    out = []
    if res.returncode == 0:
        out.append("exit 0, expected an error")
    elif exit_code is not None and res.returncode != exit_code:
        out.append(f"exit {res.returncode}, expected {exit_code}")
    if "Traceback" in res.stderr:
        out.append("traceback on stderr")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    if len(lines) != 1:
        out.append(f"{len(lines)} stderr lines, expected 1")
    elif "internal error" in lines[0]:
        out.append("unexpected exception reported as 'internal error'")
    return out


def describe(res: subprocess.CompletedProcess[str]) -> str:
    return (f"$ {' '.join(map(str, res.args))}\nexit {res.returncode}\n"
            f"stdout: {res.stdout[-2000:]!r}\nstderr: {res.stderr[-4000:]!r}")


def write_config(bundle: Path, config: Any, raw: bytes | None = None) -> None:
    data = raw if raw is not None else (json.dumps(config) + "\n").encode()
    (bundle / "config.json").write_bytes(data)


def force_delete(cid: str, root: Path) -> subprocess.CompletedProcess[str]:
    return pyoci("delete", "--force", cid, root=root, timeout=30)
