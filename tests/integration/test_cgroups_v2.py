"""Resource control on a pure cgroup v2 host, with real containers (``pyoci run``).

These need every controller in one cgroup2 tree, which this project's hybrid
host doesn't have, so they carry the ``v2lane`` marker: the default run
deselects them (tests/vm/conftest.py) and tests/vm/test_v2_lane.py runs them
inside a VM that mounts only cgroup2 (``-m v2lane``).  Run on a non-v2 host
by hand they skip with that reason; inside the lane (PYOCI_V2_LANE=1) a
non-v2 host is a failure, so a broken VM setup can't pass quietly.

The v1 counterparts of the file checks are in test_cgroups_manager.py, which
the lane runs too, so the same resource semantics are checked on both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
import test_events

import pyoci.cgroups as cg
from pyoci.cgroups import convert
from pyoci.cgroups.base import CGROUP_ROOT

MODE = cg.detect()
MiB = 1024 * 1024

pytestmark = [pytest.mark.v2lane]


@pytest.fixture(autouse=True)
def _needs_v2() -> None:
    if MODE == "v2":
        return
    if os.environ.get("PYOCI_V2_LANE"):
        pytest.fail(f"the v2 lane VM came up with cgroup mode {MODE!r}, not v2", pytrace=False)
    pytest.skip("cgroup v2 only: tests/vm/test_v2_lane.py runs these in a VM (-m vm)")


def _cgdir(cid: str) -> str:
    """Where pyoci puts a container without cgroupsPath: /pyoci/<id> in the v2 tree."""
    return os.path.join(CGROUP_ROOT, cg.PARENT.lstrip("/"), cid)


def _read(cid: str, name: str) -> str:
    return Path(_cgdir(cid), name).read_text().strip()


def _keyed(cid: str, name: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in _read(cid, name).splitlines() if " " in line)


def _resources(**sections: Any) -> dict[str, Any]:
    """linux.resources with runc's default device policy kept in front."""
    return {"linux.resources": {"devices": [{"allow": False, "access": "rwm"}], **sections}}


@contextlib.contextmanager
def running(
    make_bundle: Callable[..., Path], root: Path, args: list[str], **overrides: Any
) -> Iterator[str]:
    """A detached container (``run -d``), force-deleted on the way out."""
    cid = helpers.unique_id()
    bundle = make_bundle(args, **overrides)
    helpers.run_pyoci("run", "-d", "--bundle", bundle, cid, root=root, check=True)
    try:
        yield cid
    finally:
        helpers.run_pyoci("delete", "--force", cid, root=root, timeout=30)


SLEEP = ["/probe", "sleep", "inf"]


def test_limits_land_in_v2_files_and_delete_removes_the_cgroup(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    res = _resources(memory={"limit": 32 * MiB}, pids={"limit": 10}, cpu={"shares": 512})
    with running(make_bundle, pyoci_root, SLEEP, **res) as cid:
        assert os.path.isdir(_cgdir(cid))
        assert _read(cid, "memory.max") == str(32 * MiB)
        assert _read(cid, "pids.max") == "10"
        assert _read(cid, "cpu.weight") == str(convert.shares_to_weight(512)) == "20"
        pid = helpers.state(cid, pyoci_root)["pid"]
        assert str(pid) in _read(cid, "cgroup.procs").split()
        helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root, check=True)
        helpers.wait_for_status(cid, pyoci_root, "stopped")
        helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
        assert not os.path.exists(_cgdir(cid))


def test_memory_hog_is_oom_killed(make_bundle: Callable[..., Path], pyoci_root: Path) -> None:
    cid = helpers.unique_id()
    res = _resources(memory={"limit": 32 * MiB, "swap": 32 * MiB})
    bundle = make_bundle(["/probe", "hog", "100"], **res)
    try:
        out = helpers.run_pyoci(
            "run", "--keep", "--bundle", bundle, cid, root=pyoci_root, timeout=120
        )
        assert out.returncode == 128 + 9, (out.returncode, out.stdout, out.stderr)
        assert "hog=" not in out.stdout
        assert _read(cid, "memory.swap.max") == "0"
        assert int(_keyed(cid, "memory.events")["oom_kill"]) >= 1
    finally:
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, timeout=30)
    assert not os.path.exists(_cgdir(cid))


def test_events_reports_oom_kill(make_bundle: Callable[..., Path], pyoci_root: Path) -> None:
    """``events`` watches memory.events: the hog's oom_kill arrives as an oom event."""
    test_events.expect_oom_event(make_bundle, pyoci_root)


