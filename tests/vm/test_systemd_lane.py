"""Boot the systemd lane VM (systemd as PID 1) and fail when the tests inside it fail.

See tests/vm/systemd_lane.py. One boot runs every ``tests/integration/test_systemd*.py``
(marked ``systemdlane``, deselected on the host). Needs root, qemu-system-x86,
linux-image-amd64, busybox-static, systemd and dbus; a missing one is a failure.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import systemd_lane
import vm_lane

pytestmark = [pytest.mark.vm]

LANE_TIMEOUT = 1500.0  # systemd, podman and containerd under TCG on a shared machine


def test_systemd_lane(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the systemd lane needs root (it exports / to the VM over 9p)", pytrace=False)
    try:
        res = systemd_lane.run_lane(timeout=LANE_TIMEOUT, workdir=tmp_path)
    except vm_lane.LaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    tail = res.pytest_output[-12000:]
    print(f"systemd lane: boot {res.boot_s}s, total {res.total_s:.1f}s, pytest rc={res.rc}")
    print(tail)
    assert res.rc is not None, f"the VM reported no result; console:\n{res.output[-6000:]}"
    assert res.rc == 0, f"tests failed inside the systemd lane (pytest rc={res.rc}):\n{tail}"
    assert not re.search(r"SKIPPED", tail), tail
    assert re.search(r"\d+ passed", tail), tail
