"""The systemd cgroup driver (``--systemd-cgroup``) against a real systemd.

Marked ``systemdlane``: tests/vm/test_systemd_lane.py boots a VM with Debian's
systemd as PID 1 and runs these there (the default run deselects them). Each
container's unit is checked with ``systemctl show``: the scope exists with the
configured properties while the container lives, and is gone after delete.
The same tests pass with ``PYOCI_TEST_RUNTIME=/usr/sbin/runc``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import helpers
import pytest

MiB = 1024 * 1024

pytestmark = [pytest.mark.systemdlane]


@pytest.fixture(autouse=True)
def _needs_systemd() -> None:
    if not os.path.isdir("/run/systemd/system"):
        pytest.fail("systemd is not PID 1 here: run tests/vm/test_systemd_lane.py", pytrace=False)


def show(unit: str, *props: str) -> dict[str, str]:
    res = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         capture_output=True, text=True, timeout=60)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def gone(unit: str) -> bool:
    return show(unit, "LoadState")["LoadState"] == "not-found"


def pyoci(*args: str, root: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return helpers.run_pyoci("--systemd-cgroup", *args, root=root, timeout=120, **kw)


def proc_cgroup(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().strip().split("::", 1)[1]


def test_scope_lifecycle(make_bundle, pyoci_root: Path) -> None:
    cid = helpers.unique_id()
    unit = f"pyoci-test-{cid}.scope"
    bundle = make_bundle(
        ["/probe", "sleep", "600"],
        **{"linux.cgroupsPath": f"machine.slice:pyoci-test:{cid}",
           "linux.resources": {"memory": {"limit": 64 * MiB}, "pids": {"limit": 40},
                               "cpu": {"quota": 50000, "period": 100000, "shares": 512}}})
    pyoci("create", "--bundle", str(bundle), cid, root=pyoci_root, check=True)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        props = show(unit, "ActiveState", "MemoryMax", "TasksMax", "Delegate", "Slice",
                     "ControlGroup", "CPUQuotaPerSecUSec", "CPUWeight")
        assert props["ActiveState"] == "active", props
        assert props["MemoryMax"] == str(64 * MiB) and props["TasksMax"] == "40", props
        assert props["Delegate"] == "yes" and props["Slice"] == "machine.slice", props
        assert props["CPUQuotaPerSecUSec"] == "500ms" and props["CPUWeight"] == "20", props
        assert props["ControlGroup"] == f"/machine.slice/{unit}"
        assert proc_cgroup(pid) == f"/machine.slice/{unit}"
        cgdir = Path("/sys/fs/cgroup/machine.slice", unit)
        assert (cgdir / "memory.max").read_text().strip() == str(64 * MiB)
        pyoci("start", cid, root=pyoci_root, check=True)

        # exec lands in the scope; update changes the unit and the files
        out = pyoci("exec", cid, "/probe", "cat", "/proc/self/cgroup", root=pyoci_root,
                    check=True).stdout
        assert out.strip() == "0::/", out  # its own cgroup namespace, rooted at the scope
        pyoci("update", "--memory", str(128 * MiB), "--pids-limit", "60", cid,
              root=pyoci_root, check=True)
        props = show(unit, "MemoryMax", "TasksMax")
        assert props == {"MemoryMax": str(128 * MiB), "TasksMax": "60"}, props
        assert (cgdir / "memory.max").read_text().strip() == str(128 * MiB)
        assert (cgdir / "pids.max").read_text().strip() == "60"

        # pause/resume, ps on the scope
        pyoci("pause", cid, root=pyoci_root, check=True)
        assert helpers.state(cid, pyoci_root)["status"] == "paused"
        assert (cgdir / "cgroup.freeze").read_text().strip() == "1"
        pyoci("resume", cid, root=pyoci_root, check=True)
        assert helpers.state(cid, pyoci_root)["status"] == "running"
        ps = pyoci("ps", "--format", "json", cid, root=pyoci_root, check=True).stdout
        assert str(pid) in ps
        pyoci("kill", "--all", cid, "KILL", root=pyoci_root, check=True)
        helpers.wait_for_status(cid, pyoci_root, "stopped", timeout=60)
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root)
    assert gone(unit), show(unit, "LoadState", "ActiveState")
    assert not Path("/sys/fs/cgroup/machine.slice", unit).exists()


def test_nested_slice_and_annotations(make_bundle, pyoci_root: Path) -> None:
    cid = helpers.unique_id()
    unit = f"lane-{cid}.scope"
    bundle = make_bundle(
        ["/probe", "sleep", "600"],
        **{"linux.cgroupsPath": f"pyoci-lane.slice:lane:{cid}",
           "annotations": {"org.systemd.property.CollectMode": "'inactive-or-failed'",
                           "org.systemd.property.TimeoutStopUSec": "uint64 123456789"}})
    pyoci("create", "--bundle", str(bundle), cid, root=pyoci_root, check=True)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        assert proc_cgroup(pid) == f"/pyoci.slice/pyoci-lane.slice/{unit}"
        props = show(unit, "CollectMode", "TimeoutStopUSec", "Slice")
        assert props == {"CollectMode": "inactive-or-failed",
                         "TimeoutStopUSec": "2min 3.456789s", "Slice": "pyoci-lane.slice"}, props
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root)
    assert gone(unit)


def test_limits_are_enforced(make_bundle, pyoci_root: Path) -> None:
    """A pids limit set through the unit stops a fork bomb; a memory limit OOM-kills."""
    cid = helpers.unique_id()
    bundle = make_bundle(["/probe", "forkbomb", "50"],
                         **{"linux.cgroupsPath": f"machine.slice:pyoci-test:{cid}",
                            "linux.resources": {"pids": {"limit": 10}}})
    res = pyoci("run", "--bundle", str(bundle), cid, root=pyoci_root)
    pyoci("delete", "--force", cid, root=pyoci_root)
    assert "forked" in res.stdout and res.returncode == 0, res
    forked = int(res.stdout.split("forked=", 1)[1].split()[0])
    assert 0 < forked < 10, res.stdout

    cid = helpers.unique_id()
    bundle = make_bundle(["/probe", "hog", "100"],
                         **{"linux.cgroupsPath": f"machine.slice:pyoci-test:{cid}",
                            "linux.resources": {"memory": {"limit": 16 * MiB, "swap": 16 * MiB}}})
    res = pyoci("run", "--bundle", str(bundle), cid, root=pyoci_root)
    pyoci("delete", "--force", cid, root=pyoci_root)
    assert res.returncode == 137, res
    assert gone(f"pyoci-test-{cid}.scope")


def test_default_path_is_a_scope_in_system_slice(make_bundle, pyoci_root: Path) -> None:
    cid = helpers.unique_id()
    bundle = make_bundle(["/probe", "sleep", "600"])
    pyoci("create", "--bundle", str(bundle), cid, root=pyoci_root, check=True)
    try:
        path = proc_cgroup(helpers.state(cid, pyoci_root)["pid"])
        assert path.startswith("/system.slice/") and path.endswith(f"-{cid}.scope"), path
        unit = path.rsplit("/", 1)[1]
        assert show(unit, "ActiveState")["ActiveState"] == "active"
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root)
    assert gone(unit)


def test_device_rules_hold_in_a_scope_and_after_update(make_bundle, pyoci_root: Path) -> None:
    """systemd attaches its own device program to the scope (DevicePolicy/DeviceAllow) and
    pyoci its eBPF one: a rule "c 1:11 w" lets the container write that device, not read
    it, and an ``update`` (SetUnitProperties, after which systemd rebuilds its program)
    keeps it so."""
    import errno

    cid = helpers.unique_id()
    bundle = make_bundle(
        ["/probe", "sleep", "600"],
        **{"linux.cgroupsPath": f"machine.slice:pyoci-test:{cid}",
           "linux.devices": [{"path": "/dev/lanetest", "type": "c", "major": 1, "minor": 11,
                              "fileMode": 0o666, "uid": 0, "gid": 0}],
           "linux.resources": {"devices": [
               {"allow": False, "access": "rwm"},
               {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]}})
    pyoci("create", "--bundle", str(bundle), cid, root=pyoci_root, check=True)
    try:
        pyoci("start", cid, root=pyoci_root, check=True)
        for when in ("after start", "after update"):
            w = pyoci("exec", cid, "/probe", "write", "/dev/lanetest", "x", root=pyoci_root)
            assert w.returncode == 0, (when, w)
            r = pyoci("exec", cid, "/probe", "cat", "/dev/lanetest", root=pyoci_root)
            assert r.returncode != 0 and f"(errno={errno.EPERM})" in r.stderr, (when, r)
            null = pyoci("exec", cid, "/probe", "cat", "/dev/null", root=pyoci_root)
            assert null.returncode == 0, (when, null)
            pyoci("update", "--memory", str(96 * MiB), cid, root=pyoci_root, check=True)
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root)
    assert gone(f"pyoci-test-{cid}.scope")


def test_debug_log_times_the_systemd_steps(make_bundle, pyoci_root: Path, tmp_path: Path) -> None:
    """``--debug`` shows where a systemd create spends its time: the connection, the
    transient unit's job, and the files written after it."""
    cid = helpers.unique_id()
    unit = f"pyoci-test-{cid}.scope"
    bundle = make_bundle(["/probe", "sleep", "600"],
                         **{"linux.cgroupsPath": f"system.slice:pyoci-test:{cid}"})
    log = tmp_path / "debug.log"
    pyoci("--debug", "--log", str(log), "--log-format", "json", "create", "--bundle",
          str(bundle), cid, root=pyoci_root, check=True)
    try:
        import json

        msgs = [json.loads(line)["msg"] for line in log.read_text().splitlines()]
        if Path(os.environ.get(helpers.RUNTIME_ENV, "")).name == "runc":
            assert msgs  # runc words its debug log its own way; the format is shared
            return
        steps = [m for m in msgs if m.startswith("systemd: ")]
        assert steps[0].startswith("systemd: connected to /run/systemd/private"), msgs
        assert steps[1].startswith(f"systemd: start {unit}: job ") and "queued" in steps[1]
        assert steps[2:] == [f"systemd: start {unit}: job done",
                             f"systemd: {unit}: files written, "
                             f"pid {helpers.state(cid, pyoci_root)['pid']} in place"], steps
    finally:
        pyoci("delete", "--force", cid, root=pyoci_root, check=True)
    assert gone(unit)
