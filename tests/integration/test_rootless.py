"""Rootless: the runtime run by an ordinary user (issue "Rootless: pyoci as an unprivileged user").

Every test runs the runtime as a throw-away user (rootless_env.py) on a bundle
the user owns, from ``spec --rootless``: a user namespace mapping the user's own
ids, no network namespace, /sys bound from the host. On this hybrid host the
user may not create cgroups, so the container runs without one (runc's rule)
unless it asks for limits. The same tests pass with ``PYOCI_TEST_RUNTIME=
/usr/sbin/runc``; where runc 1.1 can't do what pyoci does (ps and kill --all
without a cgroup, sysfs without a network namespace) the test checks runc's
own refusal in its branch.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
import rootless_env
from rootless_env import RootlessUser

IS_RUNC = Path(os.environ.get(helpers.RUNTIME_ENV, "")).name == "runc"
# A pure cgroup v2 host (the VM lane), where runc 1.1 words the cgroup refusals otherwise.
PURE_V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()


@pytest.fixture(scope="session")
def rl_user() -> Iterator[RootlessUser]:
    yield from rootless_env.session_user()


@pytest.fixture
def rl(rl_user: RootlessUser) -> Iterator[RootlessUser]:
    """The user; the test fails if it leaves a container in the user's default root."""
    assert rl_user.leftovers() == []
    yield rl_user
    left = rl_user.cleanup_containers()
    assert left == [], f"containers left behind: {left}"
    assert rl_user.leftovers() == []


def _bundle(rl: RootlessUser, template: Path, args: list[str], **kw: Any) -> Path:
    cfg = rl.rootless_config(args, terminal=kw.pop("terminal", False))
    mutate = kw.pop("mutate", None)
    if mutate is not None:
        mutate(cfg)
    return rl.bundle(template, cfg)


def _wait_stopped(rl: RootlessUser, cid: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rl.state(cid)["status"] == "stopped":
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} still not stopped after {timeout}s")


def _sleeper(rl: RootlessUser, template: Path, cid: str) -> Path:
    bundle = _bundle(rl, template, ["sleep", "1000"])
    rl.runtime_run("run", "-d", cid, cwd=bundle, check=True)
    return bundle


def test_spec_rootless_then_run_prints_from_inside(rl: RootlessUser,
                                                   rootfs_template: Path) -> None:
    """The issue's "done": ``spec --rootless && run x`` as the user, with the spec's terminal."""
    bundle = _bundle(rl, rootfs_template,
                     ["sh", "-c", "echo hello from inside; id -u; cat /proc/self/uid_map"],
                     terminal=True)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle, timeout=60, tty=True)
    assert res.returncode == 0, res.stderr
    # The terminal echoes what script(1) feeds it at EOF ("^@"), anywhere in the output.
    out = res.stdout.replace("^@", "").replace("\r", "")
    found = re.search(r"hello from inside\n(\d+)\n\s*(\d+)\s+(\d+)\s+(\d+)\n", out)
    assert found, repr(res.stdout)
    assert found.groups() == ("0", "0", str(rl.uid), "1")


