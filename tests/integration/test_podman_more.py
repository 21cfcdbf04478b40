"""podman 4.3 driving pyoci, beyond ``test_podman.py``: ttys, exec, lifecycle,
run options, networking and cgroup resources.

Same private podman setup (``podman_env``) with ``--runtime <pyoci>``;
``PYOCI_TEST_RUNTIME=/usr/sbin/runc`` runs the same tests against runc.
Networking stays on the host: ``--network none``, or podman's default bridge
(netavark) reached from the host over loopback through a published port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

# Explicit, so `import podman_env` also works under --import-mode=importlib.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers
import podman_env
from podman_env import IMAGE, PodmanEnv

pytestmark = pytest.mark.integration

PROMPT = r"[#$] "


@pytest.fixture(scope="session")
def podman_more(rootfs_template: Path) -> Iterator[PodmanEnv]:
    """The session's private podman, with the busybox + /probe image imported."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (bash .ci/install-deps test)", pytrace=False)
    if not podman_env.runtime_path().is_file():
        pytest.fail(f"runtime not found: {podman_env.runtime_path()}", pytrace=False)
    with podman_env.podman_env(rootfs_template) as env:
        yield env


@pytest.fixture
def pm(podman_more: PodmanEnv) -> Iterator[PodmanEnv]:
    """``podman_more``, checked after each test: no container or state dir left."""
    yield from podman_env.checked(podman_more)


# ---- helpers -----------------------------------------------------------------


def run_ok(pm: PodmanEnv, *args: str | os.PathLike[str], network: str = "none") -> str:
    """``podman run --rm ARGS`` with the runtime; its stdout, failing on a non-zero exit."""
    res = pm.podman("run", "--rm", "--network", network, *args, runtime=True)
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr}"
    return res.stdout


def start(pm: PodmanEnv, *args: str, network: str = "none", check_running: bool = True) -> str:
    """``podman run -d ARGS`` with the runtime; the container id, once it is running."""
    res = pm.podman("run", "-d", "--network", network, *args, runtime=True)
    if res.returncode != 0:
        raise AssertionError(f"podman run -d failed ({res.returncode}): {res.stderr}")
    cid = res.stdout.strip().splitlines()[-1]
    if check_running:
        assert pm.inspect(cid, "{{.State.Status}}") == "running"
    return cid


def start_sleeper(pm: PodmanEnv, *extra: str, network: str = "none") -> str:
    return start(pm, *extra, IMAGE, "sleep", "1000", network=network)


def remove(pm: PodmanEnv, cid: str) -> None:
    pm.podman("rm", "--force", "--time", "0", cid, check=True)


@contextlib.contextmanager
def running(pm: PodmanEnv, *args: str, network: str = "none") -> Iterator[str]:
    """A detached container (``podman run -d ARGS``), force-removed afterwards."""
    cid = start(pm, *args, network=network)
    try:
        yield cid
    finally:
        remove(pm, cid)
    assert not (pm.state_root / cid).exists(), f"{pm.state_root / cid} left behind"
    assert podman_env.container_cgroups(cid) == []


def pid_of(pm: PodmanEnv, cid: str) -> int:
    pid = int(pm.inspect(cid, "{{.State.Pid}}"))
    assert pid > 0
    return pid


