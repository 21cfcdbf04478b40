"""Many runtimes at once: distinct containers, one contested id, one container hammered.

Threads only drive subprocesses (``pyoci`` is a separate process each time),
so the GIL doesn't serialise the runtime; 16 workers keep both cores busy.
"""

from __future__ import annotations

import json
import marshal
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import helpers
import reliability_helpers as rh

PARALLEL = rh.env_int("PYOCI_CONCURRENCY_LIFECYCLES", 100)
WORKERS = 16
STATUSES = {"creating", "created", "running", "paused", "stopped"}


def _run_all(fns: list[Callable[[], Any]], workers: int = WORKERS) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda f: f(), fns))


def test_parallel_lifecycles(make_bundle: Any, pyoci_root: Path) -> None:
    """100 ``run``s of ``/probe exit 0`` from one bundle: all succeed, nothing remains."""
    bundle = make_bundle(rh.CREATE_ARGS)
    ids = [rh.new_id("par") for _ in range(PARALLEL)]
    snap = rh.Snapshot(pyoci_root)

    def lifecycle(cid: str) -> Any:
        return rh.pyoci("run", "--bundle", bundle, cid, root=pyoci_root, timeout=120)

    results = _run_all([lambda c=c: lifecycle(c) for c in ids])
    failed = [rh.describe(r) for r in results if r.returncode != 0]
    assert failed == [], f"{len(failed)}/{len(ids)} failed; first:\n{failed[0]}"
    assert snap.problems(ids=ids, bundles=[bundle]) == []


def test_same_id_from_eight_processes(make_bundle: Any, pyoci_root: Path) -> None:
    """Exactly one ``create`` wins; the rest say the id exists, and leave nothing."""
    bundle = make_bundle(["/probe", "sleep", "inf"])
    cid = rh.new_id("same")
    snap = rh.Snapshot(pyoci_root)
    gate = threading.Barrier(8)

    def create() -> Any:
        gate.wait()
        return rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root)

    results = _run_all([create] * 8, workers=8)
    winners = [r for r in results if r.returncode == 0]
    losers = [r for r in results if r.returncode != 0]
    try:
        assert len(winners) == 1, "\n".join(rh.describe(r) for r in results)
        for r in losers:
            assert rh.error_problems(r) == [], rh.describe(r)
            assert "container with given ID already exists" in r.stderr, rh.describe(r)
        assert helpers.state(cid, pyoci_root)["status"] == "created"
    finally:
        rh.force_delete(cid, pyoci_root)
    assert snap.problems(ids=[cid], bundles=[bundle]) == []


def _check_output(verb: str, res: Any) -> list[str]:
    """Problems with one command's result in the free-for-all below."""
    if "Traceback" in res.stderr:
        return [f"{verb}: traceback\n{rh.describe(res)}"]
    if res.returncode != 0:
        problems = rh.error_problems(res, exit_code=None)
        return [f"{verb}: {problems}\n{rh.describe(res)}"] if problems else []
    if verb == "state":
        try:
            st = json.loads(res.stdout)
        except ValueError:
            return [f"state: invalid JSON\n{rh.describe(res)}"]
        if st.get("status") not in STATUSES:
            return [f"state: bad status {st.get('status')!r}\n{rh.describe(res)}"]
    return []


def test_kill_delete_state_free_for_all(make_bundle: Any, pyoci_root: Path) -> None:
    """Many threads kill, delete and query one container until it is gone.

    Each round starts a fresh container; ``state`` must print valid JSON or
    ``container does not exist``; nothing may crash, and once the dust settles
    the container is entirely gone.
    """
    bundle = make_bundle(["/probe", "sleep", "inf"])
    snap = rh.Snapshot(pyoci_root)
    ops = [("state",), ("state",), ("state",), ("kill", "KILL"), ("kill", "TERM"),
           ("kill", "--all", "KILL"), ("delete",), ("delete", "--force"), ("start",)]
    problems: list[str] = []
    ids = []
    for round_no in range(3):
        cid = rh.new_id(f"ffa{round_no}")
        ids.append(cid)
        rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
        if round_no:
            rh.pyoci("start", cid, root=pyoci_root, check=True)
        rng = random.Random(round_no)
        plan = [rng.choice(ops) for _ in range(48)]

        def one(op: tuple[str, ...], cid: str = cid) -> list[str]:
            args = [*op[:1], *op[1:-1], cid, *op[-1:]] if op[0] == "kill" else [*op, cid]
            res = rh.pyoci(*args, root=pyoci_root)
            out = _check_output(op[0], res)
            if op[0] == "state" and res.returncode != 0 and \
                    "container does not exist" not in res.stderr:
                out.append(f"state failed other than 'does not exist'\n{rh.describe(res)}")
            return out

        for found in _run_all([lambda o=o: one(o) for o in plan]):
            problems += found
        rh.force_delete(cid, pyoci_root)
    assert problems == [], "\n\n".join(problems[:5])
    assert snap.problems(ids=ids, bundles=[bundle]) == []


