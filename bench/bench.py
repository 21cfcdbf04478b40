#!/usr/bin/env python3
"""Side-by-side start-up benchmark: pyoci against runc (and crun where it runs).

Usage: python bench/bench.py [--runs N] [--runtimes pyoci,runc,crun] [--out FILE]

Every runtime runs the same busybox bundle (``/bin/true``, no terminal). For
each operation the runtimes take turns run by run, first in the given order,
then in the reverse order. Each timed process is started with posix_spawn and
reaped with ``os.wait4``: wall time is measured around spawn + wait, CPU time is
the user + system time that ``wait4`` reports for the child and every
descendant it waited for. Setup (creating the container a ``start`` needs, and
so on) uses the same runtime and is not timed. See bench/README.md.

Runs as root. Must not be imported by pyoci; imports nothing from it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
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

OPS = ("run", "create", "start", "state", "kill", "delete")
LEAN_OPS = ("state", "start", "kill", "delete")
FLOOR_TARGET = 1.25
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
            rt = Runtime(name, [path], note="hugetlb bound to cgroup v1 in a private mount ns")
        else:
            # Not comparable: crun without any cgroup work. Needs a mount namespace in
            # which /sys/fs/cgroup is a pure cgroup2 mount, or crun rejects the host.
            probe = "mount -t cgroup2 none /sys/fs/cgroup"
            rt = Runtime(
                name,
                [path],
                globals_=["--cgroup-manager=disabled"],
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

    @property
    def cpu(self) -> float:
        return self.user + self.sys


class Failed(Exception):
    pass


def timed(rt: Runtime, argv: list[str]) -> Sample:
    """Spawn ``argv``, wait for it with wait4; wall and CPU time of it and its waited children."""
    err = tempfile.TemporaryFile()
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
    ]
    NS.enter(rt.mnt_ns)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    finally:
        NS.leave(rt.mnt_ns)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err.seek(0)
        raise Failed(f"{' '.join(argv[-3:])}: exit {code}: {err.read().decode().strip()}")
    err.close()
    return Sample(t1 - t0, ru.ru_utime, ru.ru_stime)


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


# --------------------------------------------------------------------------- operations


class Bench:
    def __init__(self, bundle: str) -> None:
        self.bundle = bundle
        self.serial = 0
        self.token = os.urandom(3).hex()  # so leftovers can be told apart from others'
        self.ids: dict[str, set[str]] = {}

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

    def measure(self, rt: Runtime, op: str) -> Sample:
        cid = self.new_id(rt, op)
        try:
            if op == "run":
                return timed(rt, rt.cmd("run", "--bundle", self.bundle, cid))
            if op == "create":
                return timed(rt, rt.cmd("create", "--bundle", self.bundle, cid))
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


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="runs per op, per order (default 20)")
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

    global NS
    NS = Namespaces()
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")

    python = script_interpreter(pyoci_script())
    work = Path(tempfile.mkdtemp(prefix="pyoci-bench-"))
    runtimes: list[Runtime] = []
    bench: Bench | None = None
    t_start = time.monotonic()
    try:
        bundle = build_bundle(work / "bundle", python)
        bench = Bench(bundle)
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

        results: dict[str, tuple[dict, list, list]] = {}
        for op in ops:
            who = [n for n in live if op in by_name[n].ops]
            if not who:
                continue
            results[op] = alternate(who, a.runs, lambda n, op=op: bench.measure(by_name[n], op), op)

        floor_cmds = {
            "python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
            "python -c pass": [python, "-c", "pass"],
        }
        plain = Runtime("floor", [])
        floor = alternate(list(floor_cmds), a.runs, lambda n: timed(plain, floor_cmds[n]), "floor")
        elapsed = time.monotonic() - t_start
        report = render(a.runs, runtimes, results, floor, python, elapsed)
    finally:
        notes = bench.cleanup(runtimes) if bench is not None else []
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


def render(
    runs: int,
    runtimes: list[Runtime],
    results: dict[str, tuple[dict, list, list]],
    floor: tuple[dict, list, list],
    python: str,
    elapsed: float,
) -> str:
    live = [rt.name for rt in runtimes if rt.ops]
    base = "runc" if "runc" in live else None
    lines = [
        f"## pyoci start-up benchmark ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} CPUs, {runs} runs per op per order, {elapsed:.0f} s)",
        "",
        "Bundle: busybox, `/bin/true`, terminal false. Medians over both orders; ratios are the "
        "geometric mean of the per-order median ratios. CPU = user + sys of the runtime process "
        "and the children it waited for (wait4).",
        "",
        "| op | runtime | wall ms | CPU ms | user ms | sys ms | wall / runc | CPU / runc | n |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    errors: list[str] = []
    for op, (merged, per_order, errs) in results.items():
        errors += [f"{op}: {e}" for e in errs]
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
    if lean:
        lines += [
            "",
            f"pyoci CPU median / `python -I -S -c pass` CPU median "
            f"(target ≤ {FLOOR_TARGET}×; `python -c pass` is {site_cpu / floor_cpu:.2f}× alone):",
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