def wait_until(what: str, check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def logs(pm: PodmanEnv, cid: str) -> str:
    return pm.podman("logs", cid, check=True).stdout


def wait_for_log(pm: PodmanEnv, cid: str, text: str) -> None:
    wait_until(f"{text!r} in the logs of {cid[:12]}", lambda: text in logs(pm, cid))


def spawn(pm: PodmanEnv, *args: str, runtime: bool = False) -> pexpect.spawn:
    """``podman ARGS`` on a real pty (pexpect), in the private setup."""
    argv = list(args)
    if runtime:
        argv[1:1] = ["--runtime", os.fspath(pm.runtime)]
    return pexpect.spawn("podman", argv, env=pm.env(), cwd=os.fspath(pm.base),
                         encoding="utf-8", timeout=30, dimensions=(24, 200))


def drive_shell(child: pexpect.spawn) -> None:
    """Talk to an interactive busybox sh on the pty; it exits 3."""
    try:
        child.expect(PROMPT)
        child.sendline("tty")
        # The echo of the typed line can't match: it holds no "/dev/".
        child.expect(r"/dev/\S+")
        assert child.after == "/dev/pts/0"
        child.expect(PROMPT)
        child.sendline("echo hi-$((1+1))")
        child.expect(r"hi-\d")
        assert child.after == "hi-2"
        child.expect(PROMPT)
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
        child.close()
        assert (child.exitstatus, child.signalstatus) == (3, None)
    finally:
        if child.isalive():
            child.terminate(force=True)


# ---- interactive ttys --------------------------------------------------------


def test_run_interactive_tty(pm) -> None:
    name = f"tty-{helpers.unique_id()}"
    drive_shell(spawn(pm, "run", "--rm", "-it", "--name", name, "--network", "none",
                      IMAGE, "sh", runtime=True))
    wait_until("the --rm container to go", lambda: pm.podman(
        "container", "exists", name).returncode == 1)


def test_exec_interactive_tty(pm) -> None:
    with running(pm, IMAGE, "sleep", "1000") as cid:
        drive_shell(spawn(pm, "exec", "-it", cid, "sh"))
        assert pm.inspect(cid, "{{.State.Status}}") == "running"


# ---- exec --------------------------------------------------------------------


def test_exec_variants(pm) -> None:
    with running(pm, IMAGE, "sleep", "1000") as cid:
        def exec_ok(*args: str) -> str:
            res = pm.podman("exec", *args)
            assert res.returncode == 0, f"podman exec {args}: {res.stderr}"
            return res.stdout

        assert exec_ok(cid, "/probe", "echo", "plain") == "plain\n"
        # Not the container's pid 1: a new process in its pid namespace.
        assert int(exec_ok(cid, "/probe", "pid")) > 1
        # uid 1000 has no /etc/passwd entry: podman asks for gid 0, and for
        # exec it passes no additionalGids at all (runc gives the same).
        assert exec_ok("-u", "1000", cid, "/probe", "id") == "uid=1000 gid=0 groups=\n"
        assert exec_ok("-u", "1000:1000", cid, "/probe", "id") == \
            "uid=1000 gid=1000 groups=\n"
        assert exec_ok("-e", "FOO=bar", cid, "sh", "-c", 'echo "$FOO"') == "bar\n"
        assert exec_ok("-w", "/tmp", cid, "/probe", "cwd") == "/tmp\n"


# ---- lifecycle and inspection ------------------------------------------------


def test_logs(pm) -> None:
    cid = start(pm, IMAGE, "sh", "-c", "echo out-line; echo err-line >&2", check_running=False)
    try:
        assert pm.podman("wait", cid, check=True, timeout=30).stdout.strip() == "0"
        res = pm.podman("logs", cid, check=True)
        assert (res.stdout, res.stderr) == ("out-line\n", "err-line\n")
    finally:
        remove(pm, cid)


def test_stop_sends_sigterm(pm) -> None:
    # /probe trap handles SIGTERM even as pid 1: stop must not need SIGKILL.
    cid = start(pm, IMAGE, "/probe", "trap")
    try:
        wait_for_log(pm, cid, "ready")
        began = time.monotonic()
        pm.podman("stop", "-t", "30", cid, check=True, timeout=60)
        assert time.monotonic() - began < 20
        assert logs(pm, cid) == "ready\nsignal 15\n"
        assert pm.inspect(cid, "{{.State.ExitCode}}") == "0"
    finally:
        remove(pm, cid)


def test_stop_falls_back_to_sigkill(pm) -> None:
    # sleep as pid 1 has no SIGTERM handler, so the kernel drops SIGTERM.
    cid = start_sleeper(pm)
    try:
        began = time.monotonic()
        pm.podman("stop", "-t", "1", cid, check=True, timeout=60)
        assert time.monotonic() - began >= 1
        state = json.loads(pm.inspect(cid, "{{json .State}}"))
        assert (state["Status"], state["ExitCode"]) == ("exited", 128 + 9), state
    finally:
        remove(pm, cid)


def test_kill_usr1_reaches_trapping_process(pm) -> None:
    cid = start(pm, IMAGE, "/probe", "trap")
    try:
        wait_for_log(pm, cid, "ready")
        pm.podman("kill", "-s", "USR1", cid, check=True)
        assert pm.podman("wait", cid, check=True, timeout=30).stdout.strip() == "0"
        assert logs(pm, cid) == "ready\nsignal 10\n"
    finally:
        remove(pm, cid)


def test_kill_sigkill(pm) -> None:
    cid = start_sleeper(pm)
    try:
        pm.podman("kill", "-s", "KILL", cid, check=True)
        assert pm.podman("wait", cid, check=True, timeout=30).stdout.strip() == str(128 + 9)
    finally:
        remove(pm, cid)


def test_restart_runs_again_with_new_pid(pm) -> None:
    with running(pm, IMAGE, "sleep", "1000") as cid:
        first = pid_of(pm, cid)
        pm.podman("restart", "-t", "0", cid, check=True, timeout=60)
        assert pm.inspect(cid, "{{.State.Status}}") == "running"
        second = pid_of(pm, cid)
        assert second != first
        assert Path(f"/proc/{second}/cmdline").read_bytes() == b"sleep\x001000\x00"
        assert not Path(f"/proc/{first}").exists()
        assert pm.podman("exec", cid, "true").returncode == 0


def test_pause_unpause(pm) -> None:
    with running(pm, IMAGE, "sleep", "1000") as cid:
        freezer = podman_env.cgroup_v1_dir(pid_of(pm, cid), "freezer") / "freezer.state"
        pm.podman("pause", cid, check=True)
        state = json.loads(pm.inspect(cid, "{{json .State}}"))
        assert (state["Status"], state["Paused"]) == ("paused", True), state
        assert freezer.read_text().strip() == "FROZEN"
        pm.podman("unpause", cid, check=True)
        state = json.loads(pm.inspect(cid, "{{json .State}}"))
        assert (state["Status"], state["Paused"], state["Running"]) == (
            "running", False, True), state
        assert freezer.read_text().strip() == "THAWED"


def test_rm_force_running(pm) -> None:
    # A SIGTERM-handling pid 1, so rm -f doesn't wait out the 10 s stop timeout.
    cid = start(pm, IMAGE, "/probe", "trap")
    wait_for_log(pm, cid, "ready")
    pid = pid_of(pm, cid)
    pm.podman("rm", "-f", cid, check=True, timeout=60)
    assert pm.podman("container", "exists", cid).returncode == 1
    assert not Path(f"/proc/{pid}").exists()
    assert not (pm.state_root / cid).exists()
    assert podman_env.container_cgroups(cid) == []


def test_top(pm) -> None:
    with running(pm, IMAGE, "/probe", "sleep", "inf") as cid:
        res = pm.podman("top", cid, "pid", "comm", "args", check=True)
        rows = [line.split(None, 2) for line in res.stdout.splitlines()[1:]]
        assert ["1", "probe", "/probe sleep inf"] in [
            [r[0], r[1], r[2].strip()] for r in rows], res.stdout


def test_inspect_state(pm) -> None:
    cid = start_sleeper(pm)
    try:
        state = json.loads(pm.inspect(cid, "{{json .State}}"))
        assert (state["Status"], state["Running"], state["ExitCode"]) == (
            "running", True, 0), state
        # The pid pyoci wrote to --pid-file: the container's sleep, on the host.
        pid = state["Pid"]
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001000\x00"
        assert state["ConmonPid"] == int(Path(f"/proc/{pid}/stat").read_text()
                                         .rsplit(")", 1)[1].split()[1])
        pm.podman("kill", "-s", "KILL", cid, check=True)
        pm.podman("wait", cid, check=True, timeout=30)
        state = json.loads(pm.inspect(cid, "{{json .State}}"))
        assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == (
            "exited", False, 0, 128 + 9), state
    finally:
        remove(pm, cid)


# ---- run options -------------------------------------------------------------


def test_init_runs_catatonit_as_pid1(pm) -> None:
    out = run_ok(pm, "--init", IMAGE, "sh", "-c",
                 "/probe readlink /proc/1/exe; sha256sum /proc/1/exe; /probe pid")
    exe, digest, pid = out.splitlines()
    assert exe == "/run/podman-init"
    assert digest.split()[0] == hashlib.sha256(podman_env.CATATONIT.read_bytes()).hexdigest()
    assert int(pid) > 1


def test_volume(pm, tmp_path) -> None:
    host = tmp_path / "vol"
    host.mkdir()
    (host / "from-host").write_text("host data\n")
    out = run_ok(pm, "-v", f"{host}:/mnt", IMAGE, "sh", "-c",
                 "cat /mnt/from-host; echo written-inside > /mnt/from-ctr")
    assert out == "host data\n"
    assert (host / "from-ctr").read_text() == "written-inside\n"


def test_tmpfs(pm) -> None:
    out = run_ok(pm, "--tmpfs", "/scratch", IMAGE, "sh", "-c",
                 "/probe write /scratch/f x && /probe mounts")
    mounts = {m.target: m for m in helpers.parse_mounts(out)}
    assert mounts["/scratch"].fstype == "tmpfs", sorted(mounts)
    assert "rw" in mounts["/scratch"].options


def test_read_only(pm) -> None:
    res = pm.podman("run", "--rm", "--network", "none", "--read-only", IMAGE, "sh", "-c",
                    "/probe write /rootfile x; echo root=$?; /probe write /tmp/f x; echo tmp=$?;"
                    " /probe mounts", runtime=True)
    assert res.returncode == 0, res.stderr
    assert "root=1\ntmp=0\n" in res.stdout
    assert res.stderr == "errno=30\n"  # EROFS
    mounts = {m.target: m for m in helpers.parse_mounts(res.stdout.split("tmp=0\n", 1)[1])}
    assert "ro" in mounts["/"].options
    # podman's default --read-only-tmpfs: writable tmpfs on /tmp, /var/tmp, /run.
    for target in ("/tmp", "/var/tmp", "/run"):
        assert mounts[target].fstype == "tmpfs", target


def test_user(pm) -> None:
    assert run_ok(pm, "--user", "1000:1000", IMAGE, "/probe", "id") == \
        "uid=1000 gid=1000 groups=1000\n"


def test_hostname(pm) -> None:
    # podman writes /etc/hostname without a newline.
    assert run_ok(pm, "--hostname", "foo", IMAGE, "sh", "-c",
                  "/probe hostname; cat /etc/hostname") == "foo\nfoo"


# ---- network -----------------------------------------------------------------


def test_network_none_has_only_lo(pm) -> None:
    assert run_ok(pm, IMAGE, "/probe", "ls", "/sys/class/net") == "lo\n"


def test_bridge_network_joins_podmans_netns(pm) -> None:
    with running(pm, IMAGE, "sleep", "1000", network="bridge") as cid:
        # podman made the netns (netavark configured it) and passes its path
        # in config.json; the container must be in that one.
        cfg = json.loads((Path(pm.inspect(cid, "{{.StaticDir}}")) / "config.json").read_text())
        ns = next(n for n in cfg["linux"]["namespaces"] if n["type"] == "network")
        assert ns.get("path"), ns
        pid = pid_of(pm, cid)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(ns["path"]).st_ino
        links = pm.podman("exec", cid, "/probe", "ls", "/sys/class/net", check=True).stdout
        assert links.split() == ["eth0", "lo"], links
        addr = pm.podman("exec", cid, "ip", "-4", "-o", "addr", "show", "eth0",
                         check=True).stdout
        ip = pm.inspect(cid, "{{.NetworkSettings.IPAddress}}")
        assert ip and re.search(rf"inet {re.escape(ip)}/\d+", addr), (ip, addr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_published_port_reachable_over_loopback(pm) -> None:
    port = free_port()
    script = ("mkdir -p /www && echo hello-from-pyoci > /www/index.html"
              " && exec httpd -f -p 8080 -h /www")
    with running(pm, "-p", f"127.0.0.1:{port}:8080", IMAGE, "sh", "-c", script,
                 network="bridge"):
        body: list[bytes] = []

        def fetch() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    body.append(r.read())
                return True
            except OSError:
                return False

        wait_until(f"http://127.0.0.1:{port}/ to answer", fetch)
        assert body[-1] == b"hello-from-pyoci\n"


# ---- resources (cgroup v1) ---------------------------------------------------


def test_resource_limits(pm) -> None:
    with running(pm, "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20",
                 IMAGE, "sleep", "1000") as cid:
        pid = pid_of(pm, cid)

        def read(controller: str, name: str) -> str:
            return (podman_env.cgroup_v1_dir(pid, controller) / name).read_text().strip()

        assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
        quota, period = int(read("cpu", "cpu.cfs_quota_us")), int(read("cpu", "cpu.cfs_period_us"))
        assert quota / period == 0.5, (quota, period)
        assert read("pids", "pids.max") == "20"
        assert podman_env.cgroup_v1_dir(pid, "memory").name == f"libpod-{cid}"


def test_stats_no_stream(pm) -> None:
    with running(pm, "--memory", "64m", IMAGE, "sleep", "1000") as cid:
        res = pm.podman("stats", "--no-stream", "--format", "json", cid, check=True)
        rows = json.loads(res.stdout)
        assert [r["id"] for r in rows] == [cid[:12]], rows
        assert rows[0]["pids"] == "1"
        assert rows[0]["mem_usage"].endswith("/ 67.11MB"), rows


def test_update_memory(pm) -> None:
    with running(pm, "--memory", "64m", IMAGE, "sleep", "1000") as cid:
        limit = podman_env.cgroup_v1_dir(pid_of(pm, cid), "memory") / "memory.limit_in_bytes"
        assert limit.read_text().strip() == str(64 << 20)
        res = pm.podman("update", "--memory", "128m", cid)
        assert res.returncode == 0, res.stderr
        # podman runs `RT update --resources=FILE ID`; the runtime writes the cgroup.
        # (podman 4.3's inspect keeps showing HostConfig.Memory = 64m, with runc too.)
        assert limit.read_text().strip() == str(128 << 20)
