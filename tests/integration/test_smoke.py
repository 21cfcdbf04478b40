"""Smoke test of the probe + fixtures against whatever PYOCI_TEST_RUNTIME names."""
from __future__ import annotations

from pathlib import Path

import helpers
import pytest

pytestmark = pytest.mark.integration


def test_hostname(run_probe) -> None:
    res = run_probe("hostname", hostname="smoke", check=True)
    assert res.stdout == "smoke\n"


def test_id(run_probe) -> None:
    res = run_probe("id", check=True)
    assert helpers.parse_kv(res.stdout)["uid"] == "0"
    user = {"uid": 65534, "gid": 65534, "additionalGids": [10, 20]}
    res = run_probe("id", **{"process.user": user}, check=True)
    assert res.stdout == "uid=65534 gid=65534 groups=10,20\n"


def test_fds(run_probe) -> None:
    fds = helpers.parse_pairs(run_probe("fds", check=True).stdout)
    assert set(fds) == {"0", "1", "2"}, fds


def test_caps(run_probe) -> None:
    caps = helpers.parse_status(run_probe("caps", check=True).stdout)
    # CAP_AUDIT_WRITE=29, CAP_KILL=5, CAP_NET_BIND_SERVICE=10
    assert helpers.cap_set(caps["CapEff"]) == {5, 10, 29}
    assert caps["NoNewPrivs"] == "1"


def test_mounts(run_probe) -> None:
    mounts = {m.target: m for m in helpers.parse_mounts(run_probe("mounts", check=True).stdout)}
    assert mounts["/"].options >= {"ro"}
    assert mounts["/proc"].fstype == "proc"
    assert mounts["/dev"].fstype == "tmpfs"
    assert "ro" in mounts["/proc/sys"].options


def test_pid_ns_and_ps(run_probe) -> None:
    assert run_probe("pid", check=True).stdout == "1\n"
    assert run_probe("ps", check=True).stdout == "1 probe\n"


def test_mkdir_readonly(run_probe) -> None:
    res = run_probe("mkdir", "/x")
    assert (res.returncode, res.stderr) == (1, "errno=30\n")


def test_exit_code(run_probe) -> None:
    assert run_probe("exit", "3").returncode == 3


def test_lifecycle(make_bundle, pyoci_root: Path, tmp_path: Path) -> None:
    bundle = make_bundle(["/probe", "trap", "30"])
    cid = helpers.unique_id()
    out = tmp_path / "out"
    helpers.run_pyoci("create", "--bundle", bundle, cid, root=pyoci_root, stdout=out, check=True)
    assert helpers.state(cid, pyoci_root)["status"] == "created"
    helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
    helpers.wait_for(lambda: out.read_text() == "ready\n", what="ready")
    assert helpers.state(cid, pyoci_root)["status"] == "running"
    helpers.run_pyoci("kill", cid, "USR1", root=pyoci_root, check=True)
    helpers.wait_for_status(cid, pyoci_root, "stopped")
    assert out.read_text() == "ready\nsignal 10\n"
    helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)


def test_input_and_errors(make_bundle, pyoci_root: Path) -> None:
    bundle = make_bundle(["/bin/cat"])
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            input="piped\n", check=True)
    assert res.stdout == "piped\n"
    res = helpers.run_pyoci("state", "nope", root=pyoci_root)
    assert res.returncode != 0 and "does not exist" in res.stderr
    with pytest.raises(helpers.RuntimeCommandError, match="does not exist"):
        helpers.run_pyoci("state", "nope", root=pyoci_root, check=True)


def test_mutate_and_delete(make_bundle) -> None:
    import json
    b = make_bundle(["/probe", "env"], mutate=lambda c: c["process"].update(env=["A=1"]),
                    **{"linux.maskedPaths": helpers.DELETE, "process.cwd": "/tmp"})
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["process"]["env"] == ["A=1"] and cfg["process"]["cwd"] == "/tmp"
    assert "maskedPaths" not in cfg["linux"] and cfg["linux"]["readonlyPaths"]
    assert (b / "rootfs" / "probe").is_file()
