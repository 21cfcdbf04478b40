"""`pyoci state` from a plain `pip install .`, against a bare interpreter start.

    sudo python3 bench/pip_state.py [--runs N] [--tree DIR] [--venv DIR | --python EXE]

Makes a fresh venv (or uses ``--python``'s install: a system install), runs
``pip install <tree>`` in it, nothing else, creates one container ``x`` with
the installed ``pyoci`` (the demo busybox bundle, ``/bin/true``), then times
``pyoci --root R state x`` and ``python -I -S -c pass`` of the same
interpreter, alternating, and prints the medians (wall and CPU of the child)
and their ratio. Run as root (create needs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = Path(__file__).resolve().parents[1]


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall, child CPU) seconds of one run, output discarded."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"},
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {status}")
    return wall, ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--tree", default=str(TREE))
    ap.add_argument("--venv", help="where to make the fresh venv (default: a temp dir)")
    ap.add_argument("--python", help="install into this interpreter instead (a system install)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyoci-pipbench-"))
    if args.python:
        python = args.python
        scripts = subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('scripts'))"],
            text=True).strip()
    else:
        venv = Path(args.venv or work / "venv")
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python, scripts = str(venv / "bin" / "python"), str(venv / "bin")
    subprocess.run([python, "-m", "pip", "install", "-q", args.tree], check=True, cwd=work)
    pyoci = f"{scripts}/pyoci"
    root = work / "root"
    bundle = work / "bundle"
    subprocess.run([python, "-m", "pyoci.demo", str(bundle)], check=True, capture_output=True)
    subprocess.run([pyoci, "--root", str(root), "create", "--bundle", str(bundle), "x"],
                   check=True)
    try:
        state = [pyoci, "--root", str(root), "state", "x"]
        bare = [python, "-I", "-S", "-c", "pass"]
        for _ in range(10):  # warm the page cache and the .pyc files
            timed(state), timed(bare)
        samples: dict[str, list[tuple[float, float]]] = {"state": [], "bare": []}
        for i in range(args.runs):
            order = (("state", state), ("bare", bare)) if i % 2 else (("bare", bare),
                                                                      ("state", state))
            for name, argv in order:
                samples[name].append(timed(argv))
    finally:
        subprocess.run([pyoci, "--root", str(root), "delete", "--force", "x"], check=False)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in samples.items()}
    print(f"script: {pyoci}\nfirst line: {Path(pyoci).read_text().splitlines()[0]}")
    print(f"runs: {args.runs} each, alternating; load average {os.getloadavg()[0]:.2f}")
    print("| command | wall median (ms) | CPU median (ms) |\n|---|---:|---:|")
    for k, label in (("bare", "`python -I -S -c pass`"), ("state", "`pyoci state x`")):
        print(f"| {label} | {med[k][0] * 1e3:.2f} | {med[k][1] * 1e3:.2f} |")
    print(f"ratio state/bare: wall {med['state'][0] / med['bare'][0]:.2f}x, "
          f"CPU {med['state'][1] / med['bare'][1]:.2f}x")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
