"""NOTIFY_SOCKET passthrough: the container's READY=1 reaches the caller's socket on start.

The caller (systemd for a Type=notify unit; here the test) listens on a
datagram socket named by ``NOTIFY_SOCKET`` when it runs ``create``. The
container finds ``NOTIFY_SOCKET=/run/notify/notify.sock`` in its environment;
``start`` relays its READY=1, plus ``MAINPID``, and returns only then.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import helpers


def test_ready_is_relayed_on_start(make_bundle, pyoci_root: Path, tmp_path: Path) -> None:
    host = tmp_path / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(host))
    listener.settimeout(60)
    shared = tmp_path / "shared"
    shared.mkdir()
    bundle = make_bundle(["/probe", "notify", "/shared/go", "STATUS=hi\nREADY=1"],
                         mutate=lambda c: c["mounts"].extend(
                             [{"destination": "/shared", "type": "bind",
                               "source": str(shared), "options": ["rbind"]}]))
    cid = helpers.unique_id()
    env = {**os.environ, "NOTIFY_SOCKET": str(host)}
    out = tmp_path / "out"
    try:
        helpers.run_pyoci("create", "--bundle", str(bundle), cid, root=pyoci_root, env=env,
                          stdout=out, check=True)
        pid = helpers.state(cid, pyoci_root)["pid"]
        cmd = [*helpers.runtime_command(), "--root", str(pyoci_root), "start", cid]
        start = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.extend(
            [listener.recv(4096), listener.recv(4096)]))
        reader.start()
        helpers.wait_for(lambda: "notify_socket=" in out.read_text(), 60,
                         what="the container to run")
        assert "notify_socket=/run/notify/notify.sock" in out.read_text()
        assert start.poll() is None, "start returned before the container was ready"
        assert not got
        (shared / "go").touch()
        assert start.wait(timeout=60) == 0, start.stderr.read() if start.stderr else ""
        reader.join(60)
        assert b"READY=1" in got[0].splitlines() and b"STATUS=hi" in got[0].splitlines()
        assert got[1].strip() == f"MAINPID={pid}".encode()
    finally:
        listener.close()
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root)
