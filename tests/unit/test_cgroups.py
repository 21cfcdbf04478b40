"""Unit tests for pyoci.cgroups: path rules, conversions, resource writes, state.

No root and no cgroup filesystem: control files are plain files in a tmp
directory, and writes are recorded by replacing ``write_file`` in the backend
modules (a recording fake, like youki's), since a regular file can't mimic the
kernel's one-value-per-write parsing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import pyoci.cgroups as cg
from pyoci.cgroups import base, convert, mounts, v1, v2
from pyoci.cgroups.hybrid import HybridManager
from pyoci.cgroups.none import NoneManager
from pyoci.errors import CgroupError

# -- path rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "cid", "want"),
    [
        (None, "abc", "/pyoci/abc"),
        ("", "abc", "/pyoci/abc"),
        ("/machine/abc", "x", "/machine/abc"),
        ("/machine/abc/", "x", "/machine/abc"),
        ("//a//b", "x", "/a/b"),
        ("/a/../b", "x", "/b"),
        ("/../../etc", "x", "/etc"),
        ("rel/abc", "x", "/pyoci/rel/abc"),
        ("../../escape", "x", "/pyoci/escape"),
        ("a:b", "x", "/pyoci/a:b"),
    ],
)
def test_cgroup_path_rules(given: str | None, cid: str, want: str) -> None:
    assert cg.cgroup_path(given, cid) == want


@pytest.mark.parametrize("given", ["system.slice:docker:abc", "machine.slice:libpod:x", "::x"])
def test_systemd_style_paths_are_rejected(given: str) -> None:
    with pytest.raises(CgroupError, match="systemd"):
        cg.cgroup_path(given, "x")


@pytest.mark.parametrize(("given", "cid"), [("/", "x"), ("/..", "x"), (None, "."), ("..", "x")])
def test_paths_naming_no_cgroup_are_rejected(given: str | None, cid: str) -> None:
    with pytest.raises(CgroupError, match="names no cgroup"):
        cg.cgroup_path(given, cid)


@pytest.mark.parametrize(
    ("given", "cid", "want"),
    [
        (None, "abc", "/user/deleg/abc"),
        ("rel/abc", "x", "/user/deleg/rel/abc"),
        ("../../escape", "x", "/user/deleg/escape"),
        ("/elsewhere/abc", "x", "/elsewhere/abc"),
    ],
)
def test_relative_paths_go_under_the_given_base(given: str | None, cid: str, want: str) -> None:
    assert cg.cgroup_path(given, cid, "/user/deleg") == want
    with pytest.raises(CgroupError, match="names no cgroup"):
        cg.cgroup_path("..", cid, "/user/deleg")


@pytest.mark.parametrize(
    ("own", "want"),
    [("0::/user/deleg/session\n", "/user/deleg"), ("0::/session\n", "/"), ("0::/\n", "/")],
)
def test_rootless_base_is_the_parent_of_the_callers_v2_cgroup(
    tmp_path: Path, own: str, want: str
) -> None:
    f = tmp_path / "cgroup"
    f.write_text("12:pids:/x\n" + own)
    assert cg.rootless_base(str(f)) == want
    f.write_text("12:pids:/x\n")
    with pytest.raises(CgroupError, match="no cgroup v2 entry"):
        cg.rootless_base(str(f))


def test_systemd_flag_gives_a_systemd_manager() -> None:
    m = cg.manager_for("machine.slice:libpod:abc", "x", "v2", systemd=True)
    assert m.path == "/machine.slice/libpod-abc.scope"
    assert m.to_state()["systemd"] == {"slice": "machine.slice", "unit": "libpod-abc.scope"}
    assert type(cg.from_state(m.to_state())).__name__ == "SystemdManager"


# -- conversions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "weight"), [(0, 0), (2, 1), (1024, 39), (512, 20), (262144, 10000), (1, 1)]
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize(("w", "want"), [(0, 0), (10, 1), (1000, 10000), (500, 4950), (5, 1)])
def test_blkio_weight_to_io_weight(w: int, want: int) -> None:
    assert convert.blkio_weight_to_io_weight(w) == want


@pytest.mark.parametrize(
    ("quota", "period", "want"),
    [
        (None, None, None),
        (0, 0, None),
        (50000, 100000, "50000 100000"),
        (-1, 100000, "max 100000"),
        (20000, None, "20000"),
        (None, 250000, "max 250000"),
    ],
)
def test_cpu_max(quota: int | None, period: int | None, want: str | None) -> None:
    assert convert.cpu_max(quota, period) == want


@pytest.mark.parametrize(
    ("swap", "limit", "want"),
    [
        (None, None, None),
        (None, -1, -1),
        (-1, 100, -1),
        (300, 100, 200),
        (100, 100, 0),
        (None, 100, None),
    ],
)
def test_swap_to_v2(swap: int | None, limit: int | None, want: int | None) -> None:
    assert convert.swap_to_v2(swap, limit) == want


def test_swap_to_v2_errors() -> None:
    with pytest.raises(CgroupError, match="requires a memory limit"):
        convert.swap_to_v2(100, None)
    with pytest.raises(CgroupError, match=">= memory limit"):
        convert.swap_to_v2(50, 100)


@pytest.mark.parametrize(("limit", "want"), [(None, None), (0, None), (-1, "max"), (10, "10")])
def test_pids_text(limit: int | None, want: str | None) -> None:
    assert convert.pids_text(limit) == want


@pytest.mark.parametrize(
    ("rule", "want"),
    [
        ({"allow": False, "access": "rwm"}, ["a"]),
        ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}, ["c 1:3 rw"]),
        ({"allow": True, "type": "b", "major": 8, "access": "r"}, ["b 8:* r"]),
        ({"allow": True, "type": "a", "major": 10, "access": "rwm"}, ["c 10:* rwm", "b 10:* rwm"]),
        ({"allow": True, "type": "a", "access": "m"}, ["c *:* m", "b *:* m"]),
        ({"allow": True, "type": "c"}, ["c *:* rwm"]),
    ],
)
def test_v1_device_lines(rule: dict, want: list[str]) -> None:
    assert convert.v1_device_lines(rule) == want


@pytest.mark.parametrize("rule", [{"type": "x"}, {"type": "c", "access": "rwx"}])
def test_bad_device_rules(rule: dict) -> None:
    with pytest.raises(CgroupError):
        convert.device_rule(rule)


# -- mountinfo ---------------------------------------------------------------

MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
"""


