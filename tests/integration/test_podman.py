"""podman 4.x driving pyoci through conmon: the first real caller.

Every container runs with ``--runtime <real pyoci script>``, in a private
podman setup (``podman_env``). Tests that matter for both of podman's error
paths run twice: with pyoci in ``runtime_supports_json`` (podman passes
``--log-format=json --log FILE`` and reads FILE) and without (podman reads
what conmon forwards from pyoci's stderr). ``PYOCI_TEST_RUNTIME=/usr/sbin/runc``
runs the same tests against runc.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Explicit, so `import podman_env` also works under --import-mode=importlib.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers
import podman_env
from podman_env import IMAGE, PodmanEnv

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]

LOG_MODES = [pytest.param(True, id="json-log"), pytest.param(False, id="stderr-log")]


@pytest.fixture(scope="session")
def podman(rootfs_template: Path) -> Iterator[PodmanEnv]:
    """The session's private podman, with the busybox + /probe image imported."""
    if os.geteuid() != 0:
        pytest.fail("podman tests run rootful podman: run them as root", pytrace=False)
    if not podman_env.runtime_path().is_file():
        pytest.fail(f"runtime not found: {podman_env.runtime_path()}", pytrace=False)
    with podman_env.podman_env(rootfs_template) as env:
        yield env


@pytest.fixture
def pm(podman: PodmanEnv) -> Iterator[PodmanEnv]:
    """``podman``, checked after each test: no container, state dir or cgroup left.

    Containers the test forgot are removed first (and the test fails), so one
    failure doesn't cascade into the tests after it.
    """
    yield from podman_env.checked(podman)


def assert_gone(pm: PodmanEnv, cid: str) -> None:
    """Nothing of container ``cid`` is left in the runtime's state root or cgroups."""
    assert not (pm.state_root / cid).exists(), f"{pm.state_root / cid} left behind"
    assert podman_env.container_cgroups(cid) == []


def read_cid(cidfile: Path) -> str:
    cid = cidfile.read_text().strip()
    assert len(cid) == 64, cid
    return cid


# ---- the runtime podman runs, and the flags it gets --------------------------


@pytest.fixture
def traced(pm: PodmanEnv, tmp_path: Path) -> Iterator[tuple[PodmanEnv, Path]]:
    """``pm`` with its runtime replaced by a shell wrapper that logs its argv.

    The wrapper has the runtime's basename, so ``runtime_supports_json`` still
    matches it, and it ``exec``s the runtime so nothing else changes.
    """
    wrapper = tmp_path / "bin" / pm.runtime.name
    wrapper.parent.mkdir()
    log = tmp_path / "argv.log"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {pm.runtime} "$@"\n')
    wrapper.chmod(0o755)
    real = pm.runtime
    pm.runtime = wrapper
    try:
        yield pm, log
    finally:
        pm.runtime = real


@pytest.mark.parametrize("json_log", LOG_MODES)
def test_podman_passes_log_flags_only_in_json_mode(traced, json_log) -> None:
    pm, log = traced
    res = pm.run(IMAGE, "true", json_log=json_log)
    assert res.returncode == 0, res.stderr
    create = next(line for line in log.read_text().splitlines() if " create " in f" {line}")
    if json_log:
        assert create.startswith("--log-format=json --log "), create
    else:
        assert create.startswith("create "), create
    # Never --root: the runtime's default state root is what podman relies on.
    assert "--root" not in log.read_text()


# ---- run ---------------------------------------------------------------------


@pytest.mark.parametrize("json_log", LOG_MODES)
def test_run_echo(pm, tmp_path, json_log) -> None:
    cidfile = tmp_path / "cid"
    res = pm.run("--cidfile", cidfile, IMAGE, "echo", "hello", json_log=json_log)
    assert (res.returncode, res.stdout) == (0, "hello\n"), res.stderr
    assert_gone(pm, read_cid(cidfile))


def test_run_stdout_stderr_stdin(pm) -> None:
    res = pm.run("-i", IMAGE, "sh", "-c", "cat; echo err >&2", input="in\n")
    assert (res.returncode, res.stdout) == (0, "in\n"), res.stderr
    assert res.stderr == "err\n"


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_passes_through(pm, code) -> None:
    res = pm.run(IMAGE, "sh", "-c", f"exit {code}")
    assert res.returncode == code, res.stderr


