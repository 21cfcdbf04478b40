"""The foundation issue's "done" list: bad configs fail at create with one line naming the
field, exit 1, no traceback, and nothing left in `list` or under --root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helpers
import pytest

pytestmark = pytest.mark.integration


def _dup_ns(cfg: dict[str, Any]) -> None:
    cfg["linux"]["namespaces"].append({"type": "mount"})


def _bad_rlimit(cfg: dict[str, Any]) -> None:
    cfg["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1})


def _relative_cwd(cfg: dict[str, Any]) -> None:
    cfg["process"]["cwd"] = "tmp"


def _sysctl_hostname(cfg: dict[str, Any]) -> None:
    cfg["linux"]["sysctl"] = {"kernel.hostname": "other"}


def _sysctl_domainname(cfg: dict[str, Any]) -> None:
    cfg["domainname"] = "example.com"
    cfg["linux"]["sysctl"] = {"kernel.domainname": "other.example"}


CASES = [
    (_dup_ns, ["/probe", "id"], "linux.namespaces[6].type"),
    (_bad_rlimit, ["/probe", "id"], "process.rlimits[1].type"),
    (_relative_cwd, ["/probe", "id"], "process.cwd"),
    (None, ["no-such-program"], 'exec: "no-such-program": executable file not found in $PATH'),
    (_sysctl_hostname, ["/probe", "hostname"],
     'config.json: linux.sysctl.kernel.hostname: not allowed as it conflicts with the OCI '
     '"hostname" field'),
    (_sysctl_domainname, ["/probe", "domainname"],
     'config.json: linux.sysctl.kernel.domainname: not allowed as it conflicts with the OCI '
     '"domainname" field'),
]


@pytest.mark.parametrize(("mutate", "args", "names"), CASES,
                         ids=["duplicate-namespace", "unknown-rlimit", "relative-cwd",
                              "missing-executable", "sysctl-kernel-hostname",
                              "sysctl-kernel-domainname-and-domainname"])
def test_bad_config_fails_cleanly(mutate: Any, args: list[str], names: str,
                                  make_bundle: Any, pyoci_root: Path) -> None:
    bundle = make_bundle(args, mutate=mutate)
    cid = helpers.unique_id()
    res = helpers.run_pyoci("create", "--bundle", bundle, cid, root=pyoci_root)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert helpers.run_pyoci("list", "-q", root=pyoci_root, check=True).stdout == ""
    assert [p.name for p in pyoci_root.iterdir() if not p.name.startswith(".")] == []
    assert not any(Path(f"/sys/fs/cgroup/{c}/pyoci/{cid}").exists()
                   for c in ("memory", "pids", "cpu", "freezer"))


def test_kernel_domainname_sysctl_alone_is_applied(run_probe) -> None:
    """Docker sets a domainname through this sysctl; without the domainname field it stays."""
    sysctl = {"kernel.domainname": "d.example"}
    res = run_probe("domainname", check=True, **{"linux.sysctl": sysctl})
    assert res.stdout == "d.example\n", res
