"""Sample features and state documents against our shipped schemas.

The lead adds a test of real ``pyoci features`` / ``pyoci state`` output here
later; these samples pin down what the schemas accept and reject meanwhile.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pyoci.errors import SpecError
from pyoci.spec import schema

FEATURES: dict[str, Any] = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop"],
    "mountOptions": ["async", "bind", "idmap", "ro", "rbind", "ridmap", "tmpcopyup"],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
        "capabilities": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"],
        "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True,
                   "rdma": False},
        "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY"],
                    "operators": ["SCMP_CMP_EQ"], "archs": ["SCMP_ARCH_X86_64"],
                    "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"],
                    "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"]},
        "apparmor": {"enabled": True},
        "selinux": {"enabled": False},
        "intelRdt": {"enabled": False, "schemata": False, "monitoring": False},
        "memoryPolicy": {"modes": ["MPOL_DEFAULT", "MPOL_BIND"],
                         "flags": ["MPOL_F_STATIC_NODES"]},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": False},
    },
    "annotations": {"org.opencontainers.runc.version": "pyoci 0.1.0"},
    "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."],
}

STATE: dict[str, Any] = {
    "ociVersion": "1.3.0",
    "id": "c1",
    "status": "running",
    "pid": 4422,
    "bundle": "/containers/redis",
    "rootfs": "/containers/redis/rootfs",
    "created": "2024-05-01T12:00:00.123456789Z",
    "owner": "",
    "annotations": {"myKey": "myValue"},
}


def test_features_sample_validates() -> None:
    schema.check(FEATURES, "features")


def test_features_minimal_and_unknown_fields() -> None:
    schema.check({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0", "future": {"x": 1}},
                 "features")


@pytest.mark.parametrize(("mutate", "expect"), [
    (lambda d: d.pop("ociVersionMax"),
     "features.json: ociVersionMax: required property is missing"),
    (lambda d: d["linux"]["mountExtensions"]["idmap"].update(enabled="yes"),
     'features.json: linux.mountExtensions.idmap.enabled: must be a boolean, got string "yes"'),
    (lambda d: d["linux"]["namespaces"].append("net"),
     'features.json: linux.namespaces[8]: invalid value "net", want one of: mount, pid, '
     "network, uts, ipc, user, cgroup, time"),
])
def test_features_rejects(mutate: Any, expect: str) -> None:
    doc = copy.deepcopy(FEATURES)
    mutate(doc)
    with pytest.raises(SpecError) as exc:
        schema.check(doc, "features")
    assert str(exc.value) == expect


@pytest.mark.parametrize("status", ["creating", "created", "running", "paused", "stopped"])
def test_state_sample_validates(status: str) -> None:
    doc = dict(STATE, status=status)
    if status == "stopped":
        doc["pid"] = 0
    schema.check(doc, "state")


@pytest.mark.parametrize(("mutate", "expect"), [
    (lambda d: d.update(status="exploded"),
     'state.json: status: invalid value "exploded", want one of: creating, created, running, '
     "paused, stopped"),
    (lambda d: d.pop("pid"), "state.json: pid: required property is missing"),
    (lambda d: d.update(pid=0), "state.json: pid: 0 is below the minimum 1"),
    (lambda d: d.update(bundle="rel/bundle"),
     'state.json: bundle: invalid value "rel/bundle", must match ^/'),
    (lambda d: d.pop("id"), "state.json: id: required property is missing"),
])
def test_state_rejects(mutate: Any, expect: str) -> None:
    doc = copy.deepcopy(STATE)
    mutate(doc)
    with pytest.raises(SpecError) as exc:
        schema.check(doc, "state")
    assert str(exc.value) == expect
