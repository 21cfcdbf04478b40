"""Run the upstream runtime-tools validation programs against a runtime.

The programs are built outside this repository (see conformance/README.md):
each ``validation/<name>/<name>.t`` unpacks ``rootfs-amd64.tar.gz`` and copies
``runtimetest`` from the *current directory*, so they run from the suite root.
Each program prints TAP; this script runs them one by one with a timeout,
parses the top-level TAP lines (YAML diagnostic blocks are indented and
skipped, except that a block carrying an ``error`` key that is not attached to
a test line counts as a failure: the lifecycle programs such as ``poststart``
report their verdict that way and plan ``1..0``), then compares the failing
programs with ``runtime_tools_known_failures.toml``.

Usage::

    sudo python3 conformance/runtime_tools.py --suite-root /tmp/runtime-tools \\
        --runtime "$(command -v pyoci)" [--programs DIR] [--timeout 120] [NAME...]

Exit status: 0 when every failure is a known failure for this runtime, 1 when
there are unexpected failures, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
KNOWN_FAILURES = HERE / "runtime_tools_known_failures.toml"

_TEST = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$")
_PLAN = re.compile(r"^1\.\.(\d+)")
_SKIP = re.compile(r"#\s*skip\b", re.IGNORECASE)
_TODO = re.compile(r"#\s*todo\b", re.IGNORECASE)


@dataclass
class Result:
    """What one validation program reported."""

    name: str
    plan: int | None = None
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)   # orphan YAML `error` diagnostics
    failed_tests: list[int] = field(default_factory=list)
    failed_names: list[str] = field(default_factory=list)
    crashed: str = ""                                  # "timeout", "exit 2", "bail out", ...
    exited_zero: bool = False
    seconds: float = 0.0
    output: str = ""

    @property
    def counted(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def ok(self) -> bool:
        """Fully passing: no failure, no orphan error, no crash, and the plan was met."""
        if self.crashed or self.failed or self.errors:
            return False
        if self.plan is None:
            # Some programs (process_rlimits_fail) print no TAP at all and report only
            # through their exit status.
            return self.exited_zero and self.counted == 0
        return self.counted == self.plan

    @property
    def status(self) -> str:
        if self.crashed:
            return "CRASH" if self.crashed != "timeout" else "TIMEOUT"
        return "PASS" if self.ok else "FAIL"


def parse_tap(name: str, text: str) -> Result:
    """Parse TAP 13 from a runtime-tools program.

    Only unindented lines are TAP; YAML blocks (``  ---`` ... ``  ...``) are
    JSON in this suite. The first block after a test line belongs to it; any
    other block with an ``error`` key is an orphan failure.
    """
    res = Result(name=name, output=text)
    lines = text.splitlines()
    i = 0
    attached = False  # the next YAML block belongs to the test line just seen
    while i < len(lines):
        line = lines[i]
        if line.startswith("  ---"):
            j = i + 1
            body = []
            while j < len(lines) and not lines[j].startswith("  ..."):
                body.append(lines[j])
                j += 1
            if not attached:
                try:
                    diag = json.loads("\n".join(body))
                except ValueError:
                    diag = {}
                if isinstance(diag, dict) and diag.get("error"):
                    res.errors.append(str(diag["error"]).splitlines()[0])
            attached = False
            i = j + 1
            continue
        m = _TEST.match(line)
        if m:
            attached = True
            desc = m.group(3)
            if _SKIP.search(desc):
                res.skipped += 1
            elif m.group(1) == "ok" or _TODO.search(desc):
                res.passed += 1
            else:
                res.failed += 1
                res.failed_tests.append(int(m.group(2) or res.counted))
                res.failed_names.append(desc)
        elif (p := _PLAN.match(line)) is not None:
            # Several programs print more than one TAP stream (linux_cgroups_cpus runs
            # a second, empty one): the plans add up.
            res.plan = (res.plan or 0) + int(p.group(1))
            attached = False
        elif line.startswith("Bail out!"):
            res.crashed = "bail out: " + line[len("Bail out!"):].strip()
        i += 1
    return res


def run_program(path: Path, name: str, suite_root: Path, runtime: str,
                timeout: float) -> Result:
    """Run one program from the suite root with ``RUNTIME`` set; kill its group on timeout."""
    env = dict(os.environ, RUNTIME=runtime)
    start = time.monotonic()
    proc = subprocess.Popen([str(path)], cwd=suite_root, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    res = parse_tap(name, out.decode(errors="replace"))
    res.seconds = time.monotonic() - start
    res.exited_zero = not timed_out and proc.returncode == 0
    if timed_out:
        res.crashed = "timeout"
    elif proc.returncode != 0 and not res.crashed:
        res.crashed = f"exit {proc.returncode}"
    return res


def discover(programs: Path) -> dict[str, Path]:
    """``name -> program`` for ``DIR/<name>/<name>.t`` or flat ``DIR/<name>.t``."""
    found: dict[str, Path] = {}
    for p in sorted(programs.glob("*/*.t")) + sorted(programs.glob("*.t")):
        if p.is_file() and os.access(p, os.X_OK):
            found.setdefault(p.stem, p)
    return found


def runtime_name(runtime: str) -> str:
    """The name the known-failures file uses: pyoci, runc or crun (the basename)."""
    return Path(runtime).name


def load_known(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open("rb") as f:
        return list(tomllib.load(f).get("failure", []))


def known_for(known: list[dict], program: str, runtime: str) -> list[dict]:
    return [k for k in known if k.get("program") == program
            and runtime in k.get("runtimes", [runtime])]


def classify(res: Result, entries: list[dict]) -> str:
    """``pass``, ``known`` (every failure covered), ``unexpected`` or ``fixed?``."""
    if res.ok:
        return "fixed?" if entries else "pass"
    if not entries:
        return "unexpected"
    whole = [k for k in entries if not k.get("tests")]
    if whole:
        return "known"
    covered = {t for k in entries for t in k["tests"]}
    if res.crashed or res.errors or not set(res.failed_tests) <= covered:
        return "unexpected"
    return "known"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite-root", type=Path, required=True,
                    help="runtime-tools checkout holding rootfs-amd64.tar.gz and runtimetest")
    ap.add_argument("--programs", type=Path,
                    help="directory of built programs (default: SUITE_ROOT/validation)")
    ap.add_argument("--runtime", default=shutil.which("pyoci") or "pyoci",
                    help="runtime binary, passed as RUNTIME (default: pyoci on PATH)")
    ap.add_argument("--name", help="runtime name for the known-failures file "
                    "(default: the binary's basename)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per program")
    ap.add_argument("--known-failures", type=Path, default=KNOWN_FAILURES)
    ap.add_argument("--json", type=Path, help="write per-program results here")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the TAP output of failing programs")
    ap.add_argument("only", nargs="*", help="program names to run (default: all)")
    args = ap.parse_args(argv)

    suite = args.suite_root.resolve()
    for need in ("runtimetest", "rootfs-amd64.tar.gz"):
        if not (suite / need).exists():
            print(f"runtime_tools: {suite / need}: missing (build with "
                  "'make runtimetest validation-executables')", file=sys.stderr)
            return 2
    programs = discover((args.programs or suite / "validation").resolve())
    if args.only:
        missing = [n for n in args.only if n not in programs]
        if missing:
            print(f"runtime_tools: no such program: {', '.join(missing)}", file=sys.stderr)
            return 2
        programs = {n: programs[n] for n in args.only}
    if not programs:
        print("runtime_tools: no validation programs found", file=sys.stderr)
        return 2
    runtime = shutil.which(args.runtime) or args.runtime
    rname = args.name or runtime_name(runtime)
    known = load_known(args.known_failures)

    results: list[tuple[Result, str, list[dict]]] = []
    width = max(map(len, programs))
    print(f"runtime-tools validation: {len(programs)} programs, RUNTIME={runtime} ({rname})")
    for name, path in programs.items():
        res = run_program(path, name, suite, runtime, args.timeout)
        entries = known_for(known, name, rname)
        verdict = classify(res, entries)
        results.append((res, verdict, entries))
        plan = "?" if res.plan is None else str(res.plan)
        extra = ""
        if res.crashed:
            extra += f" [{res.crashed}]"
        if res.errors:
            extra += f" [error: {res.errors[0][:70]}]"
        if res.failed_tests:
            extra += f" not-ok={','.join(map(str, res.failed_tests[:12]))}"
        if verdict == "known":
            extra += f"  (known: {entries[0].get('category', '')})"
        print(f"{name:<{width}}  {res.status:<7} {verdict:<10} plan={plan:>4} "
              f"pass={res.passed:<4} fail={res.failed:<3} skip={res.skipped:<4} "
              f"{res.seconds:5.1f}s{extra}", flush=True)
        if args.verbose and not res.ok:
            print("\n".join("    | " + ln for ln in res.output.splitlines()[:200]))

    n = len(results)
    tot = {k: sum(getattr(r, k) for r, _, _ in results) for k in ("passed", "failed", "skipped")}
    full = sum(r.ok for r, _, _ in results)
    crashed = sum(bool(r.crashed) for r, _, _ in results)
    orphan = sum(len(r.errors) for r, _, _ in results)
    unexpected = [r.name for r, v, _ in results if v == "unexpected"]
    fixed = [r.name for r, v, _ in results if v == "fixed?"]
    print(f"\ntotals: tests passed={tot['passed']} failed={tot['failed']} "
          f"skipped={tot['skipped']} lifecycle-errors={orphan} crashed/timed-out={crashed}")
    print(f"programs fully passing: {full}/{n}")
    print(f"known failures: {sum(v == 'known' for _, v, _ in results)}, "
          f"unexpected: {len(unexpected)}{' ' + ' '.join(unexpected) if unexpected else ''}")
    if fixed:
        print(f"listed as known but passing now (update the file): {' '.join(fixed)}")
    if args.json:
        args.json.write_text(json.dumps([
            {"program": r.name, "status": r.status, "verdict": v, "plan": r.plan,
             "passed": r.passed, "failed": r.failed, "skipped": r.skipped,
             "failed_tests": r.failed_tests, "failed_names": r.failed_names,
             "errors": r.errors, "crashed": r.crashed,
             "seconds": round(r.seconds, 2)} for r, v, _ in results], indent=1) + "\n")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