@pytest.mark.parametrize("json_log", LOG_MODES)
@pytest.mark.parametrize("cmd", ["/no/such/cmd", "nosuchcmd"])
def test_missing_command_is_127(pm, tmp_path, json_log, cmd) -> None:
    # podman maps the runtime's "no such file or directory" and
    # "executable file not found in $PATH" to 127.
    cidfile = tmp_path / "cid"
    res = pm.run("--cidfile", cidfile, IMAGE, cmd, json_log=json_log)
    assert res.returncode == 127, res.stderr
    assert cmd in res.stderr
    assert "OCI runtime attempted to invoke a command that was not found" in res.stderr
    assert_gone(pm, read_cid(cidfile))


@pytest.mark.parametrize("json_log", LOG_MODES)
def test_not_executable_is_126(pm, json_log) -> None:
    # /etc/passwd exists but isn't executable: "permission denied" → 126.
    res = pm.run(IMAGE, "/etc/passwd", json_log=json_log)
    assert res.returncode == 126, res.stderr
    assert "permission denied" in res.stderr
    assert "OCI permission denied" in res.stderr


@pytest.mark.parametrize("json_log", LOG_MODES)
def test_create_error_reaches_podman(pm, json_log) -> None:
    # Any --ulimit replaces default_ulimits, so podman asks for nofile and
    # nproc 1048576 again: above the hard limit, so create must fail and
    # podman must show the runtime's reason.
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] in (resource.RLIM_INFINITY, 1048576):
        pytest.skip("the hard RLIMIT_NOFILE allows 1048576 here: nothing to exceed")
    res = pm.run("--ulimit", "nofile=1048576:1048576", IMAGE, "true", json_log=json_log)
    # runc says "operation not permitted" (podman: "OCI permission denied"),
    # pyoci names the limit (podman: "OCI runtime error"); both are 126.
    assert res.returncode == 126, res.stderr
    assert "rlimit" in res.stderr.lower(), res.stderr


def test_oci_log_is_one_json_object(pm) -> None:
    """The ``--log`` file podman reads back must be exactly one JSON object."""
    name = f"pyoci-log-{helpers.unique_id()}"
    res = pm.podman("create", "--name", name, "--network", "none", IMAGE, "/no/such/cmd",
                    runtime=True, check=True)
    cid = res.stdout.strip()
    try:
        res = pm.podman("start", "--attach", name)
        # `podman start` reports every failure as 125 (only `run` maps to 126/127).
        assert res.returncode == 125, res.stderr
        assert "no such file or directory" in res.stderr
        log = pm.ctr_run_dir(cid) / "oci-log"
        entry = podman_env.parse_oci_log(log.read_text())
        assert entry["level"] == "error", entry
        assert "no such file or directory" in entry["msg"], entry
        assert "time" in entry
    finally:
        pm.podman("rm", "--force", name)
    assert_gone(pm, cid)


# ---- the container podman builds ---------------------------------------------


def test_probe_hostname(pm, tmp_path) -> None:
    assert pm.run("--hostname", "pm-host", IMAGE, "/probe", "hostname",
                  check=True).stdout == "pm-host\n"
    # Without --hostname, podman sets the short container id.
    cidfile = tmp_path / "cid"
    res = pm.run("--cidfile", cidfile, IMAGE, "/probe", "hostname", check=True)
    assert res.stdout == read_cid(cidfile)[:12] + "\n"


def test_probe_user_cwd_env(pm) -> None:
    assert pm.run("--user", "1000:1000", IMAGE, "/probe", "id",
                  check=True).stdout == "uid=1000 gid=1000 groups=1000\n"
    res = pm.run("-w", "/tmp", "-e", "PM_VAR=pm-value", IMAGE, "sh", "-c",
                 'pwd; echo "$PM_VAR"', check=True)
    assert res.stdout == "/tmp\npm-value\n"


def test_probe_pid_fds_rlimit(pm) -> None:
    assert pm.run(IMAGE, "/probe", "pid", check=True).stdout == "1\n"
    fds = helpers.parse_pairs(pm.run(IMAGE, "/probe", "fds", check=True).stdout)
    assert set(fds) == {"0", "1", "2"}, fds
    assert fds["0"] == "/dev/null"
    assert fds["1"].startswith("pipe:") and fds["2"].startswith("pipe:"), fds
    nofile = podman_env.ulimits()[0].split("=")[1].replace(":", " ")
    assert pm.run(IMAGE, "/probe", "rlimit", "nofile", check=True).stdout == nofile + "\n"


