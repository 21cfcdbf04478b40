"""create: new namespaces of every type, joined namespaces, and a bad namespace path."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


def test_pid_and_uts_are_new(run_probe: Any) -> None:
    assert run_probe("pid", check=True).stdout == "1\n"
    assert run_probe("hostname", hostname="ns-uts", check=True).stdout == "ns-uts\n"


def test_ipc_net_mount_cgroup_differ_from_host(run_probe: Any) -> None:
    inside = helpers.parse_pairs(run_probe("ns", check=True).stdout)
    for name in ("ipc", "net", "mnt", "cgroup", "pid", "uts"):
        assert inside[name] != ch.host_ns(name), name
    # No user namespace was asked for, so that one is the host's.
    assert inside["user"] == ch.host_ns("user")


def test_namespace_absent_from_config_is_shared(run_probe: Any) -> None:
    def drop_net(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "network"]
    inside = helpers.parse_pairs(run_probe("ns", check=True, mutate=drop_net).stdout)
    assert inside["net"] == ch.host_ns("net")
    assert inside["ipc"] != ch.host_ns("ipc")


def test_user_namespace_mapping(open_dir: Path, rootfs_template: Path,
                                pyoci_root: Path) -> None:
    shared = open_dir / "shared"
    shared.mkdir()
    os.chown(shared, 100000, 100000)

    def userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                              "options": ["rbind", "rw"]})

    cfg = helpers.bundle_config(["/bin/sh", "-c",
                                 "/probe cat /proc/self/uid_map /proc/self/gid_map && "
                                 "/probe touch /shared/made-inside"], mutate=userns)
    bundle = helpers.write_bundle(open_dir / "bundle", rootfs_template, cfg)
    # The container's root is uid 100000 on the host: it can't mkdir in a root-owned rootfs.
    (bundle / "rootfs" / "shared").mkdir()
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(),
                            root=pyoci_root, check=True)
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows == [["0", "100000", "65536"], ["0", "100000", "65536"]]
    st = (shared / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (100000, 100000)


def test_time_namespace_offsets(run_probe: Any) -> None:
    offset = 10 * 86400

    def timens(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": offset, "nanosecs": 0},
                                       "monotonic": {"secs": offset, "nanosecs": 0}}

    before = float(Path("/proc/uptime").read_text().split()[0])
    res = run_probe("cat", "/proc/uptime", check=True, mutate=timens)
    after = float(Path("/proc/uptime").read_text().split()[0])
    inside = float(res.stdout.split()[0])
    assert before + offset <= inside <= after + offset + 1, (before, inside, after)
    # The runtime's own namespaces are untouched.
    assert after < before + offset


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A host process in its own net and uts namespaces, with hostname 'joined-uts'."""
    proc = subprocess.Popen(["unshare", "--net", "--uts", "sh", "-c",
                             "hostname joined-uts && exec sleep 60"])
    try:
        helpers.wait_for(lambda: ch.cmdline(proc.pid).startswith("sleep"),
                         what="the sleeper to be in its namespaces")
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_join_namespaces_by_path(run_probe: Any, sleeper: int) -> None:
    def join(cfg: dict[str, Any]) -> None:
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "network":
                n["path"] = f"/proc/{sleeper}/ns/net"
            elif n["type"] == "uts":
                n["path"] = f"/proc/{sleeper}/ns/uts"
        del cfg["hostname"]

    inside_ns = helpers.parse_pairs(run_probe("ns", check=True, mutate=join).stdout)
    assert inside_ns["net"] == ch.ns_inode(sleeper, "net") != ch.host_ns("net")
    assert inside_ns["uts"] == ch.ns_inode(sleeper, "uts") != ch.host_ns("uts")
    assert run_probe("hostname", check=True, mutate=join).stdout == "joined-uts\n"


def test_namespace_path_of_wrong_type_fails(make_bundle: Any, pyoci_root: Path) -> None:
    def wrong(cfg: dict[str, Any]) -> None:
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "network":
                n["path"] = f"/proc/{os.getpid()}/ns/uts"

    bundle = make_bundle(["/probe", "id"], mutate=wrong)
    cid, res = ch.create(bundle, pyoci_root, None, check=False)
    ch.assert_one_line_error(res)
    ch.assert_nothing_left(pyoci_root, cid)
