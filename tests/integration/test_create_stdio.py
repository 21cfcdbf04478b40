"""create: stdio pass-through, --console-socket, --preserve-fds and --pid-file."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


def test_stdio_pass_through(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "/bin/cat; echo to-stderr >&2"])
    out, err = tmp_path / "out", tmp_path / "err"
    cid, _ = ch.create(bundle, pyoci_root, None, input="from stdin file\n",
                       stdout=out, stderr=err)
    try:
        ch.run_to_stop(cid, pyoci_root)
        assert out.read_text() == "from stdin file\n"
        assert err.read_text() == "to-stderr\n"
    finally:
        ch.force_delete(cid, pyoci_root)



def test_console_socket(make_bundle: Any, pyoci_root: Path,
                        console_listener: tuple[str, socket.socket]) -> None:
    path, sock = console_listener
    bundle = make_bundle(["/bin/sh", "-c", "/probe tty; stty size; read line; echo got-$line"],
                         **{"process.terminal": True,
                            "process.consoleSize": {"height": 33, "width": 111}})
    cid, _ = ch.create(bundle, pyoci_root, None, "--console-socket", path)
    try:
        master = ch.receive_console(sock)
        try:
            helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
            first = helpers.read_until(master, b"33 111")
            os.write(master, b"hello\n")
            rest = helpers.read_until(master, b"got-hello")
        finally:
            os.close(master)
        lines = [ln.strip() for ln in first.decode().splitlines()]
        assert lines[0].startswith("/dev/pts/") and lines[0][len("/dev/pts/"):].isdigit(), first
        assert lines[1] == "33 111", first
        assert b"got-hello" in rest
        helpers.wait_for_status(cid, pyoci_root, "stopped")
    finally:
        ch.force_delete(cid, pyoci_root)


def test_console_owned_by_the_process_user(make_bundle: Any, pyoci_root: Path,
                                           console_listener: tuple[str, socket.socket]) -> None:
    """The pty belongs to process.user's uid, so the user can use it (as runc: the
    group stays the devpts mount's gid=5, tty)."""
    path, sock = console_listener
    bundle = make_bundle(["/bin/sh", "-c", "/probe stat $(/probe tty); /probe id"],
                         **{"process.terminal": True,
                            "process.user": {"uid": 1000, "gid": 1000}})
    cid, _ = ch.create(bundle, pyoci_root, None, "--console-socket", path)
    try:
        master = ch.receive_console(sock)
        try:
            helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
            out = helpers.read_until(master, b"groups=").decode()
        finally:
            os.close(master)
        assert "type=chr mode=0620 uid=1000 gid=5 " in out, out
        assert "uid=1000 gid=1000" in out, out
        helpers.wait_for_status(cid, pyoci_root, "stopped")
    finally:
        ch.force_delete(cid, pyoci_root)


def test_terminal_without_console_socket_fails(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "tty"], **{"process.terminal": True})
    cid, res = ch.create(bundle, pyoci_root, None, check=False)
    assert res.returncode == 1 and res.stderr.strip(), res
    ch.assert_nothing_left(pyoci_root, cid)


def _run_with_fd3(bundle: Path, root: Path, extra_file: Path, *flags: str) -> str:
    """``run`` with fd 3 open on ``extra_file`` in the runtime; returns the container's stdout."""
    cmd = [*helpers.runtime_command(), "--root", str(root), "run", *flags,
           "--bundle", str(bundle), helpers.unique_id()]
    res = subprocess.run(["/bin/sh", "-c", f'exec "$@" 3<"{extra_file}"', "sh", *cmd],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_preserve_fds(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra-fd"
    extra.write_text("x")
    bundle = make_bundle(["/probe", "fds"])
    with_flag = helpers.parse_pairs(_run_with_fd3(bundle, pyoci_root, extra,
                                                  "--preserve-fds", "1"))
    assert set(with_flag) == {"0", "1", "2", "3"}, with_flag
    assert with_flag["3"] == str(extra)
    without = helpers.parse_pairs(_run_with_fd3(bundle, pyoci_root, extra))
    assert set(without) == {"0", "1", "2"}, without


def test_pid_file(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "init.pid"
    bundle = make_bundle(["/probe", "sleep", "inf"])
    cid, _ = ch.create(bundle, pyoci_root, None, "--pid-file", str(pid_file))
    try:
        text = pid_file.read_text()
        assert text.isdigit(), repr(text)
        assert int(text) == helpers.state(cid, pyoci_root)["pid"]
        assert Path(f"/proc/{text}").is_dir()
    finally:
        ch.force_delete(cid, pyoci_root)