def test_readers_never_see_partial_state(make_bundle: Any, pyoci_root: Path) -> None:
    """``state`` and raw reads of the state record and config.json while pause/resume/update run."""
    bundle = make_bundle(["/probe", "sleep", "inf"])
    cid = rh.new_id("rd")
    snap = rh.Snapshot(pyoci_root)
    rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
    rh.pyoci("start", cid, root=pyoci_root, check=True)
    state_dir = pyoci_root / cid
    stop = threading.Event()
    problems: list[str] = []
    counts = {"writes": 0, "cli_reads": 0, "raw_reads": 0}

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            for args in (["pause", cid], ["resume", cid],
                         ["update", "--pids-limit", str(100 + i % 50), cid],
                         ["update", "--memory", f"{64 + i % 8}m", cid]):
                res = rh.pyoci(*args, root=pyoci_root)
                if res.returncode != 0:
                    problems.append(f"writer: {rh.describe(res)}")
                counts["writes"] += 1

    def cli_reader() -> None:
        while not stop.is_set():
            res = rh.pyoci("state", cid, root=pyoci_root)
            problems.extend(_check_output("state", res))
            if res.returncode != 0:
                problems.append(f"state of a live container failed\n{rh.describe(res)}")
            elif json.loads(res.stdout)["status"] not in ("running", "paused"):
                problems.append(f"unexpected status\n{rh.describe(res)}")
            counts["cli_reads"] += 1

    def raw_reader() -> None:
        while not stop.is_set():
            for name, parse in (("state.marshal", marshal.loads), ("config.json", json.loads)):
                data = (state_dir / name).read_bytes()
                try:
                    parse(data)
                except (ValueError, EOFError):
                    problems.append(f"partial {name}: {data[:200]!r}")
                counts["raw_reads"] += 1

    threads = [threading.Thread(target=f) for f in
               (writer, cli_reader, cli_reader, cli_reader, raw_reader)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not problems:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
        rh.pyoci("resume", cid, root=pyoci_root)
        rh.force_delete(cid, pyoci_root)
    assert problems == [], "\n\n".join(problems[:5])
    assert counts["writes"] > 0 and counts["cli_reads"] > 0 and counts["raw_reads"] > 0, counts
    assert snap.problems(ids=[cid], bundles=[bundle]) == []


def test_concurrent_force_deletes_all_succeed(make_bundle: Any, pyoci_root: Path) -> None:
    """Eight ``delete --force`` of one container: all exit 0, as for a missing id.

    ``delete --force`` of an id that doesn't exist succeeds (runc's rule, and
    containerd relies on it), so losing the race to another delete must too.
    """
    bundle = make_bundle(["/probe", "sleep", "inf"])
    snap = rh.Snapshot(pyoci_root)
    ids, failures = [], []
    for round_no in range(3):
        cid = rh.new_id(f"del{round_no}")
        ids.append(cid)
        rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
        gate = threading.Barrier(8)

        def delete(cid: str = cid, gate: threading.Barrier = gate) -> Any:
            gate.wait()
            return rh.pyoci("delete", "--force", cid, root=pyoci_root)

        failures += [rh.describe(r) for r in _run_all([delete] * 8, workers=8)
                     if r.returncode != 0]
        rh.force_delete(cid, pyoci_root)
    assert failures == [], f"{len(failures)}/24 force deletes failed; first:\n{failures[0]}"
    assert snap.problems(ids=ids, bundles=[bundle]) == []


def test_delete_racing_a_locking_command(make_bundle: Any, pyoci_root: Path) -> None:
    """``delete --force`` while other commands take the container's lock.

    Every locking verb (start, pause, resume, update, delete) begins with
    ``open(<id>/lock, O_CREAT)``. A thread here makes that same call in a loop,
    standing in for a stream of such commands, while ``delete --force`` runs:
    the delete must still succeed and leave no directory that would block
    re-creating the id.
    """
    bundle = make_bundle(["/probe", "sleep", "inf"])
    snap = rh.Snapshot(pyoci_root)
    ids, failures = [], []
    for round_no in range(8):
        cid = rh.new_id(f"lk{round_no}")
        ids.append(cid)
        rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
        stop = threading.Event()
        lock_path = pyoci_root / cid / "lock"

        def open_lock(lock_path: Path = lock_path, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    os.close(os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
                except (FileNotFoundError, NotADirectoryError):
                    pass

        t = threading.Thread(target=open_lock)
        t.start()
        try:
            res = rh.pyoci("delete", "--force", cid, root=pyoci_root)
        finally:
            stop.set()
            t.join()
        if res.returncode != 0:
            failures.append(rh.describe(res))
        left = rh.state_dirs(pyoci_root)
        if left:
            failures.append(f"round {round_no}: left under --root: {left}")
            again = rh.pyoci("create", "--bundle", bundle, cid, root=pyoci_root)
            failures.append(f"  re-create of the id: exit {again.returncode} "
                            f"{again.stderr.strip()}")
            for d in left:
                rh.force_delete(d, pyoci_root)
        rh.force_delete(cid, pyoci_root)
    assert failures == [], "\n".join(failures)
    assert snap.problems(ids=ids, bundles=[bundle]) == []
