"""A config without a mount namespace inherits the runtime's (config-linux.md
"Namespaces": an unlisted type is inherited); the host's mounts are never touched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


def _no_mount_ns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                  if n["type"] != "mount"]


def test_inherits_the_mount_namespace_and_is_chrooted(make_bundle: Any,
                                                      pyoci_root: Path) -> None:
    mounts_before = Path("/proc/self/mountinfo").read_text()
    bundle = make_bundle(["/probe", "sleep", "inf"], mutate=_no_mount_ns)
    cid = helpers.unique_id()
    res = helpers.run_pyoci("create", "--bundle", bundle, cid, root=pyoci_root)
    assert res.returncode == 0, res.stderr
    try:
        # the config's mounts (proc, /dev tmpfs, ...) are reported, not applied to the host
        assert "mounts: not applied: the container has no mount namespace" in res.stderr
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        pid = helpers.state(cid, pyoci_root)["pid"]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        assert os.readlink(f"/proc/{pid}/root") == str((bundle / "rootfs").resolve())
        assert Path("/proc/self/mountinfo").read_text() == mounts_before
    finally:
        ch.force_delete(cid, pyoci_root)
