"""events: OOM notifications and stats, read the way callers read ``runc events``.

A running container with a 16 MiB memory limit starts a 64 MiB hog on SIGUSR1;
the kernel's OOM killer kills it while ``events`` is streaming, and an
``{"type":"oom","id":ID}`` line has to arrive.
The same scenario runs on a pure cgroup v2 host in the VM lane
(test_cgroups_v2.py imports the two scenarios).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helpers

import pyoci.cgroups as cg

MiB = 1024 * 1024
LIMIT = 16 * MiB
OOM_TIMEOUT = 30.0


def _memory_resources() -> dict[str, Any]:
    """A 16 MiB limit with no swap on top (memsw/swap.max where the host has them)."""
    memory: dict[str, Any] = {"limit": LIMIT}
    if cg.detect() == "v2" or os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        memory["swap"] = LIMIT
    return {"linux.resources": {"devices": [{"allow": False, "access": "rwm"}], "memory": memory}}


class EventStream:
    """``events --interval 1s ID`` in the background, its stdout read line by line."""

    def __init__(self, cid: str, root: Path) -> None:
        cmd = [*helpers.runtime_command(), "--root", os.fspath(root), "events", "--interval",
               "1s", cid]
        env = dict(os.environ)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env)
        self.lines: list[str] = []
        self.stderr = ""
        self._buf = b""

    def next_event(self, want: str, timeout: float) -> dict[str, Any]:
        """The next event of type ``want``; fails with everything read so far."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                self.lines.append(line.decode())
                event = json.loads(line)
                if event["type"] == want:
                    return event
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                self.close()
                types = [json.loads(line)["type"] for line in self.lines]
                raise AssertionError(
                    f"no {want!r} event within {timeout}s (rc={self.proc.returncode}); "
                    f"event types: {types}; stderr: {self.stderr}"
                )
            self._buf += chunk

    def close(self) -> None:
        """Stop the stream (repeatable) and keep what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read().decode(errors="replace")
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def _hog_on_usr1(action: str) -> list[str]:
    """An init that idles until SIGUSR1, then runs ``action`` (a 64 MiB hog).

    Signalled through ``kill``, not ``exec``, so the scenario is the same on the host
    and in the VM lane (where the tree is a chroot, which exec's setns would leave).
    """
    return ["/bin/sh", "-c", f'trap "{action}" USR1; while :; do sleep 0.1; done']


def _start_streaming(make_bundle: Callable[..., Path], root: Path, action: str
                     ) -> tuple[str, EventStream]:
    cid = helpers.unique_id()
    bundle = make_bundle(_hog_on_usr1(action), **_memory_resources())
    helpers.run_pyoci("run", "-d", "--bundle", bundle, cid, root=root, check=True)
    try:
        stream = EventStream(cid, root)
    except BaseException:
        helpers.run_pyoci("delete", "--force", cid, root=root, timeout=30)
        raise
    return cid, stream


def expect_oom_event(make_bundle: Callable[..., Path], root: Path) -> None:
    """Stream events, OOM-kill a hog in the container, and see the oom event arrive."""
    cid, stream = _start_streaming(make_bundle, root, "/probe hog 64")
    try:
        # A first stats event means the watch is set up (runc's comes after one interval).
        first = stream.next_event("stats", timeout=OOM_TIMEOUT)
        assert first["id"] == cid and first["data"]["memory"]["usage"]["limit"] == LIMIT, first
        helpers.run_pyoci("kill", cid, "USR1", root=root, check=True)
        oom = stream.next_event("oom", timeout=OOM_TIMEOUT)
        assert oom == {"type": "oom", "id": cid}, oom
        assert stream.lines[-1] == f'{{"type":"oom","id":"{cid}"}}'  # runc's bytes, no "data"
        # The container itself survives (the hog was the victim) and events keeps streaming.
        assert helpers.state(cid, root)["status"] == "running"
        assert stream.next_event("stats", timeout=OOM_TIMEOUT)["id"] == cid
    finally:
        stream.close()
        helpers.run_pyoci("delete", "--force", cid, root=root, timeout=30)


def expect_oom_of_init(make_bundle: Callable[..., Path], root: Path) -> None:
    """The init itself is the hog: its OOM is still reported, and the stream ends.

    pyoci's stream ends when the container stops; runc's when the cgroup empties
    (v2) or is removed (v1), so the end is checked once the container is deleted.
    """
    cid, stream = _start_streaming(make_bundle, root, "exec /probe hog 64")
    try:
        stream.next_event("stats", timeout=OOM_TIMEOUT)
        helpers.run_pyoci("kill", cid, "USR1", root=root, check=True)
        assert stream.next_event("oom", timeout=OOM_TIMEOUT) == {"type": "oom", "id": cid}
        helpers.wait_for_status(cid, root, "stopped", timeout=OOM_TIMEOUT)
        helpers.run_pyoci("delete", cid, root=root, check=True)
        assert stream.proc.wait(timeout=OOM_TIMEOUT) == 0
    finally:
        stream.close()
        helpers.run_pyoci("delete", "--force", cid, root=root, timeout=30)


def test_events_reports_oom_as_it_happens(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    expect_oom_event(make_bundle, pyoci_root)


def test_events_reports_the_oom_that_kills_init_then_ends(
    make_bundle: Callable[..., Path], pyoci_root: Path
) -> None:
    expect_oom_of_init(make_bundle, pyoci_root)
