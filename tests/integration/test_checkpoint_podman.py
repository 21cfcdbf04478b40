"""podman ``container checkpoint`` / ``restore`` (and ``--export`` / ``--import``) on pyoci.

podman drives the runtime's ``checkpoint`` and ``restore`` verbs (restore
through conmon, which hands the runtime new stdio pipes). ``v2lane``: CRIU
works only in the VM lane (see test_checkpoint.py). ``PYOCI_TEST_RUNTIME=/usr/sbin/runc``
runs the same tests against runc.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import podman_env
from podman_env import IMAGE, PodmanEnv

pytestmark = [pytest.mark.integration, pytest.mark.v2lane]

COUNTER = ["/bin/sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done"]


@pytest.fixture(scope="module")
def podman(rootfs_template: Path) -> Iterator[PodmanEnv]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (bash .ci/install-deps test)", pytrace=False)
    with podman_env.podman_env(rootfs_template) as env:
        yield env


@pytest.fixture
def pm(podman: PodmanEnv) -> Iterator[PodmanEnv]:
    yield from podman_env.checked(podman)


def _numbers(pm: PodmanEnv, name: str) -> list[int]:
    out = pm.podman("logs", name, check=True).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def _wait_numbers(pm: PodmanEnv, name: str, more_than: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nums = _numbers(pm, name)
        if nums and nums[-1] > more_than:
            return nums
        assert time.monotonic() < deadline, f"counter stuck at {nums[-3:]}"
        time.sleep(0.3)


def _start(pm: PodmanEnv, name: str) -> int:
    pm.podman("run", "-d", "--name", name, "--network", "none", IMAGE, *COUNTER,
              runtime=True, check=True, timeout=120)
    return _wait_numbers(pm, name, 2)[-1]


def test_podman_checkpoint_restore(pm: PodmanEnv) -> None:
    """checkpoint stops it, restore resumes it: the log's count never starts over."""
    name = "cr-" + os.urandom(4).hex()
    try:
        _start(pm, name)
        pm.podman("container", "checkpoint", name, check=True, timeout=180)
        assert pm.inspect(name, "{{.State.Status}}") == "exited"
        last = _numbers(pm, name)[-1]
        pm.podman("container", "restore", name, check=True, timeout=180)
        assert pm.inspect(name, "{{.State.Status}}") == "running"
        nums = _wait_numbers(pm, name, last + 2)
        assert nums == list(range(len(nums))), nums  # no restart at 0, no gap
        res = pm.podman("exec", name, "cat", "/proc/1/cmdline", check=True)
        assert "i=0; while" in res.stdout
    finally:
        pm.podman("rm", "--force", "--time", "0", name, timeout=120)


def test_podman_checkpoint_export_import(pm: PodmanEnv, tmp_path: Path) -> None:
    """--export to a tarball, remove the container, --import it: the count goes on."""
    name = "cr-" + os.urandom(4).hex()
    archive = tmp_path / "cp.tar.gz"
    try:
        _start(pm, name)
        pm.podman("container", "checkpoint", "--export", archive, name, check=True,
                  timeout=180)
        last = _numbers(pm, name)[-1]
        pm.podman("rm", name, check=True, timeout=120)
        assert archive.stat().st_size > 0
        pm.podman("container", "restore", "--import", archive, check=True, timeout=180)
        assert pm.inspect(name, "{{.State.Status}}") == "running"
        nums = _wait_numbers(pm, name, last + 2)
        resumed = [n for n in nums if n > last]
        assert resumed[0] == last + 1, (last, nums[-10:])
        assert resumed == list(range(last + 1, last + 1 + len(resumed))), resumed
    finally:
        pm.podman("rm", "--force", "--time", "0", name, timeout=120)
