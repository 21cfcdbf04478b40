"""Boot the cgroup v2 lane VM and fail when the tests inside it fail.

See tests/vm/vm_lane.py for how the guest is built. Part of the normal
``python3 -m pytest -q tests`` run (the v2lane tests it runs inside are deselected on the host).
Needs root, qemu-system-x86, linux-image-amd64 and busybox-static; a missing
one is a failure with the apt-get line, not a skip.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vm_lane

pytestmark = [pytest.mark.vm]

LANE_TIMEOUT = 1200.0  # TCG; the checkpoint tests (CRIU, podman) take minutes


def test_v2_lane(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the v2 lane needs root (it exports / to the VM over 9p)", pytrace=False)
    try:
        res = vm_lane.run_lane(timeout=LANE_TIMEOUT, workdir=tmp_path)
    except vm_lane.LaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    tail = res.tests_output[-12000:]
    print(f"v2 lane: boot {res.boot_s}s, total {res.total_s:.1f}s, pytest rc={res.rc}")
    print(tail)
    assert res.rc is not None, f"the VM reported no result; console:\n{res.output[-6000:]}"
    assert res.rc == 0, f"tests failed inside the v2 lane (pytest rc={res.rc}):\n{tail}"
    # Nothing meant for v2 may pass by skipping: every v2lane test must have run.
    assert not re.search(r"SKIPPED \[\d+\] tests/integration/test_cgroups_v2\.py", tail), tail
    assert re.search(r"\d+ passed", tail), tail