def test_events_reports_the_oom_that_kills_init(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    test_events.expect_oom_of_init(make_bundle, pyoci_root)


def test_fork_loop_stops_at_pids_max(run_probe: Callable[..., Any]) -> None:
    out = run_probe("forkbomb", "50", **_resources(pids={"limit": 10}))
    assert out.returncode == 0, out.stderr
    got = helpers.parse_kv(out.stdout)
    # pids.max counts the probe itself, so at most 9 children fit.
    assert 0 < int(got["forked"]) < 10, out.stdout
    assert int(got["errno"]) == errno.EAGAIN, out.stdout


def test_cpu_quota_throttles(make_bundle: Callable[..., Path], pyoci_root: Path) -> None:
    spin = ["/bin/sh", "-c", "while :; do :; done"]
    res = _resources(cpu={"quota": 10000, "period": 100000})
    with running(make_bundle, pyoci_root, spin, **res) as cid:
        assert _read(cid, "cpu.max") == "10000 100000"
        stat = helpers.wait_for(
            lambda: (s := _keyed(cid, "cpu.stat")) and int(s["nr_throttled"]) > 0 and s,
            timeout=30,
            what="cpu.stat nr_throttled to grow",
        )
        assert int(stat["nr_periods"]) >= int(stat["nr_throttled"]) > 0


def _device(path: str, major: int, minor: int) -> dict[str, Any]:
    return {
        "path": path,
        "type": "c",
        "major": major,
        "minor": minor,
        "fileMode": 0o666,
        "uid": 0,
        "gid": 0,
    }


def test_device_program_denies_unlisted_device(run_probe: Callable[..., Any]) -> None:
    """/dev/kmsg's numbers (1:11) under another name: the node exists, opening it is EPERM."""
    script = "/probe cat /dev/null && echo null-ok; /probe cat /dev/lanetest"

    def mutate(c: dict[str, Any]) -> None:
        c["process"]["args"] = ["/bin/sh", "-c", script]
        c["linux"].setdefault("devices", []).append(_device("/dev/lanetest", 1, 11))

    out = run_probe(mutate=mutate)
    assert "null-ok" in out.stdout, out.stderr
    assert f"(errno={errno.EPERM})" in out.stderr, out.stderr
    assert out.returncode == 1


def test_device_rule_allows_only_its_access(run_probe: Callable[..., Any]) -> None:
    """A rule "c 1:11 w" lets the container write the device but not read it."""
    script = "/probe write /dev/lanetest pyoci-v2-lane && echo write-ok; /probe cat /dev/lanetest"
    rule = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}

    def mutate(c: dict[str, Any]) -> None:
        c["process"]["args"] = ["/bin/sh", "-c", script]
        c["linux"].setdefault("devices", []).append(_device("/dev/lanetest", 1, 11))
        c["linux"]["resources"]["devices"].append(rule)

    out = run_probe(mutate=mutate)
    assert "write-ok" in out.stdout, out.stderr
    assert f"(errno={errno.EPERM})" in out.stderr, out.stderr


def test_pause_freezes_and_state_says_paused(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    with running(make_bundle, pyoci_root, SLEEP) as cid:
        helpers.run_pyoci("pause", cid, root=pyoci_root, check=True)
        assert _read(cid, "cgroup.freeze") == "1"
        assert _keyed(cid, "cgroup.events")["frozen"] == "1"
        assert helpers.state(cid, pyoci_root)["status"] == "paused"
        helpers.run_pyoci("resume", cid, root=pyoci_root, check=True)
        assert _read(cid, "cgroup.freeze") == "0"
        assert helpers.state(cid, pyoci_root)["status"] == "running"


def test_update_memory_changes_memory_max_and_keeps_devices(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    from pyoci.cgroups import devices_bpf

    with running(make_bundle, pyoci_root, SLEEP, **_resources(memory={"limit": 32 * MiB})) as cid:
        fd = os.open(_cgdir(cid), os.O_RDONLY | os.O_DIRECTORY)
        try:
            before = devices_bpf.attached(fd)
            assert len(before) == 1
            helpers.run_pyoci(
                "update", "--memory", "64m", "--pids-limit", "20", cid, root=pyoci_root, check=True
            )
            assert _read(cid, "memory.max") == str(64 * MiB)
            assert _read(cid, "pids.max") == "20"
            assert devices_bpf.attached(fd) == before  # update leaves device rules alone
        finally:
            os.close(fd)


def test_manager_set_replaces_the_device_program() -> None:
    """A second set() attaches the new program and detaches the old one."""
    from pyoci.cgroups import devices_bpf

    m = cg.manager_for(None, helpers.unique_id())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        m.create({"devices": [{"allow": False, "access": "rwm"}]})
        first = m.device_prog  # type: ignore[attr-defined]
        assert first is not None and "devices" not in m.ignored
        m.set({"devices": [{"allow": True, "access": "rwm"}]})
        second = m.device_prog  # type: ignore[attr-defined]
        fd = os.open(m.dir, os.O_RDONLY | os.O_DIRECTORY)  # type: ignore[attr-defined]
        try:
            assert devices_bpf.attached(fd) == [second] != [first]
        finally:
            os.close(fd)
        assert cg.from_state(m.to_state()).device_prog == second  # type: ignore[attr-defined]
        # Now everything is allowed, /dev/kmsg included.
        p = subprocess.Popen(["head", "-c0", "/dev/kmsg"], preexec_fn=lambda: m.apply(os.getpid()))
        procs.append(p)
        assert p.wait(timeout=30) == 0
        m.set({"devices": []})
        p = subprocess.Popen(
            ["head", "-c0", "/dev/kmsg"],
            preexec_fn=lambda: m.apply(os.getpid()),
            stderr=subprocess.PIPE,
        )
        procs.append(p)
        _, err = p.communicate(timeout=30)
        assert p.returncode != 0 and b"not permitted" in err.lower(), err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        deadline = time.monotonic() + 10
        while m.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        m.destroy()


def test_init_is_cloned_straight_into_its_cgroup(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    """clone3(CLONE_INTO_CGROUP): the init never runs outside its cgroup (no procs write)."""
    from pyoci.state.store import Store

    with running(make_bundle, pyoci_root, SLEEP) as cid:
        state = Store(str(pyoci_root)).load(cid)
        assert state["cgroup_placement"] == "clone3"
        pid = helpers.state(cid, pyoci_root)["pid"]
        assert str(pid) in _read(cid, "cgroup.procs").split()