def test_probe_caps(pm) -> None:
    caps = helpers.parse_status(pm.run(IMAGE, "/probe", "caps", check=True).stdout)
    # CONTAINERS_CONF replaces /usr/share/containers/containers.conf, so these
    # are podman 4.3's built-in default_capabilities: CHOWN DAC_OVERRIDE FOWNER
    # FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT
    # MKNOD AUDIT_WRITE SETFCAP (runc gets the same set).
    expected = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}
    assert helpers.cap_set(caps["CapEff"]) == expected
    assert helpers.cap_set(caps["CapBnd"]) == expected
    assert caps["NoNewPrivs"] == "0"


def test_probe_mounts(pm) -> None:
    mounts = {m.target: m for m in
              helpers.parse_mounts(pm.run(IMAGE, "/probe", "mounts", check=True).stdout)}
    for target in ("/etc/hostname", "/etc/hosts", "/run/.containerenv", "/dev/shm",
                   "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup"):
        assert target in mounts, sorted(mounts)
    assert mounts["/proc"].fstype == "proc"
    assert "ro" in mounts["/proc/sys"].options
    assert "ro" in mounts["/sys"].options


def test_terminal(pm) -> None:
    # -t: conmon passes --console-socket and gets the pty master from pyoci.
    res = pm.run("-t", IMAGE, "sh", "-c", "tty; echo $TERM")
    assert res.returncode == 0, res.stderr
    assert res.stdout.replace("\r\n", "\n") == "/dev/pts/0\nxterm\n"


# ---- detached containers: stop, exec, pause, rm ------------------------------


def start_sleeper(pm: PodmanEnv, *extra: str) -> str:
    name = f"sleeper-{helpers.unique_id()}"
    res = pm.podman("run", "-d", "--name", name, "--network", "none", *extra, IMAGE,
                    "sleep", "1000", runtime=True)
    if res.returncode != 0:
        # What the container (and pyoci's init, whose stderr it is) wrote.
        logs = pm.podman("logs", name)
        raise AssertionError(f"podman run -d failed ({res.returncode}): {res.stderr}\n"
                             f"container log: {logs.stdout}{logs.stderr}")
    cid = res.stdout.strip().splitlines()[-1]
    assert pm.inspect(cid, "{{.State.Status}}") == "running"
    # The pid conmon read from pyoci's --pid-file.
    assert int(pm.inspect(cid, "{{.State.Pid}}")) > 0
    return cid


def stop_and_rm(pm: PodmanEnv, cid: str, timeout: int) -> tuple[int, float]:
    """``podman stop -t TIMEOUT``; return the exit code and how long stop took."""
    start = time.monotonic()
    res = pm.podman("stop", "-t", str(timeout), cid, timeout=timeout + 30)
    took = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert pm.inspect(cid, "{{.State.Status}}") == "exited"
    code = int(pm.inspect(cid, "{{.State.ExitCode}}"))
    pm.podman("rm", cid, check=True)
    assert pm.podman("container", "exists", cid).returncode == 1
    return code, took


def test_detached_stop_falls_back_to_kill(pm) -> None:
    cid = start_sleeper(pm)
    # podman passes no --root: the state is in the runtime's default root.
    assert (pm.state_root / cid).is_dir(), f"no {pm.state_root / cid}"
    assert podman_env.container_cgroups(cid), "no libpod-<id> cgroup"
    # sleep is pid 1 with no SIGTERM handler: the kernel drops SIGTERM, so
    # podman waits out -t 2 and sends SIGKILL.
    code, took = stop_and_rm(pm, cid, 2)
    assert code == 128 + 9
    assert took >= 2
    assert_gone(pm, cid)


