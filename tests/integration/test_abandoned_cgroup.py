"""A create killed half-way through making its cgroup directories: `delete --force`
still finds and removes them through the recorded intent (pyoci/create.py)."""

from __future__ import annotations

import os
from pathlib import Path

import helpers
import pytest

from pyoci.cgroups import manager_for
from pyoci.state.store import Store

pytestmark = pytest.mark.integration


def test_partial_cgroup_is_removed(pyoci_root: Path) -> None:
    cid = helpers.unique_id()
    intent = manager_for(None, cid).to_state()
    paths = list(intent["paths"].values())
    made = paths[len(paths) // 2]  # only one hierarchy got its directory
    os.makedirs(made)
    (pyoci_root / cid).mkdir(mode=0o711)
    Store(str(pyoci_root)).save(cid, {
        "ociVersion": "1.3.0", "id": cid, "pid": 0, "status": "creating", "bundle": "/",
        "rootfs": "/", "created": "", "owner": "", "annotations": {}, "cgroup": None,
        "cgroup_intent": intent, "hooks": {}, "pidns": True,
    })
    try:
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
        assert not os.path.exists(made)
        assert not (pyoci_root / cid).exists()
    finally:
        if os.path.isdir(made):
            os.rmdir(made)
