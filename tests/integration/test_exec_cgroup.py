"""exec --cgroup: a process placed in an existing sub-cgroup of the container's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration

MEMORY = Path("/sys/fs/cgroup/memory")


def _cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return MEMORY / path.lstrip("/")
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_exec_into_a_sub_cgroup(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    with ch.created(bundle, pyoci_root) as cid:
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        init = helpers.state(cid, pyoci_root)["pid"]
        sub = _cgroup_dir(init, "memory") / "worker"
        sub.mkdir()
        try:
            pidfile = tmp_path / "pid"
            helpers.run_pyoci("exec", "-d", "--pid-file", pidfile, "--cgroup", "memory:worker",
                              cid, "/probe", "sleep", "inf", root=pyoci_root, check=True)
            pid = int(pidfile.read_text())
            assert str(pid) in (sub / "cgroup.procs").read_text().split()
            # the other controllers keep it in the container's own cgroup
            assert _cgroup_dir(pid, "memory") == sub
            os.kill(pid, 9)
            helpers.wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                             "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2])
        finally:
            helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root)
            helpers.wait_for_status(cid, pyoci_root, "stopped")
            if sub.exists():
                sub.rmdir()


def _cgroups(pid: int) -> dict[str, str]:
    """controllers -> path, from /proc/<pid>/cgroup."""
    return {ctrls: path for _, ctrls, path in
            (line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())}


def test_exec_cgroup_root_is_the_containers_own(make_bundle: Any, pyoci_root: Path,
                                                tmp_path: Path) -> None:
    """``--cgroup /`` (and ``memory:/``) name the container's own cgroup; a leading
    "/" is relative to it, as runc joins the path onto the container's."""
    bundle = make_bundle(["/probe", "sleep", "inf"])
    with ch.created(bundle, pyoci_root) as cid:
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        init = helpers.state(cid, pyoci_root)["pid"]
        sub = _cgroup_dir(init, "memory") / "worker"
        sub.mkdir()
        try:
            for spec, memory in (("/", _cgroup_dir(init, "memory")),
                                 ("memory:/", _cgroup_dir(init, "memory")),
                                 ("memory:/worker", sub)):
                pidfile = tmp_path / f"pid-{helpers.unique_id()}"
                res = helpers.run_pyoci("exec", "-d", "--pid-file", pidfile, "--cgroup", spec,
                                        cid, "/probe", "sleep", "inf", root=pyoci_root)
                assert res.returncode == 0, (spec, res.stderr)
                pid = int(pidfile.read_text())
                try:
                    assert _cgroup_dir(pid, "memory") == memory, spec
                    mine, theirs = _cgroups(pid), _cgroups(init)
                    for ctrls in theirs:
                        if "memory" not in ctrls.split(","):
                            assert mine[ctrls] == theirs[ctrls], (spec, ctrls)
                finally:
                    os.kill(pid, 9)
                    helpers.wait_for(lambda p=pid: ch.gone(p), what="the exec'd process to exit")
        finally:
            helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root)
            helpers.wait_for_status(cid, pyoci_root, "stopped")
            if sub.exists():
                sub.rmdir()


def test_exec_cgroup_errors(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    with ch.created(bundle, pyoci_root) as cid:
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        for spec, want in (("memory:nope", "no such sub-cgroup"),
                           ("bogus:x", "unknown controller bogus"),
                           ("../escape", "relative to the container's cgroup")):
            res = helpers.run_pyoci("exec", "--cgroup", spec, cid, "/probe", "exit", "0",
                                    root=pyoci_root)
            assert res.returncode == 255 and want in res.stderr, (spec, res.stderr)
        helpers.run_pyoci("kill", cid, "KILL", root=pyoci_root)
        helpers.wait_for_status(cid, pyoci_root, "stopped")
