"""A runtime killed at any point: ``delete --force`` still leaves a clean machine.

``PYOCI_FAULT=<point>`` (pyoci/faults.py) makes whichever process reaches the
point SIGKILL itself, as an OOM kill or a caller's timeout would. After each,
the container is force-deleted and the machine must hold nothing of it: no
state dir, no cgroup dir in any hierarchy, no mount of the bundle, no process
whose cgroup or command line names the id. ``start`` faults must also leave a
container that a second ``start`` runs.

``PYOCI_CRASH_KILLS`` (default 20) sets how many random external SIGKILLs of
``create`` the last test makes.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import helpers
import pytest
import reliability_helpers as rh

from pyoci.faults import POINTS

KILLS = rh.env_int("PYOCI_CRASH_KILLS", 20)
CREATE_POINTS = [p for p in POINTS if p.startswith("create:")]


def _fault_env(point: str) -> dict[str, str]:
    return {**os.environ, "PYOCI_FAULT": point}


def _hook_config(tmp_path: Path) -> Any:
    """A createRuntime hook, so that create reaches the create:hooks point."""
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\ncat >/dev/null\n")
    script.chmod(0o755)

    def mutate(cfg: dict[str, Any]) -> None:
        cfg["hooks"] = {"createRuntime": [{"path": str(script)}]}
    return mutate


def _assert_faulted(res: subprocess.CompletedProcess[str], point: str) -> None:
    """The command died at the point (SIGKILL) or reported the child's death cleanly."""
    assert res.returncode != 0, f"{point} was never reached\n{rh.describe(res)}"
    assert "Traceback" not in res.stderr, rh.describe(res)
    if res.returncode > 0:
        assert rh.error_problems(res) == [], rh.describe(res)


def _assert_deleted_clean(cid: str, root: Path, bundle: Path, snap: rh.Snapshot) -> None:
    res = rh.force_delete(cid, root)
    assert res.returncode == 0, rh.describe(res)
    assert snap.problems(ids=[cid], bundles=[bundle]) == []
    listed = rh.pyoci("list", "-q", root=root, check=True).stdout.split()
    assert cid not in listed


@pytest.mark.parametrize("point", CREATE_POINTS)
def test_create_fault(point: str, make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    mutate = _hook_config(tmp_path) if point == "create:hooks" else None
    bundle = make_bundle(["/probe", "sleep", "inf"], mutate=mutate)
    cid = rh.new_id("cf")
    snap = rh.Snapshot(pyoci_root)
    res = rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, env=_fault_env(point))
    _assert_faulted(res, point)
    _assert_deleted_clean(cid, pyoci_root, bundle, snap)


@pytest.mark.parametrize("point", ["start:before-fifo", "start:after-fifo"])
def test_start_fault_then_start_again(point: str, make_bundle: Any, pyoci_root: Path,
                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def mount_out(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                              "options": ["rbind"]})
    bundle = make_bundle(["/bin/sh", "-c", "echo started > /out/mark; exec /probe sleep inf"],
                         mutate=mount_out)
    cid = rh.new_id("sf")
    snap = rh.Snapshot(pyoci_root)
    rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
    try:
        res = rh.pyoci("start", cid, root=pyoci_root, env=_fault_env(point))
        _assert_faulted(res, point)
        assert not (out / "mark").exists(), "the process ran although start was killed"
        assert helpers.state(cid, pyoci_root)["status"] == "created"
        rh.pyoci("start", cid, root=pyoci_root, check=True)
        helpers.wait_for(lambda: (out / "mark").exists(), what="the container process to run")
        assert helpers.state(cid, pyoci_root)["status"] == "running"
    finally:
        rh.force_delete(cid, pyoci_root)
    _assert_deleted_clean(cid, pyoci_root, bundle, snap)


def test_exec_fault(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    cid = rh.new_id("xf")
    snap = rh.Snapshot(pyoci_root)
    rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
    try:
        rh.pyoci("start", cid, root=pyoci_root, check=True)
        res = rh.pyoci("exec", cid, "/probe", "sleep", "inf", root=pyoci_root,
                       env=_fault_env("exec:forked"))
        _assert_faulted(res, "exec:forked")
        assert helpers.state(cid, pyoci_root)["status"] == "running"
        again = rh.pyoci("exec", cid, "/probe", "echo", "ok", root=pyoci_root, check=True)
        assert again.stdout.strip() == "ok"
    finally:
        rh.force_delete(cid, pyoci_root)
    _assert_deleted_clean(cid, pyoci_root, bundle, snap)


@pytest.mark.parametrize("point", ["delete:killed", "delete:cgroup"])
def test_delete_fault(point: str, make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    cid = rh.new_id("df")
    snap = rh.Snapshot(pyoci_root)
    rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
    rh.pyoci("start", cid, root=pyoci_root, check=True)
    res = rh.pyoci("delete", "--force", cid, root=pyoci_root, env=_fault_env(point))
    _assert_faulted(res, point)
    _assert_deleted_clean(cid, pyoci_root, bundle, snap)


def test_random_sigkill_of_create(make_bundle: Any, pyoci_root: Path) -> None:
    """``create`` SIGKILLed from outside after a random few ms, again and again."""
    bundle = make_bundle(["/probe", "sleep", "inf"])
    rng = random.Random(os.environ.get("PYOCI_CRASH_SEED", "20"))
    cmd = [*helpers.runtime_command(), "--root", str(pyoci_root), "create", "--bundle",
           str(bundle)]
    # Calibrate: how long does a whole create take here? Kill within that span.
    cid = rh.new_id("cal")
    t0 = time.monotonic()
    rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
    span = time.monotonic() - t0
    rh.force_delete(cid, pyoci_root)
    failures = []
    for i in range(KILLS):
        cid = rh.new_id(f"k{i}")
        snap = rh.Snapshot(pyoci_root)
        delay = rng.uniform(0, span)
        with open(os.devnull, "wb") as null:
            proc = subprocess.Popen([*cmd, cid], stdin=subprocess.DEVNULL, stdout=null,
                                    stderr=null)
            time.sleep(delay)
            proc.kill()
            proc.wait()
        res = rh.force_delete(cid, pyoci_root)
        if res.returncode != 0:
            failures.append(f"kill after {delay * 1000:.0f} ms: {rh.describe(res)}")
        leaks = snap.problems(ids=[cid], bundles=[bundle])
        if leaks:
            failures.append(f"kill after {delay * 1000:.0f} ms: {leaks}")
            for d in rh.state_dirs(pyoci_root):  # keep later rounds independent
                rh.force_delete(d, pyoci_root)
    assert failures == [], "\n".join(failures)
