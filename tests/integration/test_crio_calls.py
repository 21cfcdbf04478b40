"""CRI-O's way of calling the runtime (internal/oci/runtime_oci.go, see CALLERS.md).

``--root=R`` in the ``=`` form, ``kill -a`` (short), ``update --resources -``
with the JSON on stdin, a non-detached ``exec --process F ID`` whose exit
status is the process's (with and without a terminal), and ``--version`` plus
``features`` at start-up.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pexpect
import pytest

pytestmark = pytest.mark.integration



def crio(root: Path, *args: str | os.PathLike[str], input: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``RT --root=ROOT ARGS...``; output through files (a created init keeps them open)."""
    cmd = [*helpers.runtime_command(), f"--root={root}", *map(os.fspath, args)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin: Any = subprocess.DEVNULL
        if input is not None:
            stdin = tempfile.TemporaryFile()
            stdin.write(input.encode())
            stdin.seek(0)
        try:
            rc = subprocess.run(cmd, stdin=stdin, stdout=out, stderr=err,
                                timeout=timeout).returncode
        finally:
            if input is not None:
                stdin.close()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, rc, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def crio_ok(root: Path, *args: str | os.PathLike[str], **kw: Any) -> str:
    res = crio(root, *args, **kw)
    assert res.returncode == 0, (res.args, res.returncode, res.stdout, res.stderr)
    return res.stdout


class Ctr:
    def __init__(self, cid: str, pid: int, root: Path) -> None:
        self.cid, self.pid, self.root = cid, pid, root


@pytest.fixture
def crio_container(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> Iterator[Ctr]:
    """Created and started the way CRI-O does, all with ``--root=R``."""
    bundle = make_bundle(["/probe", "sleep", "inf"])
    cid, pid_file = helpers.unique_id(), tmp_path / "init.pid"
    crio_ok(pyoci_root, "create", "--bundle", bundle, "--pid-file", pid_file, cid)
    try:
        pid = int(pid_file.read_text())
        crio_ok(pyoci_root, "start", cid)
        yield Ctr(cid, pid, pyoci_root)
    finally:
        ch.force_delete(cid, pyoci_root)


def _state(c: Ctr) -> dict[str, Any]:
    return json.loads(crio_ok(c.root, "state", c.cid))


def test_root_equals_form(crio_container: Ctr) -> None:
    st = _state(crio_container)
    assert (st["id"], st["status"], st["pid"]) == (crio_container.cid, "running",
                                                   crio_container.pid), st
    # The same store as the "--root R" form.
    assert helpers.state(crio_container.cid, crio_container.root)["pid"] == crio_container.pid
    assert crio_container.cid in crio_ok(crio_container.root, "list", "-q").split()


def test_kill_short_all(crio_container: Ctr) -> None:
    crio_ok(crio_container.root, "kill", "-a", crio_container.cid, "SIGKILL")
    helpers.wait_for(lambda: _state(crio_container)["status"] == "stopped",
                     what="the container to stop")
    assert ch.gone(crio_container.pid)
    crio_ok(crio_container.root, "delete", crio_container.cid)
    res = crio(crio_container.root, "state", crio_container.cid)
    assert res.returncode != 0 and "container does not exist" in res.stderr, res


def test_update_resources_from_stdin(crio_container: Ctr) -> None:
    limit_file = ch.memory_cgroup(crio_container.pid) / "memory.limit_in_bytes"
    before = int(limit_file.read_text())
    limit = 96 * 1024 * 1024
    assert before != limit
    crio_ok(crio_container.root, "update", "--resources", "-", crio_container.cid,
            input=json.dumps({"memory": {"limit": limit}}))
    assert int(limit_file.read_text()) == limit
    assert _state(crio_container)["status"] == "running"


def _process_file(tmp_path: Path, args: list[str], terminal: bool = False) -> Path:
    cfg = helpers.bundle_config(args)["process"]  # the container's process, as CRI-O fills it
    cfg["terminal"] = terminal
    path = tmp_path / f"exec-{helpers.unique_id()}.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("status", [0, 5])
def test_exec_process_non_detached(crio_container: Ctr, tmp_path: Path, status: int) -> None:
    spec = _process_file(tmp_path, ["/bin/sh", "-c", f"/probe echo out; exit {status}"])
    res = crio(crio_container.root, "exec", "--process", spec, crio_container.cid)
    assert (res.returncode, res.stdout) == (status, "out\n"), res.stderr


def test_exec_process_non_detached_tty(crio_container: Ctr, tmp_path: Path) -> None:
    """With a terminal, CRI-O's stdio is a host pty; the status is still the process's."""
    spec = _process_file(tmp_path, ["/bin/sh", "-c", "/probe tty; read l; echo got-$l; exit 4"],
                         terminal=True)
    cmd = [*helpers.runtime_command(), f"--root={crio_container.root}", "exec", "--process",
           str(spec), crio_container.cid]
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=30, encoding="utf-8")
    child.expect(r"(/dev/pts/\d+|not a tty)")
    assert re.fullmatch(r"/dev/pts/\d+", child.match.group(1)), child.match.group(1)
    child.sendline("line")
    child.expect("got-line")
    child.expect(pexpect.EOF)
    child.close()
    assert (child.exitstatus, child.signalstatus) == (4, None)


def test_version(pyoci_root: Path) -> None:
    lines = crio_ok(pyoci_root, "--version").splitlines()
    assert re.fullmatch(r"\S+ version \S+", lines[0]), lines
    assert any(line.startswith("commit: ") for line in lines), lines
    spec = [line for line in lines if line.startswith("spec: ")]
    assert spec and re.fullmatch(r"spec: 1\.\d+\.\d+\S*", spec[0]), lines


def test_features(pyoci_root: Path) -> None:
    features = json.loads(crio_ok(pyoci_root, "features"))
    for key in ("ociVersionMin", "ociVersionMax"):
        assert re.fullmatch(r"1\.\d+\.\d+\S*", features[key]), features
    assert isinstance(features.get("linux", {}).get("namespaces"), list), features