def test_parse_mountinfo() -> None:
    m = mounts.parse_mountinfo(MOUNTINFO_HYBRID)
    assert m.v1["cpu"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
    assert m.v1["cpuacct"] == m.v1["cpu"]
    assert m.v1["cpuset"] == ("/sys/fs/cgroup/cpuset", "/")
    assert m.v1["name=systemd"] == ("/sys/fs/cgroup/systemd", "/")
    assert "xattr" not in m.v1 and "clone_children" not in m.v1
    assert m.v2 == ("/sys/fs/cgroup/unified", "/")
    assert m.fstype_at["/sys/fs/cgroup"] == "tmpfs"
    assert m.fstype_at["/mnt/with space"] == "ext4"


def test_hierarchy_dir() -> None:
    assert mounts.hierarchy_dir(("/sys/fs/cgroup/cpu", "/"), "/pyoci/x") == (
        "/sys/fs/cgroup/cpu/pyoci/x"
    )
    assert mounts.hierarchy_dir(("/sys/fs/cgroup/memory", "/docker/abc"), "/docker/abc/x") == (
        "/sys/fs/cgroup/memory/x"
    )
    assert mounts.hierarchy_dir(("/sys/fs/cgroup/memory", "/docker/abc"), "/pyoci/x") == (
        "/sys/fs/cgroup/memory/pyoci/x"
    )
    assert mounts.hierarchy_dir(("/sys/fs/cgroup", "/"), "/") == "/sys/fs/cgroup"


def test_detect_returns_a_known_mode() -> None:
    assert cg.detect() in ("v1", "v2", "hybrid", "none")
    assert cg.detect("/nonexistent-cgroup-root") == "none"


# -- recording fake ----------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []

    def __call__(self, path: str, value: str | int) -> None:
        self.writes.append((path, str(value)))

    def by_name(self) -> list[tuple[str, str]]:
        return [(os.path.basename(p), v) for p, v in self.writes]


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    for mod in (v1, v2, base):
        monkeypatch.setattr(mod, "write_file", r)
    import pyoci.cgroups.hybrid as hybrid

    monkeypatch.setattr(hybrid, "write_file", r)

    # No real cgroup under tmp_path to attach a BPF program to: record it instead.
    def fake_devices(d: str, rules: list[dict[str, object]], ignored: list[str]) -> int:
        r(os.path.join(d, "<device program>"), 1)
        return 1

    monkeypatch.setattr(v2, "set_devices", fake_devices)
    return r


def _touch(d: Path, *names: str, content: str = "") -> None:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text(content)


# -- v2 resources --------------------------------------------------------------


def test_v2_resources_conversions(tmp_path: Path, rec: Recorder) -> None:
    _touch(tmp_path, "memory.swap.max", "io.weight")
    _touch(tmp_path, "cgroup.controllers", content="cpu io memory pids hugetlb")
    ignored: list[str] = []
    v2.set_resources(
        str(tmp_path),
        {
            "memory": {"limit": 100, "swap": 300, "reservation": 50, "swappiness": 10},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 1},
            "pids": {"limit": 10},
            "blockIO": {
                "weight": 500,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "devices": [{"allow": False, "access": "rwm"}],
        },
        ignored,
    )
    assert rec.by_name() == [
        ("memory.swap.max", "200"),
        ("memory.max", "100"),
        ("memory.low", "50"),
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "1000"),
        ("cpu.idle", "1"),
        ("pids.max", "10"),
        ("io.weight", "4950"),
        ("io.weight", "8:0 1"),
        ("io.max", "8:0 rbps=1024"),
        ("io.max", "8:0 wiops=max"),
        ("hugetlb.2MB.max", "4194304"),
        ("<device program>", "1"),
    ]
    assert ignored == ["memory.swappiness"]


