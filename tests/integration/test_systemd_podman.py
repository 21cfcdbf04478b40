"""podman with ``cgroup_manager = "systemd"`` and containerd with SystemdCgroup, on pyoci.

Marked ``systemdlane`` (run inside tests/vm/test_systemd_lane.py's VM, where
systemd is PID 1). podman then calls the runtime with ``--systemd-cgroup`` and
``cgroupsPath`` ``machine.slice:libpod:<id>``; ``ctr --runc-systemd-cgroup``
does the same through containerd's runc shim.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import containerd_env
import helpers
import podman_env
from containerd_env import IMAGE as CTD_IMAGE
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


def journal(unit: str) -> str:
    return subprocess.run(["journalctl", "--no-pager", "-n", "40", "-u", unit],
                          capture_output=True, text=True, timeout=60).stdout


def test_podman_sdnotify_container_under_systemd_run(pm: PodmanEnv, tmp_path: Path) -> None:
    """A Type=notify unit running ``podman run --sdnotify=container`` turns active only
    when the container sends READY=1 (relayed by the runtime, then by podman)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    name = f"sdn-{helpers.unique_id()}"
    unit = f"{name}.service"
    env = pm.env()
    cmd = ["systemd-run", "--no-block", "--unit", name, "--collect",
           "-p", "Type=notify", "-p", "NotifyAccess=all", "-p", "TimeoutStartSec=600",
           *(f"--setenv={k}={env[k]}" for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF",
                                                 "PATH")),
           "podman", "run", "--rm", "--name", name, "--network", "none",
           "--sdnotify=container", "--runtime", os.fspath(pm.runtime),
           "-v", f"{shared}:/shared", IMAGE, "/probe", "notify", "/shared/go", "READY=1"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def running() -> bool:
        state = show(unit, "ActiveState").get("ActiveState")
        assert state in ("activating", "active"), f"{unit} is {state}:\n{journal(unit)}"
        return pm.podman("inspect", "--format", "{{.State.Status}}", name,
                         timeout=120).stdout.strip() == "running"

    try:
        helpers.wait_for(running, 300, interval=1, what="the container to run")
        cid = pm.inspect(name, "{{.Id}}")
        assert show(f"libpod-{cid}.scope", "ActiveState")["ActiveState"] == "active"
        assert show(unit, "ActiveState")["ActiveState"] == "activating"
        (shared / "go").touch()
        helpers.wait_for(lambda: show(unit, "ActiveState")["ActiveState"] == "active", 120,
                         interval=0.5, what=f"{unit} to become active")
        conmon = pm.inspect(name, "{{.State.ConmonPid}}")
        assert show(unit, "MainPID")["MainPID"] == conmon
        assert pm.podman("stop", "-t", "2", name, timeout=120).returncode == 0
        helpers.wait_for(lambda: gone(unit) or show(unit, "ActiveState")["ActiveState"]
                         in ("inactive", "failed"), 120, interval=0.5, what=f"{unit} to stop")
    finally:
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=120)
        subprocess.run(["systemctl", "reset-failed", unit], capture_output=True, timeout=60)
        pm.podman("rm", "-f", name, timeout=120)
    assert gone(f"libpod-{cid}.scope")


def test_containerd_systemd_cgroup(rootfs_template: Path) -> None:
    with containerd_env.containerd_env(rootfs_template) as ctd:
        cid = helpers.unique_id()
        unit = f"ctr-{cid}.scope"
        res = ctd.ctr("run", "-d", "--runc-binary", os.fspath(ctd.runtime),
                      "--runc-systemd-cgroup", "--cgroup", f"machine.slice:ctr:{cid}",
                      "--memory-limit", str(32 << 20), CTD_IMAGE, cid, "/probe", "sleep", "600",
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
