"""Containers that share a cgroup parent: each one owns its leaf, never its siblings.

Seen on a fresh machine: the first container to make a shared parent (``/pyoci``,
podman's ``/libpod_parent``) recorded it as its own and, on delete, walked it into its
siblings' cgroups (removing an empty one about to receive its pid, or waiting 19 s on a
busy one and failing). Every check here looks in every cgroup hierarchy the host mounts.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest


def _hierarchies() -> list[Path]:
    """Every cgroup (v1) and cgroup2 mount point of this host."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            out.append(Path(fields[4]))
    return out


def _dirs(rel: str) -> list[Path]:
    return [h / rel.lstrip("/") for h in _hierarchies()]


def _remove_tree(rel: str) -> None:
    """Test cleanup: rmdir ``rel`` and everything below it, in every hierarchy."""
    for top in _dirs(rel):
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            d.rmdir()
        top.rmdir()


@pytest.fixture
def parent() -> Iterator[str]:
    """A fresh parent cgroup path that no hierarchy has yet; removed afterwards."""
    rel = f"/pyoci-sib-{uuid.uuid4().hex[:10]}"
    yield rel
    _remove_tree(rel)


def _sleeper(make_bundle: Any, cgroups_path: str) -> Path:
    return make_bundle(["/probe", "sleep", "inf"], **{"linux.cgroupsPath": cgroups_path})


def _start(make_bundle: Any, root: Path, cgroups_path: str) -> str:
    cid, _ = ch.create(_sleeper(make_bundle, cgroups_path), root)
    helpers.run_pyoci("start", cid, root=root, check=True)
    return cid


def _assert_running_in(cid: str, root: Path, cgroups_path: str) -> None:
    st = helpers.state(cid, root)
    assert st["status"] == "running", st
    for d in _dirs(cgroups_path):
        assert d.is_dir(), f"{d} was removed under a running container"
        assert str(st["pid"]) in (d / "cgroup.procs").read_text().split(), d


def test_delete_leaves_the_sibling_that_shares_the_parent(
        make_bundle: Any, pyoci_root: Path, parent: str) -> None:
    """A (which made the parent) is deleted while B runs: B keeps its cgroup, A's is gone."""
    a = _start(make_bundle, pyoci_root, f"{parent}/a")
    b = None
    try:
        b = _start(make_bundle, pyoci_root, f"{parent}/b")
        res = helpers.run_pyoci("delete", "--force", a, root=pyoci_root, timeout=30)
        assert res.returncode == 0, res.stderr
        assert [d for d in _dirs(f"{parent}/a") if d.exists()] == []
        _assert_running_in(b, pyoci_root, f"{parent}/b")
        # The parent is still in use by B, so it stays.
        assert all(d.is_dir() for d in _dirs(parent))
    finally:
        ch.force_delete(a, pyoci_root)
        if b:
            ch.force_delete(b, pyoci_root)


def test_delete_one_while_twenty_siblings_run(
        make_bundle: Any, pyoci_root: Path, parent: str) -> None:
    first = _start(make_bundle, pyoci_root, f"{parent}/first")
    siblings: list[str] = []
    try:
        with ThreadPoolExecutor(4) as pool:
            siblings = list(pool.map(
                lambda i: _start(make_bundle, pyoci_root, f"{parent}/s{i}"), range(20)))
        res = helpers.run_pyoci("delete", "--force", first, root=pyoci_root, timeout=30)
        assert res.returncode == 0, res.stderr
        assert [d for d in _dirs(f"{parent}/first") if d.exists()] == []
        for i, cid in enumerate(siblings):
            _assert_running_in(cid, pyoci_root, f"{parent}/s{i}")
    finally:
        for cid in [first, *siblings]:
            ch.force_delete(cid, pyoci_root)
    # Each sibling removed its own leaf; what is left of the parent is empty.
    for d in _dirs(parent):
        assert not d.exists() or [p for p in d.iterdir() if p.is_dir()] == [], d