@pytest.mark.parametrize("flag", [None, "auto", "true"])
def test_rootless_flag_runs_without_cgroup(rl: RootlessUser, rootfs_template: Path,
                                           flag: str | None) -> None:
    """No permission for the cgroup and no limits asked: the container runs, in the
    caller's cgroups (no new one), whether --rootless is unset, auto or true."""
    bundle = _bundle(rl, rootfs_template, ["cat", "/proc/self/cgroup"])
    glob = [f"--rootless={flag}"] if flag else []
    res = rl.runtime_run(*glob, "run", helpers.unique_id(), cwd=bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()
    assert "pyoci" not in res.stdout and "runc" not in res.stdout  # no cgroup of its own


def test_rootless_false_fails_on_the_cgroup(rl: RootlessUser, rootfs_template: Path) -> None:
    """--rootless=false: a cgroup that can't be made is an error, and nothing is left."""
    bundle = _bundle(rl, rootfs_template, ["true"])
    res = rl.runtime_run("--rootless=false", "run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    assert "permission denied" in res.stderr
    assert rl.leftovers() == []


def test_default_root_is_xdg_runtime_dir_and_list_shows_owner(
        rl: RootlessUser, rootfs_template: Path) -> None:
    cid = helpers.unique_id()
    bundle = _bundle(rl, rootfs_template, ["sleep", "1000"])
    rl.runtime_run("create", cid, cwd=bundle, check=True)
    assert (rl.root / cid).is_dir()
    assert (rl.root / cid).stat().st_uid == rl.uid
    listed = rl.runtime_run("list", check=True).stdout.splitlines()
    assert listed[0].split()[-1] == "OWNER"
    row = next(line.split() for line in listed if line.startswith(cid))
    assert row[-1] == rl.name
    rl.runtime_run("delete", "--force", cid, check=True)
    assert not (rl.root / cid).exists()


@pytest.mark.parametrize("resources,controller", [
    ({"pids": {"limit": 10}}, "pids"),
    ({"memory": {"limit": 100 * 1024 * 1024}}, "memory"),
])
def test_limits_without_cgroup_permission_fail_clearly(
        rl: RootlessUser, rootfs_template: Path, resources: dict[str, Any],
        controller: str) -> None:
    """runc's rule and words: limits need a cgroup; none can be made, so say which."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"] = resources

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    if IS_RUNC and PURE_V2:  # runc's fs2 names no resource
        want = "rootless needs no limits + no cgrouppath when no permission is granted"
    else:
        want = f"cannot set {controller} limit: container could not join or create cgroup"
    assert want in res.stderr, res.stderr
    assert rl.leftovers() == []


def test_device_rules_alone_need_no_cgroup(rl: RootlessUser, rootfs_template: Path) -> None:
    """linux.resources.devices (runc's non-rootless default) is not a limit rootless."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode == 0, res.stderr


def test_cgroups_path_without_permission_fails(rl: RootlessUser, rootfs_template: Path) -> None:
    """An explicit cgroupsPath the user can't create is an error, even with no limits."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["cgroupsPath"] = f"/{rl.name}/x"

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    assert "permission denied" in res.stderr
    assert rl.leftovers() == []


def test_subordinate_ranges_through_newuidmap(rl: RootlessUser, rootfs_template: Path) -> None:
    """More than the user's own id: mapped by newuidmap/newgidmap from /etc/subuid, subgid."""
    su, sg = rl.subuid, rl.subgid
    count = min(su[1], sg[1], 65536)

    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": rl.uid, "size": 1},
                                       {"containerID": 1, "hostID": su[0], "size": count}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": rl.gid, "size": 1},
                                       {"containerID": 1, "hostID": sg[0], "size": count}]
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    bundle = _bundle(rl, rootfs_template,
                     ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id; "
                      "touch /tmp/made; stat -c %u:%g /tmp/made"], mutate=mutate)
    # A writable /tmp for the process's user: root.readonly is the spec's default.
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                          "options": ["mode=1777"]})
    (bundle / "config.json").write_text(json.dumps(cfg))
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[:4]]
    assert rows == [["0", str(rl.uid), "1"], ["1", str(su[0]), str(count)],
                    ["0", str(rl.gid), "1"], ["1", str(sg[0]), str(count)]]
    assert "uid=1000 gid=1000" in res.stdout
    assert res.stdout.splitlines()[-1] == "1000:1000"


