"""The rest of the process and Linux fields, checked from inside a real container.

personality, scheduler, ioPriority, execCPUAffinity, memoryPolicy, netDevices,
the LSM fields (this host has neither AppArmor nor SELinux), intelRdt (no
resctrl here) and idmapped bind mounts.

runc 1.1.5 predates scheduler, ioPriority, execCPUAffinity, memoryPolicy,
netDevices and idmapped mounts: it ignores those fields, so the expectations
come from the runtime-spec and the kernel documentation instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

from pyoci.spec.default import default_config

SCHED_FIFO, SCHED_BATCH, SCHED_IDLE = 1, 3, 5


def one_line_create_error(make_bundle, pyoci_root: Path, *needles: str, **overrides: Any):
    bundle = make_bundle(["/probe", "id"], **overrides)
    _cid, res = ch.create(bundle, pyoci_root, check=False)
    ch.assert_one_line_error(res, *needles)
    assert ch.container_dirs(pyoci_root) == [], ch.container_dirs(pyoci_root)
    return res


# ---- personality, scheduler, I/O priority, affinity, memory policy -------------

def test_personality_linux32(run_probe) -> None:
    res = run_probe("personality", check=True, **{"linux.personality": {"domain": "LINUX32"}})
    assert res.stdout == "0x8\n"


def test_personality_linux32_uname(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["uname", "-m"], **{"linux.personality": {"domain": "LINUX32"}})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout == "i686\n"


def test_scheduler_batch_with_nice(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["sh", "-c", "/probe sched && /probe nice"],
                         **{"process.scheduler": {"policy": "SCHED_BATCH", "nice": 5}})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout == f"policy={SCHED_BATCH} priority=0\n5\n"


def test_scheduler_idle(run_probe) -> None:
    res = run_probe("sched", check=True, **{"process.scheduler": {"policy": "SCHED_IDLE"}})
    assert res.stdout == f"policy={SCHED_IDLE} priority=0\n"


def test_scheduler_fifo(run_probe) -> None:
    """SCHED_FIFO needs CAP_SYS_NICE in the runtime and, with RT group scheduling
    (cgroup v1 here), a real-time budget in the container's cpu cgroup. A new
    cgroup gets 0 and pyoci's default parent too, so the test puts the container
    right under the root and gives it one."""
    res = run_probe("sched", check=True, **{
        "process.scheduler": {"policy": "SCHED_FIFO", "priority": 10},
        "linux.cgroupsPath": f"/pyoci-rt-{uuid.uuid4().hex[:12]}",
        "linux.resources.cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000},
    })
    assert res.stdout == f"policy={SCHED_FIFO} priority=10\n"


def test_scheduler_validation_names_the_field(make_bundle, pyoci_root: Path) -> None:
    """runtime > deadline is refused before anything runs."""
    one_line_create_error(make_bundle, pyoci_root, "process.scheduler", "SCHED_DEADLINE",
                          **{"process.scheduler": {"policy": "SCHED_DEADLINE",
                                                   "runtime": 2_000_000, "deadline": 1_000_000,
                                                   "period": 1_000_000}})


def test_scheduler_kernel_failure_names_the_field(make_bundle, pyoci_root: Path) -> None:
    """A deadline runtime under 1024ns passes the config checks, but sched_setattr
    refuses it (EINVAL): one line naming the field and the policy as written."""
    one_line_create_error(make_bundle, pyoci_root, "process.scheduler", "SCHED_DEADLINE",
                          "invalid argument",
                          **{"process.scheduler": {"policy": "SCHED_DEADLINE", "runtime": 100,
                                                   "deadline": 1_000_000,
                                                   "period": 1_000_000}})


@pytest.mark.parametrize(("io", "shown"), [
    ({"class": "IOPRIO_CLASS_IDLE", "priority": 0}, "idle"),
    ({"class": "IOPRIO_CLASS_BE", "priority": 6}, "best-effort: prio 6"),
])
def test_io_priority(make_bundle, pyoci_root: Path, io: dict[str, Any], shown: str) -> None:
    bundle = make_bundle(["ionice"], **{"process.ioPriority": io})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout.strip() == shown


def test_exec_cpu_affinity(make_bundle, pyoci_root: Path) -> None:
    assert len(os.sched_getaffinity(0)) >= 2, "needs cpus 0 and 1"
    bundle = make_bundle(["sh", "-c", "grep Cpus_allowed_list /proc/self/status; /probe affinity"],
                         **{"process.execCPUAffinity": {"initial": "0", "final": "1"}})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert helpers.parse_status(res.stdout)["Cpus_allowed_list"] == "1", res.stdout
    assert res.stdout.splitlines()[-1] == "1", res.stdout


def test_memory_policy_bind(make_bundle, pyoci_root: Path) -> None:
    """MPOL_BIND to node 0: numa_maps shows every mapping as ``bind:0``."""
    bundle = make_bundle(["cat", "/proc/self/numa_maps"],
                         **{"linux.memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    policies = {line.split()[1] for line in res.stdout.splitlines()}
    assert policies == {"bind:0"}, res.stdout


def test_memory_policy_default_without_field(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["cat", "/proc/self/numa_maps"])
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert {line.split()[1] for line in res.stdout.splitlines()} == {"default"}, res.stdout


def test_memory_policy_invalid_node(make_bundle, pyoci_root: Path) -> None:
    assert not Path("/sys/devices/system/node/node7").exists()
    one_line_create_error(make_bundle, pyoci_root, "linux.memoryPolicy", "MPOL_BIND",
                          **{"linux.memoryPolicy": {"mode": "MPOL_BIND", "nodes": "7"}})


# ---- netDevices ------------------------------------------------------------------

HOST_DEV, PEER_DEV, ADDR = "pyt0", "pyt0p", "10.123.0.1"


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _del_link(name: str) -> None:
    if _link_exists(name):
        subprocess.run(["ip", "link", "del", name], check=False)


@pytest.fixture
def host_link() -> Iterator[str]:
    """``pyt0`` with 10.123.0.1/24, up. This kernel has no dummy driver: a veth pair
    (the peer stays on the host) is the link type that's there."""
    for name in (HOST_DEV, PEER_DEV):
        _del_link(name)
    subprocess.run(["ip", "link", "add", HOST_DEV, "type", "veth", "peer", "name", PEER_DEV],
                   check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{ADDR}/24", "dev", HOST_DEV], check=True)
        subprocess.run(["ip", "link", "set", HOST_DEV, "up"], check=True)
        yield HOST_DEV
    finally:
        for name in (HOST_DEV, PEER_DEV):
            _del_link(name)


def test_net_device_moved_and_renamed(make_bundle, pyoci_root: Path, host_link: str,
                                      tmp_path: Path) -> None:
    bundle = make_bundle(["sh", "-c", "ls /sys/class/net && echo -- && ip addr show eth9"],
                         **{"linux.netDevices": {host_link: {"name": "eth9"}}})
    out = tmp_path / "out"
    with ch.created(bundle, pyoci_root, stdout=out) as cid:
        assert not _link_exists(host_link), "pyt0 is still on the host after create"
        ch.run_to_stop(cid, pyoci_root)
        text = out.read_text()
    names, _, addr = text.partition("--\n")
    assert names.split() == ["eth9", "lo"], text
    # busybox ip: "N: eth9@ifM: <...,UP,...> ..." then "    inet 10.123.0.1/24 scope global eth9"
    first = addr.splitlines()[0]
    assert first.split()[1].split("@")[0].rstrip(":") == "eth9", addr
    assert "UP" in first.split("<")[1].split(">")[0].split(","), addr
    inet = [line.split()[1] for line in addr.splitlines() if line.split()[:1] == ["inet"]]
    assert inet == [f"{ADDR}/24"], addr


def test_net_device_missing_fails_create(make_bundle, pyoci_root: Path) -> None:
    assert not _link_exists("pyt-none")
    one_line_create_error(make_bundle, pyoci_root, "linux.netDevices", "pyt-none",
                          **{"linux.netDevices": {"pyt-none": {"name": "eth9"}}})


# ---- LSM and intelRdt: not on this host ------------------------------------------

@pytest.mark.parametrize(("key", "value", "field"), [
    ("process.apparmorProfile", "pyoci-test", "process.apparmorProfile"),
    ("process.selinuxLabel", "system_u:system_r:container_t:s0", "process.selinuxLabel"),
    ("linux.mountLabel", "system_u:object_r:container_file_t:s0", "linux.mountLabel"),
])
def test_lsm_fields_fail_without_lsm(make_bundle, pyoci_root: Path, key: str, value: str,
                                     field: str) -> None:
    assert not Path("/sys/fs/selinux/enforce").exists()
    assert not Path("/sys/module/apparmor/parameters/enabled").exists() or \
        Path("/sys/module/apparmor/parameters/enabled").read_text().strip() != "Y"
    one_line_create_error(make_bundle, pyoci_root, field, **{key: value})


def test_intel_rdt_fails_clearly(make_bundle, pyoci_root: Path) -> None:
    one_line_create_error(make_bundle, pyoci_root, "linux.intelRdt",
                          **{"linux.intelRdt": {"closID": "pyoci", "l3CacheSchema": "L3:0=f"}})


# ---- idmapped bind mounts ------------------------------------------------------------

@pytest.fixture
def id_source(open_dir: Path) -> Path:
    """``rootfile`` owned by 0:0 and ``userfile`` by 1000:1000, as stored on disk."""
    src = open_dir / "src"
    src.mkdir()
    (src / "rootfile").touch()
    (src / "userfile").touch()
    os.chown(src / "userfile", 1000, 1000)
    return src


def _idmapped(source: Path, dest: str, host_id: int, size: int) -> dict[str, Any]:
    mapping = [{"containerID": 0, "hostID": host_id, "size": size}]
    return {"destination": dest, "type": "bind", "source": str(source), "options": ["bind"],
            "uidMappings": mapping, "gidMappings": mapping}


def _stats(stdout: str) -> list[tuple[str, str]]:
    out = []
    for line in stdout.splitlines():
        kv = helpers.parse_kv(line)
        if "uid" in kv:
            out.append((kv["uid"], kv["gid"]))
    return out


STAT_BOTH = "/probe stat {d}/rootfile && /probe stat {d}/userfile"


def test_idmapped_mount_without_user_namespace(id_source: Path,
                                               make_bundle, pyoci_root: Path) -> None:
    """The mount's mapping 0→1000 shifts on-disk ids: kuid = map_down(on-disk id).

    On-disk 0 is then seen as 1000; on-disk 1000 has no mapping and shows as the
    overflow id 65534 (Documentation/filesystems/idmappings.rst). runc 1.1.5
    ignores uidMappings on mounts and shows 0/1000 unchanged.
    """
    mounts = [*default_config()["mounts"], _idmapped(id_source, "/mnt", 1000, 1)]
    bundle = make_bundle(["sh", "-c", STAT_BOTH.format(d="/mnt") + " && /probe mounts"],
                         mounts=mounts)
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert _stats(res.stdout) == [("1000", "1000"), ("65534", "65534")], res.stdout
    mnt = [m for m in helpers.parse_mounts(res.stdout) if m.target == "/mnt"]
    assert len(mnt) == 1 and "idmapped" in mnt[0].options, mnt
    # The files themselves are untouched.
    st = (id_source / "rootfile").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)


USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _userns_bundle(open_dir: Path, rootfs_template: Path, mount: dict[str, Any],
                   args: list[str]) -> Path:
    def userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = USERNS_MAP
        cfg["linux"]["gidMappings"] = USERNS_MAP
        cfg["mounts"].append(mount)

    cfg = helpers.bundle_config(args, mutate=userns)
    bundle = helpers.write_bundle(open_dir / f"bundle-{uuid.uuid4().hex[:8]}",
                                  rootfs_template, cfg)
    # The container's root is host uid 100000: it can't mkdir in a root-owned rootfs.
    (bundle / "rootfs" / "data").mkdir()
    return bundle


def test_user_namespace_without_idmap_sees_overflow_ids(open_dir: Path, id_source: Path,
                                                        rootfs_template: Path,
                                                        pyoci_root: Path) -> None:
    """The contrast: a plain bind in a 0→100000 user namespace shows host 0 and 1000 unmapped."""
    mount = {"destination": "/data", "type": "bind", "source": str(id_source),
             "options": ["bind"]}
    bundle = _userns_bundle(open_dir, rootfs_template, mount,
                            ["sh", "-c", STAT_BOTH.format(d="/data")])
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert _stats(res.stdout) == [("65534", "65534"), ("65534", "65534")], res.stdout


def test_user_namespace_with_idmapped_mount_sees_root(open_dir: Path, id_source: Path,
                                                      rootfs_template: Path,
                                                      pyoci_root: Path) -> None:
    """An idmapped bind with the container's own mapping (0→100000/65536): on-disk 0
    becomes kuid 100000, which is root inside; on-disk 1000 becomes 101000 = 1000 inside.
    Files created inside are stored with the on-disk ids the container sees."""
    mount = _idmapped(id_source, "/data", 100000, 65536)
    bundle = _userns_bundle(open_dir, rootfs_template, mount,
                            ["sh", "-c", STAT_BOTH.format(d="/data")
                             + " && /probe touch /data/made-inside"])
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    assert res.returncode == 0, res.stderr
    assert _stats(res.stdout) == [("0", "0"), ("1000", "1000")], res.stdout
    st = (id_source / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
