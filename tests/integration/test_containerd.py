"""containerd 1.6 driving pyoci through the ``io.containerd.runc.v2`` shim.

Every task runs with ``ctr run --runc-binary <real pyoci script>`` against a
private containerd (``containerd_env``). The shim talks to the runtime through
go-runc: ``--root /run/containerd/runc/<ns> --log <bundle>/log.json
--log-format json`` on every call, ``create --bundle B --pid-file
B/init.pid ID`` then ``start``, ``exec --process F --detach --pid-file P``,
``ps --format json``, ``pause``/``resume``, ``kill`` and ``delete`` (1.7's
shim also runs a bare ``features`` when it starts; 1.6's doesn't). On a failed
call it reports the ``msg`` of the last ``"level":"error"`` line of ``log.json``.
After every test the namespace's runtime root must hold no container again.
``PYOCI_TEST_RUNTIME=/usr/sbin/runc`` runs the same tests against runc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

# Explicit, so `import containerd_env` also works under --import-mode=importlib.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import containerd_env
import helpers
from containerd_env import IMAGE, ContainerdEnv

pytestmark = pytest.mark.integration

_CGROUP_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture(scope="session")
def containerd(rootfs_template: Path) -> Iterator[ContainerdEnv]:
    """The session's private containerd, with the busybox + /probe image imported."""
    if os.geteuid() != 0:
        pytest.fail("containerd tests run a rootful containerd: run them as root",
                    pytrace=False)
    missing = [t for t in ("containerd", "ctr", "containerd-shim-runc-v2")
               if shutil.which(t) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} (apt-get install containerd)",
                    pytrace=False)
    if not containerd_env.runtime_path().is_file():
        pytest.fail(f"runtime not found: {containerd_env.runtime_path()}", pytrace=False)
    try:
        with containerd_env.containerd_env(rootfs_template) as env:
            yield env
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def ctd(containerd: ContainerdEnv) -> Iterator[ContainerdEnv]:
    """``containerd``, checked after each test: no task, container or runtime state left.

    Leftovers are removed first (and the test fails), so one failure doesn't
    cascade into the tests after it.
    """
    before = containerd.state_dirs()
    yield containerd
    problems = containerd.cleanup_containers()
    leaked = containerd.state_dirs() - before
    problems += [f"state dir {containerd_env.runc_root() / cid} left behind"
                 for cid in sorted(leaked)]
    for cid in leaked:
        helpers.run_pyoci("delete", "--force", cid, root=containerd_env.runc_root(), timeout=30)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def rt(ctd: ContainerdEnv) -> list[str]:
    return ["--runc-binary", os.fspath(ctd.runtime)]


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    """The dirs of a spec's ``cgroupsPath`` (cgroupfs) that exist, in every hierarchy."""
    rel = cgroups_path.lstrip("/")
    return [p for p in [_CGROUP_ROOT / rel, *(d / rel for d in _CGROUP_ROOT.iterdir())]
            if p.is_dir()]


def diagnose(ctd: ContainerdEnv, cid: str) -> str:
    """What to look at when a call fails: the shim's log.json and containerd's log."""
    log_json = ctd.bundle(cid) / "log.json"
    text = log_json.read_text(errors="replace") if log_json.exists() else "(no log.json)"
    return f"--- {log_json} ---\n{text}\n--- containerd log ---\n{ctd.log(30)}"


def task_pids(ctd: ContainerdEnv, cid: str) -> list[int]:
    """``ctr task ps``: the shim runs ``<runtime> ps --format json ID``."""
    res = ctd.ctr("task", "ps", cid)
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    return sorted(int(line.split()[0]) for line in res.stdout.splitlines()[1:] if line.strip())


def wait_status(ctd: ContainerdEnv, cid: str, status: str, timeout: float = 10) -> None:
    helpers.wait_for(lambda: ctd.tasks().get(cid, (0, ""))[1] == status, timeout,
                     what=f"task {cid} to be {status}")


# ---- foreground ----------------------------------------------------------------


def test_run_foreground(ctd) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, "/probe", "hostname")
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    # ctr's default spec has a UTS namespace and no hostname: a copy of the host's.
    assert res.stdout == f"{os.uname().nodename}\n"
    assert cid not in ctd.containers()
    assert cid not in ctd.state_dirs()


def test_run_is_pid_one_in_its_own_namespace(ctd) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, "/probe", "pid")
    assert (res.returncode, res.stdout) == (0, "1\n"), res.stderr + diagnose(ctd, cid)


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_status_passes_through(ctd, code) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, "/probe", "exit", str(code))
    assert res.returncode == code, res.stderr + diagnose(ctd, cid)