def test_rm_force_one_by_one_while_the_others_run(pm) -> None:
    """Three detached containers share podman's ``/libpod_parent``: ``rm -f`` takes only its own.

    Seen before: the first container had recorded the shared parent as its own, so its
    ``pyoci delete --force`` walked into the siblings' cgroups, podman exited 125 and the
    state stayed under the runtime's root.
    """
    cids = [start_sleeper(pm) for _ in range(3)]
    for i, cid in enumerate(cids):
        res = pm.podman("rm", "-f", cid, timeout=60)
        assert res.returncode == 0, res.stderr
        assert_gone(pm, cid)
        for other in cids[i + 1:]:
            assert pm.inspect(other, "{{.State.Status}}") == "running"
            assert (pm.state_root / other).is_dir()
            assert podman_env.container_cgroups(other), f"libpod-{other} cgroup removed"


@pytest.mark.skipif(not podman_env.CATATONIT.is_file(),
                    reason=f"{podman_env.CATATONIT} (catatonit) is not installed")
def test_detached_stop_with_init(pm) -> None:
    # --init: catatonit is pid 1 and forwards SIGTERM, so sleep dies at once.
    cid = start_sleeper(pm, "--init")
    code, took = stop_and_rm(pm, cid, 10)
    assert code == 128 + 15
    assert took < 10
    assert_gone(pm, cid)


@pytest.mark.parametrize("json_log", LOG_MODES)
def test_exec(pm, json_log) -> None:
    cid = start_sleeper(pm)
    try:
        ex = ["exec", cid]
        res = pm.podman(*ex, "/probe", "ppid", json_log=json_log)
        assert (res.returncode, res.stdout) == (0, "0\n"), res.stderr
        res = pm.podman("exec", "-u", "1000", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd",
                        json_log=json_log)
        assert (res.returncode, res.stdout) == (0, "1000\n/tmp\n"), res.stderr
        assert pm.podman(*ex, "sh", "-c", "exit 3", json_log=json_log).returncode == 3
        res = pm.podman(*ex, "/no/such/cmd", json_log=json_log)
        assert res.returncode == 127, res.stderr
        res = pm.podman(*ex, "/etc/passwd", json_log=json_log)
        assert res.returncode == 126, res.stderr
        res = pm.podman("exec", "-t", cid, "tty", json_log=json_log)
        assert (res.returncode, res.stdout.strip()) == (0, "/dev/pts/0"), res.stderr
    finally:
        pm.podman("rm", "--force", "--time", "0", cid, check=True)
    assert_gone(pm, cid)


def test_pause_unpause(pm) -> None:
    cid = start_sleeper(pm)
    try:
        pm.podman("pause", cid, check=True)
        assert pm.inspect(cid, "{{.State.Status}}") == "paused"
        pm.podman("unpause", cid, check=True)
        assert pm.inspect(cid, "{{.State.Status}}") == "running"
        assert pm.podman("exec", cid, "true").returncode == 0
    finally:
        pm.podman("rm", "--force", "--time", "0", cid, check=True)
    assert_gone(pm, cid)


def test_create_then_start(pm) -> None:
    # podman create only stores the container; `podman init` runs the
    # runtime's create (podman calls that state "initialized"); start then
    # runs the runtime's `start`.
    cid = pm.podman("create", "--network", "none", IMAGE, "echo", "started",
                    runtime=True, check=True).stdout.strip()
    try:
        pm.podman("init", cid, check=True)
        assert pm.inspect(cid, "{{.State.Status}}") == "initialized"
        assert (pm.state_root / cid).is_dir()
        res = pm.podman("start", "--attach", cid)
        assert (res.returncode, res.stdout) == (0, "started\n"), res.stderr
        assert pm.inspect(cid, "{{.State.ExitCode}}") == "0"
        assert pm.podman("logs", cid, check=True).stdout == "started\n"
    finally:
        pm.podman("rm", "--force", cid, check=True)
    assert_gone(pm, cid)


def test_kill(pm) -> None:
    # pid 1 is immune to signals sent from inside its namespace (`kill -9 $$`
    # is a no-op there), so the KILL must come from podman, via `RT kill ID 9`.
    cid = start_sleeper(pm)
    try:
        pm.podman("kill", "--signal", "KILL", cid, check=True)
        pm.podman("wait", cid, check=True, timeout=30)
        assert pm.inspect(cid, "{{.State.ExitCode}}") == str(128 + 9)
    finally:
        pm.podman("rm", "--force", "--time", "0", cid, check=True)
    assert_gone(pm, cid)


def test_rm_force_running(pm) -> None:
    cid = start_sleeper(pm)
    pm.podman("rm", "--force", "--time", "0", cid, check=True)
    assert_gone(pm, cid)

