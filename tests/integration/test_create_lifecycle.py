"""create → start → kill → delete, the invalid transitions, and what create leaves running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration



def _sleeper(make_bundle: Any, **kw: Any) -> Path:
    return make_bundle(["/probe", "sleep", "inf"], **kw)


def test_full_lifecycle(make_bundle: Any, pyoci_root: Path) -> None:
    cid, _ = ch.create(_sleeper(make_bundle), pyoci_root)
    try:
        st = helpers.state(cid, pyoci_root)
        assert st["status"] == "created" and st["pid"] > 0, st
        pid = st["pid"]
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        st = helpers.state(cid, pyoci_root)
        assert (st["status"], st["pid"]) == ("running", pid)
        helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root, check=True)
        st = helpers.wait_for_status(cid, pyoci_root, "stopped")
        assert st["pid"] == 0, st
        helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
        res = helpers.run_pyoci("state", cid, root=pyoci_root)
        assert res.returncode == 1 and "container does not exist" in res.stderr, res
    finally:
        ch.force_delete(cid, pyoci_root)


def test_invalid_transitions(make_bundle: Any, pyoci_root: Path) -> None:
    cid, _ = ch.create(_sleeper(make_bundle), pyoci_root)
    try:
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        res = helpers.run_pyoci("start", cid, root=pyoci_root)
        assert res.returncode == 1, res
        assert "cannot start an already running container" in res.stderr, res.stderr

        res = helpers.run_pyoci("delete", cid, root=pyoci_root)
        assert res.returncode == 1, res
        assert helpers.state(cid, pyoci_root)["status"] == "running"

        helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root, check=True)
        helpers.wait_for_status(cid, pyoci_root, "stopped")
        res = helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root)
        assert res.returncode == 1 and "container not running" in res.stderr, res
        helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
    finally:
        ch.force_delete(cid, pyoci_root)


def test_delete_force_running(make_bundle: Any, pyoci_root: Path) -> None:
    cid, _ = ch.create(_sleeper(make_bundle), pyoci_root)
    pid = helpers.state(cid, pyoci_root)["pid"]
    helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
    helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
    assert ch.container_dirs(pyoci_root) == []
    helpers.wait_for(lambda: ch.gone(pid), what="the init to be gone")


def test_create_existing_id(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = _sleeper(make_bundle)
    cid, _ = ch.create(bundle, pyoci_root)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        _, res = ch.create(bundle, pyoci_root, cid, check=False)
        assert res.returncode == 1, res
        assert "container with given ID already exists" in res.stderr, res.stderr
        st = helpers.state(cid, pyoci_root)
        assert (st["status"], st["pid"]) == ("created", pid)
    finally:
        ch.force_delete(cid, pyoci_root)


def test_no_runtime_process_remains(make_bundle: Any, pyoci_root: Path) -> None:
    cid, _ = ch.create(_sleeper(make_bundle), pyoci_root)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        assert ch.runtime_processes(pyoci_root, exclude=pid) == []
        # The init's parent is no runtime process (it was reparented to us, 1 or a subreaper).
        assert str(pyoci_root) not in ch.cmdline(ch.ppid(pid))
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        assert ch.runtime_processes(pyoci_root, exclude=pid) == []
        assert ch.cmdline(pid).startswith("/probe sleep inf")
    finally:
        ch.force_delete(cid, pyoci_root)


@pytest.mark.parametrize("signal", ["9", "KILL", "SIGKILL"])
def test_kill_signal_forms(make_bundle: Any, pyoci_root: Path, signal: str) -> None:
    cid, _ = ch.create(_sleeper(make_bundle), pyoci_root)
    try:
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        helpers.run_pyoci("kill", cid, signal, root=pyoci_root, check=True)
        helpers.wait_for_status(cid, pyoci_root, "stopped")
        helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
    finally:
        ch.force_delete(cid, pyoci_root)


def test_kill_signal_zero_checks_existence(make_bundle: Any, pyoci_root: Path) -> None:
    """Signal 0 is the callers' "is it there?": no signal is sent. As runc: 0 while the
    init exists (created, running); once stopped, ``kill`` says "container not running"
    and ``kill --all`` succeeds (nothing left to signal)."""
    cid, _ = ch.create(_sleeper(make_bundle), pyoci_root)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        for status in ("created", "running"):
            for extra in ((), ("-a",), ("--all",)):
                res = helpers.run_pyoci("kill", *extra, cid, "0", root=pyoci_root)
                assert res.returncode == 0, (status, extra, res.stderr)
            st = helpers.state(cid, pyoci_root)
            assert (st["status"], st["pid"]) == (status, pid)  # nothing was signalled
            if status == "created":
                helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        assert ch.cmdline(pid).startswith("/probe sleep inf")
        helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root, check=True)
        helpers.wait_for_status(cid, pyoci_root, "stopped")
        res = helpers.run_pyoci("kill", cid, "0", root=pyoci_root)
        assert res.returncode == 1 and "container not running" in res.stderr, res
        res = helpers.run_pyoci("kill", "-a", cid, "0", root=pyoci_root)
        assert res.returncode == 0, res.stderr
        helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
        res = helpers.run_pyoci("kill", cid, "0", root=pyoci_root)
        assert res.returncode == 1 and "does not exist" in res.stderr, res
    finally:
        ch.force_delete(cid, pyoci_root)


def test_cgroup_created_and_removed(make_bundle: Any, pyoci_root: Path) -> None:
    cg_name = f"pyoci-test-{helpers.unique_id()}"
    bundle = _sleeper(make_bundle, **{"linux.cgroupsPath": f"/{cg_name}"})
    cid, _ = ch.create(bundle, pyoci_root)
    try:
        pid = helpers.state(cid, pyoci_root)["pid"]
        cg = ch.MEMORY_CGROUP / cg_name
        assert cg.is_dir()
        assert ch.memory_cgroup(pid) == cg
        assert str(pid) in (cg / "cgroup.procs").read_text().split()
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
        assert not cg.exists()
    finally:
        ch.force_delete(cid, pyoci_root)


def test_create_without_process_then_start_fails(make_bundle: Any, pyoci_root: Path) -> None:
    """runtime-spec 1.3: process is REQUIRED only when start is called (runc 1.1.5 refuses
    the create instead). start fails with one line naming process, leaves the container
    created, and delete --force cleans up."""
    bundle = make_bundle(process=helpers.DELETE)
    cid, res = ch.create(bundle, pyoci_root, check=False)
    try:
        assert res.returncode == 0, res.stderr
        st = helpers.state(cid, pyoci_root)
        assert st["status"] == "created" and st["pid"] > 0, st
        pid = st["pid"]
        cgroup = ch.memory_cgroup(pid)
        res = helpers.run_pyoci("start", cid, root=pyoci_root)
        assert res.returncode != 0, res
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "process" in lines[0], res.stderr
        assert "Traceback" not in res.stderr
        assert helpers.state(cid, pyoci_root)["status"] == "created"
        # `created` is not `stopped`: the spec makes a plain delete an error (runc deletes)
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
        assert helpers.run_pyoci("state", cid, root=pyoci_root).returncode == 1
        helpers.wait_for(lambda: not Path(f"/proc/{pid}").exists())
        assert not cgroup.exists(), cgroup
    finally:
        ch.force_delete(cid, pyoci_root)
