"""The features document (runtime-spec features.md), stating only what pyoci does."""

from __future__ import annotations

import os

from pyoci import SPEC_VERSION
from pyoci.linux import capabilities
from pyoci.linux import mounts as m
from pyoci.linux import namespaces as ns

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def _mount_options() -> list[str]:
    return sorted({*m.FLAGS, *m.PROPAGATION, *m.RECURSIVE, *m.EXTENSIONS})


_SECCOMP_FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}


def _seccomp() -> dict[str, Any]:
    from pyoci._native import lib
    from pyoci.linux import seccomp

    return {
        "enabled": True,
        "actions": list(seccomp.ACTIONS),
        "operators": list(seccomp.OPERATORS),
        "archs": sorted(seccomp.ARCHES),
        "knownFlags": list(seccomp.FLAGS),
        "supportedFlags": [name for name, bit in _SECCOMP_FLAG_BITS.items()
                           if lib.pyoci_seccomp_flag_supported(bit) == 1],
    }


def _idmap() -> bool:
    from pyoci.linux import idmap

    return idmap.supported()


def _checkpoint() -> dict[str, str]:
    """CRIU's version, as an annotation, only where ``criu check`` passes here."""
    from pyoci import criu

    try:
        if criu.check() is not None:
            return {}
        major, minor, sub = criu.version()
    except Exception:  # no criu, or it can't even answer: no checkpoint
        return {}
    return {"io.github.pyoci.checkpoint.criu": f"{major}.{minor}" + (f".{sub}" if sub else "")}


def features() -> dict[str, Any]:
    from pyoci._native import lib

    last = lib.pyoci_cap_last()
    caps = capabilities.NAMES[: last + 1]
    cg_v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": _mount_options(),
        "linux": {
            "namespaces": sorted(ns.FLAGS),
            "capabilities": caps,
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True,
                       "rdma": True},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            # Idmapped mounts need privileges over the host's mounts: never rootless.
            "mountExtensions": {"idmap": {"enabled": _idmap() and os.geteuid() == 0}},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.cgroup.unified": str(cg_v2).lower(),
            # Rootless (--rootless, see pyoci/rootless.py): runs with a user namespace
            # and, without a cgroup the user may write to, no cgroup at all, so no
            # linux.resources, pause or update (runc's rule).
            "io.github.pyoci.rootless.enabled": "true",
            "io.github.pyoci.rootless.cgroup": (
                "limits only in a cgroup the user may write to, in a delegated cgroup v2 "
                "subtree: an absolute linux.cgroupsPath there, or a relative or empty one, "
                "which goes beside the caller's own cgroup as with runc; with "
                "--systemd-cgroup, a scope from the user's own systemd (user bus); "
                "otherwise none, and no linux.resources"),
            **_checkpoint(),
        },
    }