def test_stdout_stderr(ctd) -> None:
    """The shim's FIFOs reach the container as its stdio, through the runtime."""
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, "sh", "-c", "echo out; echo err >&2")
    assert (res.returncode, res.stdout) == (0, "out\n"), res.stderr + diagnose(ctd, cid)
    assert res.stderr == "err\n"


def test_run_with_terminal(ctd) -> None:
    """``ctr run -t``: the shim passes ``--console-socket`` and gets the pty master."""
    cid = helpers.unique_id()
    cmd = ctd.ctr_argv("run", "--rm", "-t", *rt(ctd), IMAGE, cid,
                       "sh", "-c", "/probe tty; exit 5")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=30, encoding="utf-8")
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert re.search(r"^/dev/(pts/\d+|console)\r*$", child.before, re.M), (
        child.before + diagnose(ctd, cid))
    assert child.exitstatus == 5, child.before


@pytest.mark.parametrize(("argv", "message"), [
    (["/no/such/cmd"], 'exec: "/no/such/cmd": stat /no/such/cmd: no such file or directory'),
    (["no-such-cmd"], 'exec: "no-such-cmd": executable file not found in $PATH'),
    (["/etc/passwd"], 'exec: "/etc/passwd": permission denied'),
], ids=["path", "PATH", "not-executable"])
def test_bad_executable_fails_with_runtime_message(ctd, argv, message) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, *argv)
    assert res.returncode != 0
    # The shim puts the msg of log.json's last level=error line in its error.
    assert "OCI runtime create failed: " in res.stderr, res.stderr
    assert message in res.stderr, res.stderr
    assert cid not in ctd.containers()
    assert cid not in ctd.state_dirs()


# ---- detached: the whole task lifecycle ------------------------------------------


def test_detached_lifecycle(ctd) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "-d", *rt(ctd), IMAGE, cid, "/probe", "sleep", "1000")
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    bundle = ctd.bundle(cid)
    spec = json.loads((bundle / "config.json").read_text())
    try:
        pid, status = ctd.tasks()[cid]
        assert status == "RUNNING"
        # The pid the shim read from init.pid: the container's init, alive on the host.
        assert pid > 0
        assert (bundle / "init.pid").read_text() == str(pid)
        assert Path(f"/proc/{pid}").exists()
        assert cid in ctd.state_dirs()

        res = ctd.ctr("task", "exec", "--exec-id", "e1", cid, "/probe", "echo", "hi")
        assert (res.returncode, res.stdout) == (0, "hi\n"), res.stderr + diagnose(ctd, cid)
        res = ctd.ctr("task", "exec", "--exec-id", "e2", cid, "/probe", "exit", "3")
        assert res.returncode == 3, res.stderr + diagnose(ctd, cid)

        # `ps --format json`: a JSON array of host pids.
        assert task_pids(ctd, cid) == [pid]
        res = ctd.ctr("task", "exec", "-d", "--exec-id", "e3", cid, "/probe", "sleep", "1000")
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        pids = helpers.wait_for(lambda: len(task_pids(ctd, cid)) == 2 and task_pids(ctd, cid),
                                what="the exec in ps")
        assert pid in pids
        assert all(Path(f"/proc/{p}").exists() for p in pids), pids

        res = ctd.ctr("task", "pause", cid)
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        wait_status(ctd, cid, "PAUSED")
        res = ctd.ctr("task", "resume", cid)
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        wait_status(ctd, cid, "RUNNING")

        res = ctd.ctr("task", "kill", "--signal", "SIGKILL", cid)
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        wait_status(ctd, cid, "STOPPED")
        # Killing the init of a pid namespace takes its execs with it.
        helpers.wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids),
                         what="the task's processes to be gone")

        res = ctd.ctr("task", "delete", cid)
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        assert cid not in ctd.tasks()
        assert cid not in ctd.state_dirs()
    finally:
        res = ctd.ctr("container", "delete", cid)
    assert res.returncode == 0, res.stderr
    assert cid not in ctd.containers()
    cgroups_path = spec.get("linux", {}).get("cgroupsPath")
    if cgroups_path:
        assert cgroup_dirs(cgroups_path) == []


