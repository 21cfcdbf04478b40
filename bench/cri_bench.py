"""CRI-level start-up: a pod through containerd's CRI plugin, pyoci vs runc.

    sudo python bench/cri_bench.py [--runs 10] [--out FILE]

Starts the tests' private CRI containerd (tests/integration/cri_env.py: own
config, root, state and socket, CNI bridge + host-local, the locally built
pause image) with the two runtime handlers ``pyoci`` (the README's table,
BinaryName = ``PYOCI_TEST_RUNTIME`` or the installed ``pyoci`` script) and
``runc`` (/usr/sbin/runc), and times, as kubelet would call them:

    RunPodSandbox + CreateContainer + StartContainer  (one container: /probe sleep)

``--runs`` samples per handler (after one untimed warm-up each), handlers
alternating and the order flipping every round; each pod is stopped and removed
untimed after its sample. Prints medians (and each call's median) in markdown,
and the median of the per-round pyoci / runc ratios (less sensitive to load
that comes and goes than the ratio of the medians).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "integration"), str(REPO / "tests"), str(REPO)]

import cri_env  # noqa: E402
import helpers  # noqa: E402

PHASES = ("RunPodSandbox", "CreateContainer", "StartContainer")


def one_pod(env: cri_env.CriEnv, handler: str, i: int) -> dict[str, float]:
    pb = env.client.pb  # type: ignore[union-attr]
    client = env.client
    pod = cri_env.pod_config(env, f"bench-{handler}-{i}")
    config = cri_env.container_config(env, "app", ["/probe", "sleep", "1000"])
    t0 = time.perf_counter()
    sid = cri_env.run_pod(env, pod, handler, timeout=300)
    t1 = time.perf_counter()
    cid = client.CreateContainer(pb.CreateContainerRequest(  # type: ignore[union-attr]
        pod_sandbox_id=sid, config=config, sandbox_config=pod), timeout=300).container_id
    t2 = time.perf_counter()
    client.StartContainer(pb.StartContainerRequest(container_id=cid),  # type: ignore[union-attr]
                          timeout=300)
    t3 = time.perf_counter()
    cri_env.remove_pod(env, sid, pod, timeout=300)
    return {"RunPodSandbox": t1 - t0, "CreateContainer": t2 - t1, "StartContainer": t3 - t2,
            "total": t3 - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("cri_bench: run as root", file=sys.stderr)
        return 1
    from pyoci.demo import build_rootfs

    tmp = Path(tempfile.mkdtemp(prefix="cri-bench-"))
    samples: dict[str, list[dict[str, float]]] = {h: [] for h in cri_env.HANDLERS}
    load0 = os.getloadavg()
    try:
        probe = helpers.build_probe(tmp)
        rootfs = build_rootfs(tmp / "rootfs", extra={"/probe": probe})
        with cri_env.cri_env(rootfs) as env:
            binary = env.runtime
            for h in cri_env.HANDLERS:
                one_pod(env, h, -1)  # warm-up: first use of the snapshots, CNI, shim
            for i in range(args.runs):
                order = cri_env.HANDLERS if i % 2 == 0 else cri_env.HANDLERS[::-1]
                for h in order:
                    samples[h].append(one_pod(env, h, i))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()

    def med(h: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[h]) * 1000

    lines = [
        f"CRI start-up, {time.strftime('%Y-%m-%d %H:%M')}, containerd 1.6 CRI, "
        f"median of {args.runs} per handler; pyoci handler binary: {binary}; "
        f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end.",
        "",
        "| handler | RunPodSandbox ms | CreateContainer ms | StartContainer ms | "
        "total ms | total / runc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for h in cri_env.HANDLERS:
        ratio = med(h, "total") / med("runc", "total")
        lines.append(f"| {h} | " + " | ".join(f"{med(h, k):.0f}" for k in (*PHASES, "total"))
                     + f" | {ratio:.2f}× |")
    # Samples of one round are next to each other in time: their ratio sees the same load.
    paired = statistics.median(a["total"] / b["total"]
                               for a, b in zip(samples["pyoci"], samples["runc"], strict=True))
    lines += ["", f"Median of the per-round ratios pyoci / runc (total): {paired:.2f}×"]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
