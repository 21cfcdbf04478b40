"""config-linux.md "Control groups": cgroupsPath and resources, checked in the cgroup v1
files from the host while the container is `created`."""

from __future__ import annotations

import uuid
from pathlib import Path

import rt

V1 = Path("/sys/fs/cgroup")


def cgroup_container(container: rt.Factory, resources: dict) -> tuple[rt.Container, str]:
    path = f"/conformance-{uuid.uuid4().hex[:10]}"
    c = container(**{"linux.cgroupsPath": path, "linux.resources": resources})
    c.create()
    return c, path


def finish(c: rt.Container) -> None:
    c.kill()
    c.wait_status("stopped")
    assert c.delete().returncode == 0


def test_cgroups_path_holds_process(container: rt.Factory) -> None:
    """config-linux.md "Cgroups path": "the runtime MUST consider the cgroupsPath to be
    relative to the cgroups mount point" (absolute path) - the container process is in
    that cgroup in every v1 hierarchy it sets up."""
    c, path = cgroup_container(container, {"pids": {"limit": 100}})
    pid = str(c.state()["pid"])
    for ctl in ("memory", "pids", "cpu"):
        procs = (V1 / ctl / path.lstrip("/") / "cgroup.procs").read_text().split()
        assert pid in procs, ctl
    finish(c)


def test_memory_limit(container: rt.Factory) -> None:
    """config-linux.md "Memory": limit "sets limit of memory usage in bytes" (v1
    memory.limit_in_bytes)."""
    c, path = cgroup_container(container, {"memory": {"limit": 64 * 1024 * 1024}})
    got = (V1 / "memory" / path.lstrip("/") / "memory.limit_in_bytes").read_text()
    assert int(got) == 64 * 1024 * 1024
    finish(c)


def test_pids_limit(container: rt.Factory) -> None:
    """config-linux.md "Pids": limit "specifies the maximum number of tasks in the
    cgroup" (v1 pids.max)."""
    c, path = cgroup_container(container, {"pids": {"limit": 42}})
    assert (V1 / "pids" / path.lstrip("/") / "pids.max").read_text().strip() == "42"
    finish(c)


def test_cpu_shares_and_quota(container: rt.Factory) -> None:
    """config-linux.md "CPU": shares, quota and period (v1 cpu.shares, cpu.cfs_quota_us,
    cpu.cfs_period_us)."""
    c, path = cgroup_container(container, {"cpu": {"shares": 512, "quota": 50000,
                                                   "period": 100000}})
    d = V1 / "cpu" / path.lstrip("/")
    assert (d / "cpu.shares").read_text().strip() == "512"
    assert (d / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (d / "cpu.cfs_period_us").read_text().strip() == "100000"
    finish(c)


def test_cgroup_removed_on_delete(container: rt.Factory) -> None:
    """runtime.md "Operations / delete": "Deleting a container MUST delete the resources
    that were created during the create step" - the cgroup directories go away."""
    c, path = cgroup_container(container, {"pids": {"limit": 10}})
    dirs = [V1 / ctl / path.lstrip("/") for ctl in ("memory", "pids", "cpu")]
    assert all(d.is_dir() for d in dirs)
    finish(c)
    assert not any(d.exists() for d in dirs)


def test_invalid_resource_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / create": "If the runtime cannot create the container as
    specified in config.json, it MUST generate an error" - a 4 KiB memory limit is below
    what the kernel accepts for a live process."""
    c = container(**{"linux.cgroupsPath": f"/conformance-{uuid.uuid4().hex[:10]}",
                     "linux.resources": {"memory": {"limit": 4096}}})
    res = c.create(check=False)
    if res.returncode == 0:
        c.delete("--force")
    assert res.returncode != 0