def test_creates_and_deletes_racing_under_a_new_parent(
        make_bundle: Any, pyoci_root: Path, parent: str) -> None:
    """Lifecycles under a parent that each create may make and each delete may remove.

    One container's ``rmdir`` of the (momentarily empty) parent races another's
    ``mkdir`` of its leaf inside it; the create must make the parent again, not fail.
    """
    bundles = {i: make_bundle(["/probe", "exit", "0"], **{"linux.cgroupsPath": f"{parent}/r{i}"})
               for i in range(8)}
    failures: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for n in range(6):
            cid = f"{helpers.unique_id()}-{i}-{n}"
            res = helpers.run_pyoci("run", "--bundle", bundles[i], cid, root=pyoci_root,
                                    timeout=60)
            if res.returncode != 0:
                with lock:
                    failures.append(f"{cid}: {res.returncode} {res.stderr.strip()}")
                ch.force_delete(cid, pyoci_root)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert failures == []
    assert ch.container_dirs(pyoci_root) == []
    for i in range(8):
        assert [d for d in _dirs(f"{parent}/r{i}") if d.exists()] == []


def test_pre_existing_leaf_is_the_containers_and_goes_at_delete(
        make_bundle: Any, pyoci_root: Path, parent: str) -> None:
    """As in runc and crun: a leaf left with limits in it would break the next container."""
    leaf = f"{parent}/leaf"
    for d in _dirs(leaf):
        d.mkdir(parents=True)
    memory = Path("/sys/fs/cgroup/memory") / leaf.lstrip("/")
    (memory / "memory.limit_in_bytes").write_text(str(64 << 20))
    cid = _start(make_bundle, pyoci_root, leaf)
    try:
        _assert_running_in(cid, pyoci_root, leaf)
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
        assert [d for d in _dirs(leaf) if d.exists()] == []
        # pyoci didn't make the parent: it stays.
        assert all(d.is_dir() for d in _dirs(parent))
    finally:
        ch.force_delete(cid, pyoci_root)


def test_frozen_leaf_is_refused_not_hung(
        make_bundle: Any, pyoci_root: Path, parent: str) -> None:
    """runc: ``container's cgroup unexpectedly frozen``; the init must not wait in the freezer."""
    leaf = f"{parent}/frozen"
    for d in _dirs(leaf):
        d.mkdir(parents=True)
    freezer = Path("/sys/fs/cgroup/freezer") / leaf.lstrip("/")
    (freezer / "freezer.state").write_text("FROZEN")
    bundle = _sleeper(make_bundle, leaf)
    cid = helpers.unique_id()
    try:
        res = helpers.run_pyoci("run", "-d", "--bundle", bundle, cid, root=pyoci_root, timeout=30)
        assert res.returncode != 0
        ch.assert_one_line_error(res, "container's cgroup unexpectedly frozen")
        ch.assert_nothing_left(pyoci_root, cid)
        assert helpers.run_pyoci("state", cid, root=pyoci_root).returncode != 0
        # Nothing of the container runs in the frozen leaf (it would be stuck there).
        for d in _dirs(leaf):
            assert not d.exists() or (d / "cgroup.procs").read_text() == "", d
    finally:
        if freezer.is_dir():
            (freezer / "freezer.state").write_text("THAWED")
        ch.force_delete(cid, pyoci_root)


def test_frozen_parent_is_refused(make_bundle: Any, pyoci_root: Path, parent: str) -> None:
    """A leaf under a frozen parent starts frozen too."""
    freezer = Path("/sys/fs/cgroup/freezer") / parent.lstrip("/")
    for d in _dirs(parent):
        d.mkdir(parents=True)
    (freezer / "freezer.state").write_text("FROZEN")
    cid = helpers.unique_id()
    try:
        res = helpers.run_pyoci("run", "-d", "--bundle", _sleeper(make_bundle, f"{parent}/c"),
                                cid, root=pyoci_root, timeout=30)
        assert res.returncode != 0
        ch.assert_one_line_error(res, "container's cgroup unexpectedly frozen")
        ch.assert_nothing_left(pyoci_root, cid)
    finally:
        (freezer / "freezer.state").write_text("THAWED")
        ch.force_delete(cid, pyoci_root)

