"""Rootless ``--systemd-cgroup``: the runtime run by a user whose own systemd makes the scope.

Marked ``systemdlane`` (tests/vm/test_systemd_lane.py's VM, where systemd is PID 1).
The module's user (rootless_env) gets a systemd user manager
(``systemctl start user@UID.service``, as lingering or a login does) and with it a
user bus at ``/run/user/UID/bus`` (dbus-user-session). The runtime then asks that
manager, not the system one, for a transient scope in the user's ``user.slice``;
systemd delegates it, and the limits are the unit's. This is what rootless podman
does on a systemd host (its default cgroup manager there). The same tests pass
with ``PYOCI_TEST_RUNTIME=/usr/sbin/runc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Explicit, so these imports also work under --import-mode=importlib.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers
import rootless_env
import rootless_podman_env
from podman_env import IMAGE
from rootless_env import RootlessUser
from rootless_podman_env import RootlessPodman

pytestmark = [pytest.mark.systemdlane]

MiB = 1024 * 1024
IS_RUNC = Path(os.environ.get(helpers.RUNTIME_ENV, "")).name == "runc"


@contextlib.contextmanager
def user_session(user: RootlessUser) -> Iterator[RootlessUser]:
    """The user's systemd (``user@UID.service``) and user bus, stopped afterwards."""
    if not os.path.isdir("/run/systemd/system"):
        pytest.fail("systemd is not PID 1 here: run tests/vm/test_systemd_lane.py", pytrace=False)
    units = [f"user@{user.uid}.service", f"user-runtime-dir@{user.uid}.service"]
    try:
        subprocess.run(["systemctl", "start", units[0]], check=True, timeout=180,
                       capture_output=True)
        bus = Path(f"/run/user/{user.uid}/bus")
        helpers.wait_for(bus.exists, timeout=60)
        user.extra_env = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}"}
        yield user
    finally:
        user.extra_env = {}
        subprocess.run(["systemctl", "stop", *units], check=False, timeout=180,
                       capture_output=True)
        # Stopping removes the runtime dir; the user's teardown (podman's) still needs one.
        user.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(user.runtime_dir, user.uid, user.gid)


@pytest.fixture(scope="module")
def sd_user() -> Iterator[RootlessUser]:
    user = rootless_env.make_user()
    try:
        with user_session(user):
            yield user
    finally:
        problems = rootless_env.remove_user(user)
        assert not problems, problems


@pytest.fixture(scope="module")
def sd_podman(rootfs_template: Path) -> Iterator[RootlessPodman]:
    with rootless_podman_env.rootless_podman(rootfs_template) as env:
        with user_session(env.user):
            yield env


