"""Leak soak: N lifecycles in a row, and nothing grows.

Half the lifecycles are ``run`` (create, start, wait, delete in one process),
half are ``create`` / ``start`` / ``delete --force`` as podman drives them.
Before and after, it counts what a leak would grow: this process's open fds,
mounts, container cgroup dirs under /sys/fs/cgroup/memory/pyoci, unreaped
zombies (ours or pid 1's) and files under --root.

``PYOCI_SOAK_LIFECYCLES`` (default 100; the long form is 1000) sets N.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import reliability_helpers as rh

LIFECYCLES = rh.env_int("PYOCI_SOAK_LIFECYCLES", 100)
PREFIX = "soak-"
MEMORY_PARENT = rh.CGROUP_ROOT / "memory" / "pyoci"


def _ours_in_memory_cgroup() -> list[str]:
    if not MEMORY_PARENT.is_dir():
        return []
    return sorted(p.name for p in MEMORY_PARENT.iterdir()
                  if p.is_dir() and p.name.startswith(PREFIX))


def _measure(root: Path, bundle: Path) -> dict[str, Any]:
    return {
        "fds": rh.open_fds(),
        # the count of mounts, and the ones that are ours (the host may be shared)
        "mounts": [m for m in rh.mountinfo() if str(bundle) in m or str(root) in m],
        "memory cgroups": _ours_in_memory_cgroup(),
        "zombies": rh.zombies(),
        "files under --root": rh.files_under(root),
    }


def _growth(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counts that went up, and list entries that are new (before, after)."""
    out: dict[str, Any] = {}
    for k, old in before.items():
        new = after[k]
        if isinstance(old, list):
            added = sorted(set(new) - set(old))
            if added:
                out[k] = (len(old), added)
        elif new > old:
            out[k] = (old, new)
    return out


def _lifecycle(i: int, bundle: Path, root: Path) -> list[str]:
    cid = f"{PREFIX}{i}-{rh.new_id('s')}"
    if i % 2:
        steps = [("run", "--bundle", bundle, cid)]
    else:
        steps = [("create", "--bundle", bundle, cid), ("start", cid), ("delete", "--force", cid)]
    for args in steps:
        res = rh.pyoci(*args, root=root)
        if res.returncode != 0:
            rh.force_delete(cid, root)
            return [rh.describe(res)]
    return []


def test_no_growth_over_many_lifecycles(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(rh.CREATE_ARGS)
    assert _lifecycle(0, bundle, pyoci_root) == []  # warm the schema and seccomp caches
    assert _lifecycle(1, bundle, pyoci_root) == []
    before = _measure(pyoci_root, bundle)
    total_mounts = len(rh.mountinfo())
    failures: list[str] = []
    for i in range(2, LIFECYCLES + 2):
        failures += _lifecycle(i, bundle, pyoci_root)
    assert failures == [], f"{len(failures)}/{LIFECYCLES} lifecycles failed; first:\n{failures[0]}"
    # An exited init is an orphan of pid 1, which reaps it when it gets to it (about a
    # second here, longer under load): only a zombie that outlives the wait is a leak.
    suspects: set[str] | None = None
    deadline = time.monotonic() + 15
    while True:
        grown = _growth(before, _measure(pyoci_root, bundle))
        now = set(grown.pop("zombies", (0, []))[1])
        suspects = now if suspects is None else suspects & now
        if suspects:
            grown["zombies"] = sorted(suspects)
        if not grown or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    total = f"(mount table: {total_mounts} lines before, {len(rh.mountinfo())} after)"
    assert grown == {}, f"after {LIFECYCLES} lifecycles (before, after): {grown} {total}"
    assert rh.Snapshot(pyoci_root).problems(bundles=[bundle]) == []
