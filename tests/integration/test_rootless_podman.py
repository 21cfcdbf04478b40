"""Rootless podman driving the runtime: an unprivileged user's ``podman --runtime RT``.

podman runs the runtime as uid 0 of its own user namespace (uid 0 is the
user, 1..65536 its subordinate range), with ``XDG_RUNTIME_DIR`` set and no
``--root``; the runtime has to notice it is not really root. The session makes
its own user for this (``rootless_podman_env``) and removes it afterwards.
``PYOCI_TEST_RUNTIME=/usr/sbin/runc`` runs the same tests against runc.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# Explicit, so `import rootless_podman_env` also works under --import-mode=importlib.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers
import rootless_env
import rootless_podman_env
from podman_env import IMAGE
from rootless_podman_env import RootlessPodman

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]


@pytest.fixture(scope="session")
def rlpodman(rootfs_template: Path) -> Iterator[RootlessPodman]:
    """The session's rootless podman user, with the busybox + /probe image imported."""
    for tool in ("useradd", "newuidmap", "newgidmap", "slirp4netns"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (see .ci/install-deps)", pytrace=False)
    with rootless_podman_env.rootless_podman(rootfs_template) as env:
        yield env


@pytest.fixture
def rpm(rlpodman: RootlessPodman) -> Iterator[RootlessPodman]:
    """``rlpodman``, checked after each test: no container or runtime state left."""
    yield from rootless_podman_env.checked(rlpodman)


def start_sleeper(rpm: RootlessPodman, *extra: str) -> str:
    name = f"sleeper-{helpers.unique_id()}"
    res = rpm.podman("run", "-d", "--name", name, *extra, IMAGE, "sleep", "1000", runtime=True)
    if res.returncode != 0:
        logs = rpm.podman("logs", name)
        rpm.podman("rm", "--force", "--time", "0", name)
        raise AssertionError(f"podman run -d failed ({res.returncode}): {res.stderr}\n"
                             f"container log: {logs.stdout}{logs.stderr}")
    cid = res.stdout.strip().splitlines()[-1]
    assert rpm.inspect(cid, "{{.State.Status}}") == "running"
    return cid


def uid_map(text: str) -> list[tuple[int, int, int]]:
    return [tuple(map(int, line.split())) for line in text.splitlines() if line.strip()]


def test_run_rm_echo(rpm) -> None:
    """The issue's "done": ``podman --runtime RT run --rm busybox echo hi`` as a user."""
    res = rpm.run(IMAGE, "echo", "hi")
    assert (res.returncode, res.stdout) == (0, "hi\n"), res.stderr
    assert rpm.podman("ps", "--all", "--quiet").stdout == ""
    assert rpm.state_dirs() == set()


def test_container_is_in_podmans_user_namespace(rpm) -> None:
    res = rpm.run(IMAGE, "sh", "-c", "cat /proc/self/uid_map; id -u")
    assert res.returncode == 0, res.stderr
    *maps, uid = res.stdout.splitlines()
    start, count = rpm.user.subuid
    assert uid_map("\n".join(maps)) == [(0, rpm.user.uid, 1), (1, start, count)]
    assert uid == "0"


def test_detached_exec_stop_rm(rpm) -> None:
    cid = start_sleeper(rpm)
    try:
        # podman passes no --root: the runtime keeps its state under XDG_RUNTIME_DIR.
        assert (rpm.state_root / cid).is_dir(), f"no {rpm.state_root / cid}"
        res = rpm.podman("exec", cid, "id", "-u")
        assert (res.returncode, res.stdout) == (0, "0\n"), res.stderr
        res = rpm.podman("exec", "-u", "1000", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd")
        assert (res.returncode, res.stdout) == (0, "1000\n/tmp\n"), res.stderr
        assert rpm.podman("exec", cid, "sh", "-c", "exit 3").returncode == 3
        res = rpm.podman("exec", cid, "/no/such/cmd")
        assert res.returncode == 127, res.stderr
        # sleep is pid 1 without a SIGTERM handler: podman waits out -t 2, then SIGKILL.
        res = rpm.podman("stop", "-t", "2", cid, timeout=60)
        assert res.returncode == 0, res.stderr
        assert rpm.inspect(cid, "{{.State.Status}}") == "exited"
        assert rpm.inspect(cid, "{{.State.ExitCode}}") == "137"
        res = rpm.podman("rm", cid)
        assert res.returncode == 0, res.stderr
        assert rpm.podman("container", "exists", cid).returncode == 1
        assert not (rpm.state_root / cid).exists()
    finally:
        rpm.podman("rm", "--force", "--time", "0", cid)


def test_interactive_terminal(rpm) -> None:
    """``-it``: podman's stdin is a terminal, the shell in the container reads from it."""
    rc, screen = rpm.podman_tty("run", "-it", "--rm", IMAGE, "sh",
                                send=["tty; echo got-$((6*7))", "exit 5"])
    assert rc == 5, screen
    assert "got-42" in screen, screen
    assert "/dev/pts/0" in screen, screen


def test_userns_keep_id(rpm) -> None:
    """``--userns=keep-id``: the user's own uid inside, mapped to the user outside."""
    res = rpm.run("--userns=keep-id", IMAGE, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map")
    assert res.returncode == 0, res.stderr
    uid, gid, *maps = res.stdout.splitlines()
    assert (int(uid), int(gid)) == (rpm.user.uid, rpm.user.gid)
    # Seen from the container: its uid U is uid 0 of podman's namespace, i.e. the user.
    assert (rpm.user.uid, 0, 1) in uid_map("\n".join(maps)), res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_publish_port_slirp4netns(rpm) -> None:
    """``-p`` with slirp4netns: the host reaches busybox httpd in the container."""
    port, name = _free_port(), f"httpd-{helpers.unique_id()}"
    try:
        res = rpm.podman("run", "-d", "--name", name, "--network", "slirp4netns",
                         "-p", f"127.0.0.1:{port}:8080", IMAGE, "sh", "-c",
                         "mkdir /www && echo pong > /www/index.html && "
                         "exec httpd -f -p 8080 -h /www", runtime=True)
        assert res.returncode == 0, res.stderr
        cid = res.stdout.strip().splitlines()[-1]
        # slirp4netns's tap device: the container has its own network namespace.
        res = rpm.podman("exec", cid, "ip", "-o", "-4", "addr", "show", "tap0")
        assert res.returncode == 0, res.stderr
        assert " 10.0.2.100/" in res.stdout, res.stdout
        body, deadline = None, time.monotonic() + 20
        while body is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    body = r.read()
            if body is None:
                time.sleep(0.2)
        assert body == b"pong\n"
    finally:
        rpm.podman("rm", "--force", "--time", "0", name, timeout=60)


@pytest.mark.v2lane
def test_memory_limit_in_a_delegated_cgroup_v2(rpm) -> None:
    """``--memory`` and ``--pids-limit`` as a user on a cgroup v2 host whose administrator
    delegated a subtree to the user (the VM lane). podman's cgroupfs manager passes no
    cgroupsPath rootless; the runtime makes the cgroup beside the caller's own, in the
    delegated subtree, and the container sees its limits through its cgroup namespace."""
    with rootless_env.delegate(rpm.user) as parent:
        res = rpm.run("--memory", "64m", "--pids-limit", "40", IMAGE, "cat",
                      "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max", "/proc/self/cgroup")
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == [str(64 << 20), "40", "0::/"], res.stdout
        cid = start_sleeper(rpm, "--memory", "96m")
        try:
            pid = rpm.inspect(cid, "{{.State.Pid}}")
            cgroup = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
            assert Path(cgroup).parent == Path(parent), cgroup
            leaf = Path("/sys/fs/cgroup") / cgroup.lstrip("/")
            assert (leaf / "memory.max").read_text() == f"{96 << 20}\n"
            res = rpm.podman("update", "--memory", "128m", cid)
            assert res.returncode == 0, res.stderr
            assert (leaf / "memory.max").read_text() == f"{128 << 20}\n"
            assert rpm.podman("rm", "--force", "--time", "0", cid).returncode == 0
            assert not leaf.exists()
        finally:
            rpm.podman("rm", "--force", "--time", "0", cid)