def runtime(user: RootlessUser, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return user.runtime_run("--systemd-cgroup", *args, timeout=120, **kw)


def user_show(user: RootlessUser, unit: str, *props: str) -> dict[str, str]:
    """``systemctl --user show``: what the user's own systemd says about the unit."""
    res = user.run(["systemctl", "--user", "show", unit, *(f"--property={p}" for p in props)],
                   timeout=60)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def test_scope_in_the_users_own_systemd(sd_user: RootlessUser, rootfs_template: Path) -> None:
    cid = helpers.unique_id()
    unit = f"pyoci-test-{cid}.scope"
    cfg = sd_user.rootless_config(["sleep", "600"])
    cfg["linux"]["cgroupsPath"] = f"user.slice:pyoci-test:{cid}"
    cfg["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 40}}
    bundle = sd_user.bundle(rootfs_template, cfg)
    runtime(sd_user, "run", "-d", cid, cwd=bundle, check=True)
    try:
        pid = sd_user.state(cid)["pid"]
        manager = f"/user.slice/user-{sd_user.uid}.slice/user@{sd_user.uid}.service"
        cgroup = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
        assert cgroup == f"{manager}/user.slice/{unit}"
        props = user_show(sd_user, unit, "ActiveState", "MemoryMax", "TasksMax", "Delegate")
        assert props == {"ActiveState": "active", "MemoryMax": str(64 * MiB),
                         "TasksMax": "40", "Delegate": "yes"}, props
        leaf = Path("/sys/fs/cgroup") / cgroup.lstrip("/")
        assert (leaf / "memory.max").read_text() == f"{64 * MiB}\n"
        assert leaf.stat().st_uid == sd_user.uid  # delegated to the user
        # The container sees its own cgroup, limits included. The exec'd process joins it
        # although the caller is outside the user's subtree (pyoci asks the user's systemd;
        # runc 1.1.5 leaves it where the caller is).
        res = runtime(sd_user, "exec", cid, "cat", "/sys/fs/cgroup/memory.max",
                      "/proc/self/cgroup", check=True)
        memory_max, own = res.stdout.split()
        assert memory_max == str(64 * MiB)
        if not IS_RUNC:
            assert own == "0::/", res.stdout
        runtime(sd_user, "update", "--memory", str(128 * MiB), cid, check=True)
        assert user_show(sd_user, unit, "MemoryMax")["MemoryMax"] == str(128 * MiB)
        assert (leaf / "memory.max").read_text() == f"{128 * MiB}\n"
        assert json.loads(runtime(sd_user, "ps", "--format", "json", cid,
                                  check=True).stdout) == [pid]
    finally:
        runtime(sd_user, "delete", "--force", cid, check=True)
    assert user_show(sd_user, unit, "LoadState")["LoadState"] == "not-found"
    assert not leaf.exists()
    assert sd_user.leftovers() == []


def test_without_a_user_bus_it_fails_clearly(sd_user: RootlessUser,
                                             rootfs_template: Path) -> None:
    """No systemd user session to ask: an error naming the bus, and nothing left."""
    cfg = sd_user.rootless_config(["true"])
    cfg["linux"]["cgroupsPath"] = "user.slice:pyoci-test:nobus"
    bundle = sd_user.bundle(rootfs_template, cfg)
    missing = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={sd_user.home}/no-bus"}
    res = runtime(sd_user, "run", helpers.unique_id(), cwd=bundle, env=missing)
    assert res.returncode != 0
    assert "no-bus" in res.stderr, res.stderr
    assert sd_user.leftovers() == []


def test_rootless_podman_with_the_systemd_cgroup_manager(sd_podman: RootlessPodman) -> None:
    """Rootless podman's default on a systemd host: ``--cgroup-manager=systemd``. podman
    passes ``--systemd-cgroup`` and ``user.slice:libpod:<id>``; the limits are the scope's."""
    rpm = sd_podman
    res = rpm.podman("--cgroup-manager=systemd", "run", "--rm", "--memory", "64m",
                     "--pids-limit", "40", IMAGE, "cat", "/sys/fs/cgroup/memory.max",
                     "/sys/fs/cgroup/pids.max", runtime=True, timeout=180)
    assert (res.returncode, res.stdout.split()) == (0, [str(64 * MiB), "40"]), res.stderr
    res = rpm.podman("--cgroup-manager=systemd", "run", "-d", "--memory", "96m", IMAGE,
                     "sleep", "600", runtime=True, timeout=180)
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip().splitlines()[-1]
    try:
        unit = f"libpod-{cid}.scope"
        props = user_show(rpm.user, unit, "ActiveState", "MemoryMax")
        assert props == {"ActiveState": "active", "MemoryMax": str(96 * MiB)}, props
        # podman exec runs the runtime from podman's user namespace, outside the user's
        # subtree: the exec'd process still ends up in the container's scope (pyoci).
        res = rpm.podman("--cgroup-manager=systemd", "exec", cid, "cat", "/proc/self/cgroup",
                         timeout=120)
        assert res.returncode == 0, res.stderr
        if not IS_RUNC:
            assert res.stdout == "0::/\n", res.stdout
    finally:
        rm = rpm.podman("--cgroup-manager=systemd", "rm", "--force", "--time", "0", cid,
                        timeout=120)
    assert rm.returncode == 0, rm.stderr
    assert user_show(rpm.user, unit, "LoadState")["LoadState"] == "not-found"