def test_v2_bfq_weight_kept_in_v1_range(tmp_path: Path, rec: Recorder) -> None:
    _touch(tmp_path, "io.bfq.weight", "io.weight")
    v2.set_io(
        str(tmp_path), {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 7}]}
    )
    assert rec.by_name() == [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 7")]


def test_v2_memory_unlimited_sets_swap_max(tmp_path: Path, rec: Recorder) -> None:
    _touch(tmp_path, "memory.swap.max")
    v2.set_memory(str(tmp_path), {"limit": -1})
    assert rec.by_name() == [("memory.swap.max", "max"), ("memory.max", "max")]


def test_v2_swap_without_swap_accounting(tmp_path: Path, rec: Recorder) -> None:
    _touch(tmp_path)
    v2.set_memory(str(tmp_path), {"limit": -1})  # "max" with no file is fine
    with pytest.raises(CgroupError, match="swap accounting"):
        v2.set_memory(str(tmp_path), {"limit": 100, "swap": 200})


def test_v2_realtime_and_network_are_errors(tmp_path: Path, rec: Recorder) -> None:
    with pytest.raises(CgroupError, match="realtime"):
        v2.set_resources(str(tmp_path), {"cpu": {"realtimeRuntime": 1000}}, [])
    with pytest.raises(CgroupError, match="network"):
        v2.set_resources(str(tmp_path), {"network": {"classID": 1}}, [])


def test_v2_unified(tmp_path: Path, rec: Recorder) -> None:
    _touch(tmp_path, "memory.high", "cgroup.max.depth")
    _touch(tmp_path, "cgroup.controllers", content="memory")
    v2.set_unified(str(tmp_path), {"memory.high": "1G", "cgroup.max.depth": "3"})
    assert rec.by_name() == [("memory.high", "1G"), ("cgroup.max.depth", "3")]
    with pytest.raises(CgroupError, match="controller io is not available"):
        v2.set_unified(str(tmp_path), {"io.max": "8:0 rbps=1"})
    with pytest.raises(CgroupError, match="invalid unified resource key"):
        v2.set_unified(str(tmp_path), {"../memory.max": "1"})
    with pytest.raises(CgroupError, match="no such file"):
        v2.set_unified(str(tmp_path), {"memory.nonexistent": "1"})


def test_v2_manager_create_and_destroy(tmp_path: Path, rec: Recorder) -> None:
    root = tmp_path / "cg"
    (root / "pre").mkdir(parents=True)
    m = v2.V2Manager("/pre/a/b", str(root))
    m.create(None)
    assert m.created == [str(root / "pre/a"), str(root / "pre/a/b")]
    assert m.exists()
    m.destroy()
    assert (root / "pre").is_dir() and not (root / "pre/a").exists()
    m.destroy()  # idempotent


# -- v1 resources --------------------------------------------------------------


def _v1_manager(tmp_path: Path, *ctrls: str) -> v1.V1Manager:
    paths = {c: str(tmp_path / c / "pyoci/x") for c in ctrls}
    for p in paths.values():
        Path(p).mkdir(parents=True, exist_ok=True)
    return v1.V1Manager("/pyoci/x", paths)


def test_v1_memory_raise_writes_memsw_first(tmp_path: Path, rec: Recorder) -> None:
    m = _v1_manager(tmp_path, "memory")
    d = Path(m.paths["memory"])
    _touch(d, "memory.memsw.limit_in_bytes")
    (d / "memory.limit_in_bytes").write_text("1000\n")
    m.set({"memory": {"limit": 2000, "swap": 4000, "swappiness": 0, "disableOOMKiller": True}})
    assert rec.by_name() == [
        ("memory.memsw.limit_in_bytes", "4000"),
        ("memory.limit_in_bytes", "2000"),
        ("memory.swappiness", "0"),
        ("memory.oom_control", "1"),
    ]


def test_v1_memory_cut_writes_limit_first(tmp_path: Path, rec: Recorder) -> None:
    m = _v1_manager(tmp_path, "memory")
    d = Path(m.paths["memory"])
    _touch(d, "memory.memsw.limit_in_bytes")
    (d / "memory.limit_in_bytes").write_text("100000\n")
    m.set({"memory": {"limit": 2000, "swap": 4000}})
    assert rec.by_name() == [
        ("memory.limit_in_bytes", "2000"),
        ("memory.memsw.limit_in_bytes", "4000"),
    ]


def test_v1_bad_swappiness(tmp_path: Path, rec: Recorder) -> None:
    m = _v1_manager(tmp_path, "memory")
    with pytest.raises(CgroupError, match="swappiness 101"):
        m.set({"memory": {"swappiness": 101}})


def test_v1_cpu_and_pids(tmp_path: Path, rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _v1_manager(tmp_path, "cpu", "cpuset", "pids")
    monkeypatch.setattr(v1, "read_int", lambda path, default=0: 512)
    m.set(
        {
            "cpu": {
                "shares": 512,
                "quota": 20000,
                "period": 100000,
                "realtimePeriod": 1000000,
                "realtimeRuntime": 950000,
                "cpus": "0",
                "mems": "0",
            },
            "pids": {"limit": -1},
        }
    )
    assert rec.by_name() == [
        ("cpu.shares", "512"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "20000"),
        ("cpu.rt_period_us", "1000000"),
        ("cpu.rt_runtime_us", "950000"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("pids.max", "max"),
    ]


def test_v1_missing_controller_is_an_error(tmp_path: Path, rec: Recorder) -> None:
    m = _v1_manager(tmp_path, "memory")
    with pytest.raises(CgroupError, match="pids controller is not mounted"):
        m.set({"pids": {"limit": 5}})
    with pytest.raises(CgroupError, match="net_cls controller is not mounted"):
        m.set({"network": {"classID": 5}})
    with pytest.raises(CgroupError, match="requires cgroup v2"):
        m.set({"unified": {"memory.high": "1"}})


def test_v1_blkio(tmp_path: Path, rec: Recorder) -> None:
    m = _v1_manager(tmp_path, "blkio")
    throttle = {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]}
    m.set({"blockIO": throttle})
    assert rec.by_name() == [("blkio.throttle.write_bps_device", "8:0 100")]
    with pytest.raises(CgroupError, match="blkio weight is not supported"):
        m.set({"blockIO": {"weight": 100}})
    _touch(Path(m.paths["blkio"]), "blkio.bfq.weight")
    rec.writes.clear()
    m.set({"blockIO": {"weight": 100, "weightDevice": [{"major": 8, "minor": 0, "weight": 5}]}})
    assert rec.by_name() == [("blkio.bfq.weight", "100"), ("blkio.bfq.weight_device", "8:0 5")]


def test_v1_devices_default_deny_then_rules_then_defaults(tmp_path: Path, rec: Recorder) -> None:
    m = _v1_manager(tmp_path, "devices")
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rw"},
    ]
    m.set({"devices": rules})
    got = rec.by_name()
    assert got[:3] == [
        ("devices.deny", "a"),
        ("devices.deny", "a"),
        ("devices.allow", "c 4:1 rw"),
    ]
    assert ("devices.allow", "c 1:3 rwm") in got
    assert len(got) == 3 + len(convert.DEFAULT_DEVICE_RULES)


def test_hybrid_routes_hugetlb_and_unified(tmp_path: Path, rec: Recorder) -> None:
    paths = {"memory": str(tmp_path / "memory/pyoci/x")}
    m = HybridManager("/pyoci/x", paths, str(tmp_path / "unified"))
    _touch(Path(m.unified), "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max")
    _touch(Path(m.unified), "cgroup.controllers", content="hugetlb")
    m.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]})
    assert rec.by_name() == [
        ("hugetlb.2MB.max", "2097152"),
        ("hugetlb.2MB.rsvd.max", "2097152"),
    ]
    with pytest.raises(CgroupError, match=r"unified resource memory\.high: controller memory"):
        m.set({"unified": {"memory.high": "1G"}})