def test_unallowed_range_is_refused(rl: RootlessUser, rootfs_template: Path) -> None:
    """A range outside the user's /etc/subuid entry: newuidmap refuses, so does create."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": rl.uid, "size": 1},
                                       {"containerID": 1, "hostID": 1, "size": 10}]

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    assert "newuidmap" in res.stderr or "uid_map" in res.stderr, res.stderr
    assert rl.leftovers() == []


def test_devices_are_bind_mounts_of_the_hosts(rl: RootlessUser, rootfs_template: Path) -> None:
    bundle = _bundle(rl, rootfs_template, [
        "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c; "
        "stat -c '%t:%T' /dev/null; grep -c ' /dev/null ' /proc/self/mountinfo"])
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["4", "1:3", "1"]


def test_sysfs_without_network_namespace(rl: RootlessUser, rootfs_template: Path) -> None:
    """A ``sysfs`` mount can't be made without a network namespace the user owns:
    pyoci binds the host's /sys instead (read-only, as asked); runc 1.1 refuses."""
    def mutate(cfg: dict[str, Any]) -> None:
        for m in cfg["mounts"]:
            if m["destination"] == "/sys":
                m.update(type="sysfs", source="sysfs",
                         options=["nosuid", "noexec", "nodev", "ro"])

    bundle = _bundle(rl, rootfs_template, [
        "sh", "-c", "cat /sys/kernel/ostype 2>/dev/null || ls /sys/kernel | head -1; "
        "touch /sys/x 2>&1; grep ' /sys ' /proc/self/mountinfo"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    if IS_RUNC:
        assert res.returncode != 0 and "operation not permitted" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    assert "Read-only file system" in res.stdout
    mount = next(line for line in res.stdout.splitlines() if " /sys " in line)
    assert " ro," in mount and "- sysfs " in mount


def test_unmapped_gid_mount_option_refused(rl: RootlessUser, rootfs_template: Path) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        for m in cfg["mounts"]:
            if m["destination"] == "/dev/pts":
                m["options"].append("gid=5")

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    assert ("cannot specify gid= mount options for unmapped gid in rootless containers"
            in res.stderr), res.stderr
    assert rl.leftovers() == []


def test_user_namespace_required(rl: RootlessUser, rootfs_template: Path) -> None:
    """A config for root (no user namespace, no mappings) is refused in runc's words."""
    def mutate(cfg: dict[str, Any]) -> None:
        ns = cfg["linux"]["namespaces"]
        cfg["linux"]["namespaces"] = [n for n in ns if n["type"] != "user"]
        del cfg["linux"]["uidMappings"], cfg["linux"]["gidMappings"]

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    assert "rootless container requires user namespaces" in res.stderr, res.stderr
    assert rl.leftovers() == []


def test_lifecycle_verbs(rl: RootlessUser, rootfs_template: Path) -> None:
    """create, state, start, exec (the user namespace joined first), kill, delete."""
    cid = helpers.unique_id()
    bundle = _bundle(rl, rootfs_template, ["sleep", "1000"])
    rl.runtime_run("create", cid, cwd=bundle, check=True)
    assert rl.state(cid)["status"] == "created"
    res = rl.runtime_run("exec", cid, "true")
    if IS_RUNC:
        assert res.returncode == 0, res.stderr
    else:  # pyoci's init is its own non-dumpable process until start: see tenant.py
        assert res.returncode != 0 and "start it first" in res.stderr, res.stderr
    rl.runtime_run("start", cid, check=True)
    assert rl.state(cid)["status"] == "running"
    res = rl.runtime_run("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; echo $$")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "0" and lines[1].split() == ["0", str(rl.uid), "1"]
    assert int(lines[2]) > 1  # in the container's pid namespace, not its init
    res = rl.runtime_run("exec", "-t", cid, "tty", tty=True)
    assert res.returncode == 0 and "/dev/pts/" in res.stdout, res.stderr
    rl.runtime_run("kill", cid, "KILL", check=True)
    _wait_stopped(rl, cid)
    rl.runtime_run("delete", cid, check=True)
    assert not (rl.root / cid).exists()


def test_ps_and_kill_all_without_cgroup(rl: RootlessUser, rootfs_template: Path) -> None:
    """Without a cgroup pyoci finds the processes by the container's pid namespace."""
    cid = helpers.unique_id()
    _sleeper(rl, rootfs_template, cid)
    rl.runtime_run("exec", "-d", cid, "sleep", "999", check=True)
    init = rl.state(cid)["pid"]
    ps = rl.runtime_run("ps", "--format", "json", cid)
    if IS_RUNC:  # runc 1.1 reads the pids from the cgroup it hasn't got
        assert ps.returncode != 0
        assert rl.runtime_run("kill", "--all", cid, "KILL").returncode != 0
        rl.runtime_run("delete", "--force", cid, check=True)
        return
    assert ps.returncode == 0, ps.stderr
    pids = json.loads(ps.stdout)
    assert len(pids) == 2 and init in pids
    table = rl.runtime_run("ps", cid, check=True).stdout
    assert "sleep 999" in table and "sleep 1000" in table
    rl.runtime_run("kill", "--all", cid, "KILL", check=True)
    _wait_stopped(rl, cid)
    for pid in pids:
        helpers.wait_for(lambda p=pid: not _alive(p), timeout=20)
    rl.runtime_run("delete", cid, check=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_pause_and_update_without_cgroup_say_why(rl: RootlessUser,
                                                 rootfs_template: Path) -> None:
    cid = helpers.unique_id()
    _sleeper(rl, rootfs_template, cid)
    res = rl.runtime_run("pause", cid)
    assert res.returncode != 0
    assert "cgroup" in res.stderr and ("freeze" in res.stderr or "freezer" in res.stderr)
    assert rl.state(cid)["status"] == "running"
    res = rl.runtime_run("update", "--pids-limit", "10", cid)
    assert res.returncode != 0
    if IS_RUNC and PURE_V2:  # runc's fs2 writes into the cgroup it never made
        assert "pids.max: no such file or directory" in res.stderr, res.stderr
    else:
        assert "cannot set pids limit: container could not join or create cgroup" in res.stderr
    rl.runtime_run("delete", "--force", cid, check=True)


def test_features_and_help_describe_rootless(rl: RootlessUser) -> None:
    res = rl.runtime_run("--help", check=True)
    if IS_RUNC:  # the flag, but no features annotations for it
        assert any("--rootless" in line and "auto" in line for line in res.stdout.splitlines())
        return
    line = next(line for line in res.stdout.splitlines() if "--rootless" in line)
    assert "auto" in line and "no limits" in line
    doc = json.loads(rl.runtime_run("features", check=True).stdout)
    assert doc["annotations"]["io.github.pyoci.rootless.enabled"] == "true"
    assert "delegated" in doc["annotations"]["io.github.pyoci.rootless.cgroup"]
    assert doc["linux"]["cgroup"]["systemdUser"] is True  # see test_systemd_rootless.py
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is False


def test_user_cannot_reach_root_only_bind_source(rl: RootlessUser, rootfs_template: Path,
                                                 tmp_path: Path) -> None:
    """A bind source the user can't read stays out of reach: rootless is the user."""
    secret = tmp_path / "secret"  # pytest's tmp dirs are 0700 root
    secret.mkdir()

    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(secret),
                              "options": ["rbind"]})

    bundle = _bundle(rl, rootfs_template, ["true"], mutate=mutate)
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    assert "permission denied" in res.stderr
    assert rl.leftovers() == []


def test_limits_in_a_delegated_cgroup(rl: RootlessUser, rootfs_template: Path) -> None:
    """A cgroup the user owns (delegated, as systemd's user@.service does): the container's
    cgroup is made in it and the limits apply, as for root; pause and update work too."""
    with rootless_env.delegate(rl) as parent:
        def limited(cid: str) -> Any:
            def mutate(cfg: dict[str, Any]) -> None:
                cfg["linux"]["cgroupsPath"] = f"{parent}/{cid}"
                cfg["linux"]["resources"] = {"pids": {"limit": 6}}
            return mutate

        # The init and five children make six: the sixth fork is refused (EAGAIN).
        cid = helpers.unique_id()
        bundle = _bundle(rl, rootfs_template, ["/probe", "forkbomb", "20"], mutate=limited(cid))
        res = rl.runtime_run("run", cid, cwd=bundle)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "forked=5 errno=11"

        cid = helpers.unique_id()
        bundle = _bundle(rl, rootfs_template, ["sleep", "1000"], mutate=limited(cid))
        rl.runtime_run("run", "-d", cid, cwd=bundle, check=True)
        try:
            leaf = _pids_leaf(f"{parent}/{cid}")
            assert leaf.read_text().strip() == "6"
            assert json.loads(rl.runtime_run("ps", "--format", "json", cid,
                                             check=True).stdout) == [rl.state(cid)["pid"]]
            rl.runtime_run("pause", cid, check=True)
            assert rl.state(cid)["status"] == "paused"
            rl.runtime_run("resume", cid, check=True)
            assert rl.state(cid)["status"] == "running"
            rl.runtime_run("update", "--pids-limit", "20", cid, check=True)
            assert leaf.read_text().strip() == "20"
        finally:
            rl.runtime_run("delete", "--force", cid, check=True)
        assert not leaf.parent.exists()


def _pids_leaf(path: str) -> Path:
    """The pids.max of a cgroup, in the v1 pids hierarchy or in cgroup2."""
    for mount, _fstype in rootless_env.cgroup_mounts():
        f = mount / path.lstrip("/") / "pids.max"
        if f.exists():
            return f
    raise AssertionError(f"no pids.max for {path}")


# -- cgroup v2 delegation (the VM lane: tests/vm/vm_lane.py) -------------------------------


def _v2_leaf(cgroup: str) -> Path:
    return Path("/sys/fs/cgroup") / cgroup.lstrip("/")


@pytest.mark.v2lane
def test_v2_empty_cgroups_path_goes_beside_the_users_session(rl: RootlessUser,
                                                             rootfs_template: Path) -> None:
    """No ``cgroupsPath`` (what rootless podman's cgroupfs manager passes): on cgroup v2
    the container's cgroup is made beside the caller's own, in the user's delegated
    subtree, as runc does; memory and pids limits apply there, update changes them,
    pause freezes it and delete removes it, leaving the session alone."""
    with rootless_env.delegate(rl) as parent:
        def mutate(cfg: dict[str, Any]) -> None:
            cfg["linux"].pop("cgroupsPath", None)
            cfg["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 30}}

        cid = helpers.unique_id()
        bundle = _bundle(rl, rootfs_template, ["sleep", "1000"], mutate=mutate)
        rl.runtime_run("run", "-d", cid, cwd=bundle, check=True)
        leaf = _v2_leaf(f"{parent}/{cid}")
        try:
            pid = rl.state(cid)["pid"]
            assert Path(f"/proc/{pid}/cgroup").read_text() == f"0::{parent}/{cid}\n"
            assert (leaf / "memory.max").read_text() == f"{64 << 20}\n"
            assert (leaf / "pids.max").read_text() == "30\n"
            assert leaf.stat().st_uid == rl.uid
            # /sys is the host's, bound (no network namespace), so cgroup2 can't be
            # mounted afresh over it: the container's own cgroup is bound there instead.
            res = rl.runtime_run("exec", cid, "cat", "/sys/fs/cgroup/memory.max",
                                 "/proc/self/cgroup", check=True)
            assert res.stdout.split() == [str(64 << 20), "0::/"], res.stdout
            rl.runtime_run("update", "--memory", str(128 << 20), cid, check=True)
            assert (leaf / "memory.max").read_text() == f"{128 << 20}\n"
            rl.runtime_run("pause", cid, check=True)
            assert "frozen 1" in (leaf / "cgroup.events").read_text()
            rl.runtime_run("resume", cid, check=True)
            assert "frozen 0" in (leaf / "cgroup.events").read_text()
        finally:
            rl.runtime_run("delete", "--force", cid, check=True)
        assert not leaf.exists()
        assert _v2_leaf(f"{parent}/session").is_dir()


@pytest.mark.v2lane
def test_v2_memory_limit_oom_kills_in_the_delegated_subtree(rl: RootlessUser,
                                                            rootfs_template: Path) -> None:
    """The memory limit is real: a hog over 32 MiB in the user's cgroup is OOM-killed."""
    with rootless_env.delegate(rl) as parent:
        cid = helpers.unique_id()

        def mutate(cfg: dict[str, Any]) -> None:
            cfg["linux"]["cgroupsPath"] = f"{parent}/{cid}"
            cfg["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}

        bundle = _bundle(rl, rootfs_template, ["/probe", "hog", "100"], mutate=mutate)
        res = rl.runtime_run("run", cid, cwd=bundle, timeout=120)
        assert res.returncode == 128 + 9, (res.returncode, res.stdout, res.stderr)
        assert "hog=" not in res.stdout
        assert not _v2_leaf(f"{parent}/{cid}").exists()


@pytest.mark.v2lane
def test_v2_no_cgroup_means_an_empty_read_only_sys_fs_cgroup(rl: RootlessUser,
                                                             rootfs_template: Path) -> None:
    """``spec --rootless`` on a pure v2 host, no delegation: /sys is the host's, bound, so
    the cgroup mount can't be made afresh (EBUSY); with no cgroup of its own the container
    gets an empty read-only /sys/fs/cgroup, as runc masks it, not the host's tree."""
    bundle = _bundle(rl, rootfs_template, ["sh", "-c",
                     "ls -A /sys/fs/cgroup | wc -l; mkdir /sys/fs/cgroup/x || echo refused"])
    res = rl.runtime_run("run", helpers.unique_id(), cwd=bundle)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "refused"], res.stdout


def test_systemd_cgroup_needs_cgroup_v2_rootless(rl: RootlessUser, rootfs_template: Path) -> None:
    """Rootless --systemd-cgroup asks the user's own systemd, which only cgroup v2 can
    delegate to; on a v1 or hybrid host that is a clear refusal, and nothing is left."""
    if PURE_V2:
        pytest.fail("this host is pure cgroup v2: test_systemd_rootless.py covers it",
                    pytrace=False)
    bundle = _bundle(rl, rootfs_template, ["true"])
    res = rl.runtime_run("--systemd-cgroup", "run", helpers.unique_id(), cwd=bundle)
    assert res.returncode != 0
    if not IS_RUNC:  # runc 1.1.5 first finds no systemd running here
        assert re.search(r"rootless --systemd-cgroup needs cgroup v2 \(this host's cgroups "
                         r"are (v1|hybrid)\)$", res.stderr.strip()), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert rl.leftovers() == []
