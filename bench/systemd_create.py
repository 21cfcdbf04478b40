#!/usr/bin/env python3
"""What ``create`` costs with and without ``--systemd-cgroup``, pyoci beside runc.

Usage (as root, on a host where systemd is PID 1, e.g. inside the systemd lane:
``python3 tests/vm/systemd_lane.py`` runs it after the tests when
``PYOCI_LANE_BENCH=1``)::

    python3 bench/systemd_create.py [--runs N] [--pyoci CMD] [--runc PATH]

Every variant creates the same bundle (static busybox, ``sleep 600``, no
terminal); with the systemd driver ``cgroupsPath`` is
``system.slice:bench:<id>`` (a transient scope), without it ``/bench-<id>``.
The variants take turns run by run; only ``create`` is timed (wall clock
around the process), ``delete --force`` is not. Prints the medians in ms.
Must not import pyoci.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSYBOX = "/bin/busybox"


def bundle(root: Path) -> Path:
    b = root / "bundle"
    (b / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, b / "rootfs" / "bin" / "busybox")
    for d in ("proc", "sys", "dev", "tmp"):
        (b / "rootfs" / d).mkdir()
    subprocess.run(["/usr/sbin/runc", "spec", "--bundle", str(b)], check=True)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/busybox", "sleep", "600"]
    cfg["root"]["readonly"] = True
    cfg["ociVersion"] = "1.0.2"
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def set_cgroups_path(b: Path, path: str) -> None:
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["cgroupsPath"] = path
    (b / "config.json").write_text(json.dumps(cfg))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pyoci", default=shutil.which("pyoci") or "pyoci",
                    help="pyoci's command (split like a shell would: 'python3 -m pyoci')")
    ap.add_argument("--runc", default="/usr/sbin/runc")
    args = ap.parse_args(argv)
    if not os.path.isdir("/run/systemd/system"):
        print("systemd is not PID 1 here", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sdbench-"))
    try:
        b = bundle(work)
        variants = []
        for name, cmd in (("pyoci", shlex.split(args.pyoci)), ("runc", [args.runc])):
            root = work / f"root-{name}"
            for sd in (False, True):
                extra = ["--systemd-cgroup"] if sd else []
                variants.append((f"{name}{' --systemd-cgroup' if sd else ''}",
                                 [*cmd, "--root", str(root), *extra], sd))
        times: dict[str, list[float]] = {v[0]: [] for v in variants}
        for i in range(args.runs + 1):  # the first round warms caches, untimed
            order = variants if i % 2 == 0 else variants[::-1]
            for label, cmd, sd in order:
                cid = f"sdb{i}{abs(hash(label)) % 10000}"
                set_cgroups_path(b, f"system.slice:bench:{cid}" if sd else f"/bench-{cid}")
                # Not pipes: the container's init inherits create's stdio and would hold them.
                with open(work / "err", "w+") as err:
                    t0 = time.monotonic()
                    rc = subprocess.run([*cmd, "create", "--bundle", str(b), cid], cwd=b,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err).returncode
                    dt = time.monotonic() - t0
                    err.seek(0)
                    msg = err.read().strip()
                subprocess.run([*cmd, "delete", "--force", cid], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                if rc != 0:
                    print(f"{label}: create failed: {msg}", file=sys.stderr)
                    return 1
                if i:
                    times[label].append(dt * 1000)
        load = os.getloadavg()[0]
        print(f"create, median of {args.runs} (ms; load {load:.1f}; "
              f"{os.uname().release}, systemd as PID 1):")
        print("| runtime | cgroupfs | --systemd-cgroup | difference |")
        print("|---|---:|---:|---:|")
        for name in ("pyoci", "runc"):
            plain = statistics.median(times[name])
            sd = statistics.median(times[f"{name} --systemd-cgroup"])
            print(f"| {name} | {plain:.0f} | {sd:.0f} | {sd - plain:+.0f} |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