# -- base helpers -------------------------------------------------------------


def test_write_file_error_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "memory.limit_in_bytes"
    with pytest.raises(CgroupError) as info:
        base.write_file(str(missing), 1)
    assert str(info.value) == f"cgroup: open {missing}: no such file or directory"


def test_mkdirs_then_leaf_and_unused_parents_removed(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    made = base.mkdirs(str(tmp_path / "keep/a/b/c"))
    assert made == [str(tmp_path / p) for p in ("keep/a", "keep/a/b", "keep/a/b/c")]
    (tmp_path / "keep/a/b/c/nested").mkdir()  # made by the container itself
    (tmp_path / "keep/a/sibling").mkdir()  # another container's leaf under a parent we made
    base.remove_leaf(str(tmp_path / "keep/a/b/c"))
    base.remove_unused_parents(made, [str(tmp_path / "keep/a/b/c")])
    assert not (tmp_path / "keep/a/b").exists()
    # The parent still holding a sibling stays, and the sibling is untouched.
    assert (tmp_path / "keep/a/sibling").is_dir()
    base.remove_leaf(str(tmp_path / "keep/a/b/c"))  # idempotent


def test_mkdirs_makes_a_parent_again_when_it_vanishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another container's delete removed the (then empty) parent between our two mkdirs."""
    real_mkdir = os.mkdir
    removed = []

    def racing_mkdir(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        if path.endswith("/parent") and not removed:
            removed.append(path)
            os.rmdir(path)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    made = base.mkdirs(str(tmp_path / "parent/leaf"))
    assert (tmp_path / "parent/leaf").is_dir()
    assert made == [str(tmp_path / "parent"), str(tmp_path / "parent/leaf")]


def test_parse_flat_keyed() -> None:
    assert base.parse_flat_keyed("a 1\nb 2\nbad\nc x\n") == {"a": 1, "b": 2}
    assert base.parse_flat_keyed(None) == {}


# -- state round trip -----------------------------------------------------------


def test_state_round_trip_all_modes(tmp_path: Path) -> None:
    managers = [
        v1.V1Manager("/pyoci/x", {"memory": "/m/pyoci/x", "cpu": "/c/pyoci/x"}, ["/m/pyoci/x"]),
        HybridManager("/pyoci/x", {"memory": "/m/pyoci/x"}, "/u", ["/u/pyoci/x"]),
        v2.V2Manager("/pyoci/x", "/sys/fs/cgroup", ["/sys/fs/cgroup/pyoci/x"]),
        NoneManager("/pyoci/x"),
    ]
    for m in managers:
        state = json.loads(json.dumps(m.to_state()))
        again = cg.from_state(state)
        assert type(again) is type(m)
        assert again.to_state() == m.to_state()
        assert again.path == "/pyoci/x"
    with pytest.raises(CgroupError, match="unknown cgroup mode"):
        cg.from_state({"mode": "v3"})


def test_manager_for_modes_on_this_host() -> None:
    mode = cg.detect()
    if mode == "none":
        pytest.skip("no cgroup filesystem")
    m = cg.manager_for(None, "unit-x")
    assert m.mode == mode
    assert m.path == "/pyoci/unit-x"
    assert m.created == []
    assert cg.manager_for("/a/b", "x", "none").to_state()["mode"] == "none"


def test_none_manager_refuses_limits() -> None:
    m = NoneManager("/pyoci/x")
    m.create(None)
    m.apply(1)
    assert m.pids() == [] and not m.frozen()
    with pytest.raises(CgroupError, match="memory"):
        m.set({"memory": {"limit": 1}})


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pyoci.cgroups;"
        "bad = [m for m in ('json', 'subprocess', 'ctypes', 'cffi', 'pyoci._native',"
        " 'pyoci.cgroups.v1', 'pyoci.cgroups.v2', 'dataclasses') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
