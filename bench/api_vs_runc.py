"""In-process lifecycles through pyoci's Python API, against ``runc run`` from ``subprocess``.

    sudo python3 bench/api_vs_runc.py [--containers 50] [--rounds 4] [--runc /usr/sbin/runc]

One lifecycle: make a busybox ``/bin/true`` container, start it, wait for it,
delete it. The API side does that 50 times with ``pyoci.Runtime`` in this
process (``create``, ``start``, ``wait``, ``delete``: no interpreter start
per step); the runc side runs ``runc run --bundle B id`` 50 times with
``subprocess.run``, which does the same four steps. Each round runs both
batches, in alternating order (API first in even rounds, runc first in odd
ones). CPU is this process's own plus its reaped children's (runc, the
container processes), from ``getrusage``; wall is ``perf_counter``. Both
sides use the same bundle (``python -m pyoci.demo``; ``ociVersion`` 1.0.2 as
bench/bench.py uses), each with its own state root.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyoci
from pyoci.demo import build_bundle


def cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def api_batch(rt: pyoci.Runtime, bundle: str, n: int, tag: str) -> None:
    for i in range(n):
        c = rt.create(f"api-{tag}-{i}", bundle)
        c.start()
        status = c.wait()
        if status != 0:
            raise SystemExit(f"api container exited {status}")
        c.delete()


def runc_batch(runc: str, root: str, bundle: str, n: int, tag: str) -> None:
    for i in range(n):
        subprocess.run([runc, "--root", root, "run", "--bundle", bundle, f"runc-{tag}-{i}"],
                       check=True, stdin=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--runc", default="/usr/sbin/runc")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyoci-apibench-"))
    try:
        bundle = build_bundle(work / "bundle", ["/bin/true"])
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["ociVersion"] = "1.0.2"
        (bundle / "config.json").write_text(json.dumps(cfg))
        rt = pyoci.Runtime(str(work / "pyoci-root"))
        runc_root = str(work / "runc-root")
        n = args.containers
        api_batch(rt, str(bundle), 3, "warm")  # imports, .pyc, page cache
        runc_batch(args.runc, runc_root, str(bundle), 3, "warm")
        res: dict[str, list[tuple[float, float]]] = {"api": [], "runc": []}
        for r in range(args.rounds):
            sides = [("api", lambda r=r: api_batch(rt, str(bundle), n, str(r))),
                     ("runc", lambda r=r: runc_batch(args.runc, runc_root, str(bundle), n, str(r)))]
            for name, batch in sides if r % 2 == 0 else sides[::-1]:
                c0, t0 = cpu(), time.perf_counter()
                batch()
                res[name].append((time.perf_counter() - t0, cpu() - c0))
        print(f"{n} lifecycles per batch (create, start, wait, delete of busybox /bin/true), "
              f"{args.rounds} rounds, alternating order; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
        print("| path | wall per batch, median (s) | CPU per batch, median (s) | "
              "CPU per lifecycle (ms) | each batch: wall / CPU (s) |")
        print("|---|---:|---:|---:|---|")
        for name, label in (("api", "pyoci API, in-process"),
                            ("runc", "`runc run` via subprocess")):
            w = statistics.median(x for x, _ in res[name])
            c = statistics.median(y for _, y in res[name])
            each = ", ".join(f"{x:.2f}/{y:.2f}" for x, y in res[name])
            print(f"| {label} | {w:.3f} | {c:.3f} | {c / n * 1e3:.1f} | {each} |")
        a = statistics.median(y for _, y in res["api"])
        b = statistics.median(y for _, y in res["runc"])
        aw = statistics.median(x for x, _ in res["api"])
        bw = statistics.median(x for x, _ in res["runc"])
        print(f"\nAPI / runc: CPU {a / b:.2f}x, wall {aw / bw:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
