"""podman with ``cgroup_manager = "systemd"`` and containerd with SystemdCgroup, on pyoci.

Marked ``systemdlane`` (run inside tests/vm/test_systemd_lane.py's VM, where
systemd is PID 1). podman then calls the runtime with ``--systemd-cgroup`` and
``cgroupsPath`` ``machine.slice:libpod:<id>``; ``ctr --runc-systemd-cgroup``
does the same through containerd's runc shim.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import containerd_env
import helpers
import podman_env
from podman_env import IMAGE, PodmanEnv
from test_systemd_cgroup import gone, proc_cgroup, show

pytestmark = [pytest.mark.systemdlane]


@pytest.fixture(scope="module")
def podman(rootfs_template: Path) -> Iterator[PodmanEnv]:
    if not os.path.isdir("/run/systemd/system"):
        pytest.fail("systemd is not PID 1 here: run tests/vm/test_systemd_lane.py", pytrace=False)
    with podman_env.podman_env(rootfs_template, cgroup_manager="systemd") as env:
        yield env


@pytest.fixture
def pm(podman: PodmanEnv) -> Iterator[PodmanEnv]:
    yield from podman_env.checked(podman)


def test_podman_run_exec_stop_rm(pm: PodmanEnv) -> None:
    res = pm.podman("run", "-d", "--memory", "64m", IMAGE, "/probe", "sleep", "600",
                    runtime=True, timeout=180)
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip().splitlines()[-1]
    unit = f"libpod-{cid}.scope"
    try:
        props = show(unit, "ActiveState", "MemoryMax", "Slice", "Delegate")
        assert props == {"ActiveState": "active", "MemoryMax": str(64 << 20),
                         "Slice": "machine.slice", "Delegate": "yes"}, props
        pid = int(pm.inspect(cid, "{{.State.Pid}}"))
        assert proc_cgroup(pid) == f"/machine.slice/{unit}"
        out = pm.podman("exec", cid, "/probe", "cat", "/sys/fs/cgroup/memory.max",
                        runtime=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == str(64 << 20), out
        assert pm.podman("stop", "-t", "2", cid, timeout=120).returncode == 0
    finally:
        rm = pm.podman("rm", "-f", cid, timeout=120)
    assert rm.returncode == 0, rm.stderr
    assert gone(unit), show(unit, "LoadState", "ActiveState")
    assert not (pm.state_root / cid).exists()


def test_containerd_systemd_cgroup(rootfs_template: Path) -> None:
    with containerd_env.containerd_env(rootfs_template) as ctd:
        cid = helpers.unique_id()
        unit = f"ctr-{cid}.scope"
        res = ctd.ctr("run", "-d", "--runc-binary", os.fspath(ctd.runtime),
                      "--runc-systemd-cgroup", "--cgroup", f"machine.slice:ctr:{cid}",
                      "--memory-limit", str(32 << 20), IMAGE, cid, "/probe", "sleep", "600",
                      timeout=180)
        try:
            assert res.returncode == 0, res.stderr + ctd.log(30)
            props = show(unit, "ActiveState", "MemoryMax")
            assert props == {"ActiveState": "active", "MemoryMax": str(32 << 20)}, props
            pid = ctd.tasks()[cid][0]
            assert proc_cgroup(pid) == f"/machine.slice/{unit}"
        finally:
            ctd.ctr("task", "kill", "-s", "KILL", cid, timeout=60)
            helpers.wait_for(lambda: ctd.tasks().get(cid, (0, ""))[1] in ("STOPPED", ""), 60,
                             what="task to stop")
            ctd.ctr("task", "rm", "-f", cid, timeout=60)
            ctd.ctr("container", "rm", cid, timeout=60)
        assert gone(unit), show(unit, "LoadState", "ActiveState")
