"""process.capabilities and noNewPrivileges, checked from inside a real container.

Each test runs ``/probe caps`` (the Cap* / NoNewPrivs lines of
/proc/self/status) and compares the masks with what config.json asked for.
"""

from __future__ import annotations

from pathlib import Path

import helpers
import pytest

from pyoci.linux.capabilities import BITS, NAMES

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
STATUS_KEYS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm",
               "inheritable": "CapInh", "ambient": "CapAmb"}
CAP_SYS_RESOURCE = BITS["CAP_SYS_RESOURCE"]


def caps_config(names: list[str], sets: tuple[str, ...] = SETS) -> dict[str, list[str]]:
    return {s: list(names) for s in SETS if s in sets} | {s: [] for s in SETS if s not in sets}


def probe_caps(run_probe, **overrides) -> dict[str, str]:
    res = run_probe("caps", check=True, **overrides)
    return helpers.parse_status(res.stdout)


def host_bounding() -> set[int]:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return helpers.cap_set(line.split()[1])
    raise AssertionError("no CapBnd in /proc/self/status")


def test_only_chown_in_all_five_sets(run_probe) -> None:
    st = probe_caps(run_probe, **{"process.capabilities": caps_config(["CAP_CHOWN"])})
    for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert helpers.cap_set(st[key]) == {0}, (key, st)


def test_only_chown_without_inheritable_has_no_ambient(run_probe) -> None:
    """Ambient needs permitted and inheritable: without inheritable it stays empty."""
    caps = caps_config(["CAP_CHOWN"], ("bounding", "effective", "permitted", "ambient"))
    st = probe_caps(run_probe, **{"process.capabilities": caps})
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert helpers.cap_set(st[key]) == {0}, (key, st)
    assert helpers.cap_set(st["CapInh"]) == set(), st
    assert helpers.cap_set(st["CapAmb"]) == set(), st


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(run_probe, nnp: bool) -> None:
    st = probe_caps(run_probe, **{"process.noNewPrivileges": nnp})
    assert st["NoNewPrivs"] == ("1" if nnp else "0"), st


def test_no_new_privileges_absent_is_off(run_probe) -> None:
    st = probe_caps(run_probe, **{"process.noNewPrivileges": helpers.DELETE})
    assert st["NoNewPrivs"] == "0", st


def test_non_root_user_keeps_ambient_capability(run_probe) -> None:
    bit = BITS["CAP_NET_BIND_SERVICE"]
    res = run_probe("caps", check=True, **{
        "process.user": {"uid": 1000, "gid": 1000},
        "process.capabilities": caps_config(["CAP_NET_BIND_SERVICE"]),
    })
    st = helpers.parse_status(res.stdout)
    for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert helpers.cap_set(st[key]) == {bit}, (key, st)


def test_non_root_user_ids_with_ambient_capability(run_probe) -> None:
    res = run_probe("id", check=True, **{
        "process.user": {"uid": 1000, "gid": 1000},
        "process.capabilities": caps_config(["CAP_NET_BIND_SERVICE"]),
    })
    ids = helpers.parse_kv(res.stdout)
    assert (ids["uid"], ids["gid"]) == ("1000", "1000"), res.stdout


def test_non_root_user_without_ambient_loses_effective(run_probe) -> None:
    """The contrast: without ambient, the uid change clears the permitted/effective sets."""
    caps = caps_config(["CAP_NET_BIND_SERVICE"],
                       ("bounding", "effective", "permitted", "inheritable"))
    st = probe_caps(run_probe, **{"process.user": {"uid": 1000, "gid": 1000},
                                  "process.capabilities": caps})
    assert helpers.cap_set(st["CapEff"]) == set(), st
    assert helpers.cap_set(st["CapPrm"]) == set(), st
    assert helpers.cap_set(st["CapBnd"]) == {BITS["CAP_NET_BIND_SERVICE"]}, st


def test_unknown_capability_is_a_warning(run_probe) -> None:
    caps = caps_config(["CAP_CHOWN", "CAP_FOO"])
    res = run_probe("caps", **{"process.capabilities": caps})
    assert res.returncode == 0, res.stderr
    assert "CAP_FOO" in res.stderr, res.stderr
    st = helpers.parse_status(res.stdout)
    assert helpers.cap_set(st["CapEff"]) == {0}, st
    assert helpers.cap_set(st["CapBnd"]) == {0}, st


def test_every_capability_on_a_host_without_sys_resource(run_probe) -> None:
    """All 41 names: the ones the host can't grant are warned about and left out.

    This sandbox's bounding set lacks CAP_SYS_RESOURCE; runc 1.1.5 fails such a
    config with ``operation not permitted``, the spec says a runtime SHOULD NOT.
    """
    assert len(NAMES) == 41 and NAMES[0] == "CAP_CHOWN" and NAMES[-1] == "CAP_CHECKPOINT_RESTORE"
    bounding = host_bounding()
    assert CAP_SYS_RESOURCE not in bounding, "this test expects a host without CAP_SYS_RESOURCE"
    res = run_probe("caps", **{"process.capabilities": caps_config(NAMES)})
    assert res.returncode == 0, res.stderr
    assert "CAP_SYS_RESOURCE" in res.stderr, res.stderr
    st = helpers.parse_status(res.stdout)
    expected = set(range(len(NAMES))) & bounding
    for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        got = helpers.cap_set(st[key])
        assert CAP_SYS_RESOURCE not in got, (key, st)
        assert got == expected, (key, sorted(got ^ expected))


def _mentions(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if name in line]


def test_ungrantable_capability_warned_once_per_run(run_probe) -> None:
    """CAP_SYS_RESOURCE in all five sets (this host can't grant it): one warning, not five."""
    assert CAP_SYS_RESOURCE not in host_bounding()
    res = run_probe("caps", **{"process.capabilities":
                               caps_config(["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_FOO"])})
    assert res.returncode == 0, res.stderr
    assert len(_mentions(res.stderr, "CAP_SYS_RESOURCE")) == 1, res.stderr
    assert len(_mentions(res.stderr, "CAP_FOO")) == 1, res.stderr


def test_ungrantable_capability_warned_once_per_create_and_exec(make_bundle,
                                                                pyoci_root: Path) -> None:
    bundle = make_bundle(["/probe", "sleep", "60"], **{
        "process.capabilities": caps_config(["CAP_CHOWN", "CAP_SYS_RESOURCE"])})
    cid = helpers.unique_id()
    try:
        res = helpers.run_pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
        assert len(_mentions(res.stderr, "CAP_SYS_RESOURCE")) == 1, res.stderr
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        res = helpers.run_pyoci("exec", cid, "/probe", "caps", root=pyoci_root, check=True)
        assert len(_mentions(res.stderr, "CAP_SYS_RESOURCE")) == 1, res.stderr
    finally:
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root)
