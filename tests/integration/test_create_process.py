"""create: the process section, hostname/domainname and sysctl, seen from inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration


def test_hostname_and_domainname(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "/probe hostname && /probe domainname"],
                         hostname="box", domainname="example.test")
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout == "box\nexample.test\n"


def test_namespaced_sysctls(make_bundle: Any, pyoci_root: Path) -> None:
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    bundle = make_bundle(["/bin/sh", "-c",
                          "/probe sysctl net.ipv4.ip_forward && /probe sysctl kernel.shmmax"],
                         **{"linux.sysctl": {"net.ipv4.ip_forward": "1",
                                             "kernel.shmmax": "123456789"}})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout == "1\n123456789\n"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward


def test_non_namespaced_sysctl_fails(make_bundle: Any, pyoci_root: Path) -> None:
    swappiness = Path("/proc/sys/vm/swappiness")
    before = swappiness.read_text()
    new = "17" if before.strip() != "17" else "18"
    bundle = make_bundle(["/probe", "id"], **{"linux.sysctl": {"vm.swappiness": new}})
    cid, res = ch.create(bundle, pyoci_root, None, check=False)
    ch.assert_one_line_error(res, "vm.swappiness")
    ch.assert_nothing_left(pyoci_root, cid)
    assert swappiness.read_text() == before


def test_rlimits(run_probe: Any) -> None:
    res = run_probe("rlimit", "NOFILE", check=True,
                    **{"process.rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1000,
                                            "hard": 2000}]})
    assert res.stdout == "1000 2000\n"


def test_oom_score_adj(run_probe: Any) -> None:
    assert run_probe("oom", check=True, **{"process.oomScoreAdj": 123}).stdout == "123\n"


def test_user_and_umask(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["/bin/sh", "-c", "/probe id; /probe euid; /probe umask"],
                         **{"process.user": {"uid": 1234, "gid": 4321,
                                             "additionalGids": [7, 8], "umask": 0o027}})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout.splitlines() == ["uid=1234 gid=4321 groups=7,8",
                                       "euid=1234 egid=4321", "0027"]


def test_cwd(run_probe: Any) -> None:
    assert run_probe("cwd", check=True, **{"process.cwd": "/tmp"}).stdout == "/tmp\n"


def test_env_and_home(run_probe: Any) -> None:
    env = run_probe("env", check=True, **{"process.env": ["A=1", "PATH=/bin"]})
    lines = env.stdout.splitlines()
    assert "A=1" in lines and "PATH=/bin" in lines
    assert "HOME=/root" in lines
    env = run_probe("env", check=True, **{"process.env": ["HOME=/elsewhere"]})
    assert "HOME=/elsewhere" in env.stdout.splitlines()
    assert "HOME=/root" not in env.stdout.splitlines()


def test_args_path_lookup(make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(["probe", "echo", "found"], **{"process.env": ["PATH=/nope:/"]})
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                            check=True)
    assert res.stdout == "found\n"


@pytest.mark.parametrize(("arg0", "message"), [
    ("no-such-binary", "executable file not found in $PATH"),
    ("/no/such/binary", "no such file or directory"),
    ("/not-executable", "permission denied"),
])
def test_bad_executable_fails_at_create(make_bundle: Any, pyoci_root: Path,
                                        arg0: str, message: str) -> None:
    bundle = make_bundle([arg0])
    (bundle / "rootfs" / "not-executable").write_text("#!/bin/sh\n")
    (bundle / "rootfs" / "not-executable").chmod(0o644)
    cid, res = ch.create(bundle, pyoci_root, None, check=False)
    assert res.returncode == 1, res
    assert message in res.stderr, res.stderr
    ch.assert_nothing_left(pyoci_root, cid)