@pytest.mark.parametrize(("probe_args", "signal", "code", "output"), [
    (["trap"], "SIGTERM", 0, "ready\nsignal 15\n"),
    (["sleep", "1000"], "SIGKILL", 137, ""),
], ids=["trapped-SIGTERM", "SIGKILL"])
def test_kill_foreground_task(ctd, tmp_path, probe_args, signal, code, output) -> None:
    """``ctr task kill`` reaches the init; ``ctr run`` gets its exit status (128+n if killed)."""
    cid = helpers.unique_id()
    out, err = tmp_path / "out", tmp_path / "err"
    proc = ctd.ctr_background("run", "--rm", *rt(ctd), IMAGE, cid, "/probe", *probe_args,
                              out=out, err=err)
    try:
        helpers.wait_for(lambda: ctd.tasks().get(cid, (0, ""))[1] == "RUNNING"
                         and (probe_args != ["trap"] or out.read_text() == "ready\n"),
                         timeout=20, what=f"{cid} to run")
        res = ctd.ctr("task", "kill", "--signal", signal, cid)
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (rc, out.read_text()) == (code, output), err.read_text() + diagnose(ctd, cid)
    assert cid not in ctd.state_dirs()


def test_exec_missing_executable_fails_with_runtime_message(ctd) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "-d", *rt(ctd), IMAGE, cid, "/probe", "sleep", "1000")
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    try:
        res = ctd.ctr("task", "exec", "--exec-id", "bad", cid, "/no/such/cmd")
        assert res.returncode != 0
        assert "OCI runtime exec failed" in res.stderr, res.stderr
        assert "no such file or directory" in res.stderr, res.stderr
        # The task itself is unaffected.
        assert ctd.tasks()[cid][1] == "RUNNING"
    finally:
        ctd.ctr("task", "kill", "--signal", "SIGKILL", cid)
        wait_status(ctd, cid, "STOPPED")
        ctd.ctr("task", "delete", cid)
        ctd.ctr("container", "delete", cid)


def test_delete_running_task_needs_force(ctd) -> None:
    cid = helpers.unique_id()
    res = ctd.ctr("run", "-d", *rt(ctd), IMAGE, cid, "/probe", "sleep", "1000")
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    try:
        res = ctd.ctr("task", "delete", cid)
        assert res.returncode != 0
        assert ctd.tasks()[cid][1] == "RUNNING"
        res = ctd.ctr("task", "delete", "--force", cid)
        assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
        assert cid not in ctd.tasks()
        assert cid not in ctd.state_dirs()
    finally:
        ctd.ctr("container", "delete", cid)


# ---- what the shim passes ---------------------------------------------------------


@pytest.fixture
def traced(ctd: ContainerdEnv, tmp_path: Path) -> Iterator[tuple[ContainerdEnv, Path]]:
    """``ctd`` with the runtime replaced by a shell wrapper that logs its argv."""
    wrapper = tmp_path / "bin" / ctd.runtime.name
    wrapper.parent.mkdir()
    log = tmp_path / "argv.log"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {ctd.runtime} "$@"\n')
    wrapper.chmod(0o755)
    real = ctd.runtime
    ctd.runtime = wrapper
    try:
        yield ctd, log
    finally:
        ctd.runtime = real


def test_shim_passes_root_and_json_log_on_every_call(traced) -> None:
    ctd, log = traced
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, "/probe", "exit", "0")
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    calls = log.read_text().splitlines()
    bundle = ctd.bundle(cid)
    prefix = (f"--root {containerd_env.runc_root()} --log {bundle}/log.json "
              "--log-format json ")
    verbs = []
    for call in calls:
        # containerd 1.7's shim runs a bare `features` when it starts (1.6's doesn't).
        if call == "features":
            continue
        assert call.startswith(prefix), call
        verbs.append(call[len(prefix):].split()[0])
    # `ctr task delete` deletes, then containerd's cleanup of the exited shim
    # runs `delete --force` again (the shim ignores "does not exist").
    assert verbs[:2] == ["create", "start"], calls
    assert verbs[2:] and set(verbs[2:]) == {"delete"}, calls
    create = next(c for c in calls if c.startswith(prefix + "create "))
    assert f"--bundle {bundle} " in create
    assert f"--pid-file {bundle}/init.pid " in create
    assert cid not in ctd.state_dirs()


def test_features_is_valid_json(ctd) -> None:
    """containerd 1.7's shim runs ``features`` at start (and tolerates a failure);
    check its output has what go-runc's ``features.Features`` requires."""
    res = helpers.run_pyoci("features", root=containerd_env.runc_root())
    assert res.returncode == 0, res.stderr
    features = json.loads(res.stdout)
    assert features["ociVersionMin"] and features["ociVersionMax"]


def test_nothing_left_in_the_runtime_root(ctd) -> None:
    """A finished run leaves no container dir (pyoci's dotfiles, e.g. ``.cache``, may stay)."""
    cid = helpers.unique_id()
    res = ctd.ctr("run", "--rm", *rt(ctd), IMAGE, cid, "/probe", "exit", "0")
    assert res.returncode == 0, res.stderr + diagnose(ctd, cid)
    assert ctd.state_dirs() == set()
    assert ctd.containers() == []
    assert ctd.tasks() == {}
