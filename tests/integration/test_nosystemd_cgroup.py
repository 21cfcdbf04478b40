"""``--systemd-cgroup`` on a host where systemd is not running (this one, outside the lane).

create must fail with one line naming what is missing, exit 1, and leave nothing:
no state dir, no cgroup, no process.  The lane (tests/vm/test_systemd_lane.py)
covers the driver against a real systemd.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import helpers
import pytest

pytestmark = pytest.mark.integration


def _cgroup_dirs(name: str) -> list[str]:
    res = subprocess.run(["find", "/sys/fs/cgroup", "-name", f"*{name}*"],
                         capture_output=True, text=True, timeout=60)
    return res.stdout.split()


def test_systemd_cgroup_without_systemd_fails_cleanly(make_bundle, pyoci_root: Path) -> None:
    if os.path.exists("/run/systemd/system"):
        pytest.fail("systemd runs here: this test is for hosts without it", pytrace=False)
    cid = helpers.unique_id()
    bundle = make_bundle(["/probe", "sleep", "600"],
                         **{"linux.cgroupsPath": f"machine.slice:pyoci-test:{cid}"})
    res = helpers.run_pyoci("--systemd-cgroup", "create", "--bundle", bundle, cid,
                            root=pyoci_root, timeout=60)
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "systemd" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (pyoci_root / cid).exists()
    assert _cgroup_dirs(cid) == []
    ps = subprocess.run(["pgrep", "-f", str(bundle)], capture_output=True, text=True)
    assert ps.stdout == "", ps.stdout
