"""The config.json that ``pyoci spec`` writes: runc's default, at spec 1.3.0."""

from __future__ import annotations

from pyoci import SPEC_VERSION

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_MASKED = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi",
]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_config(rootless: bool = False) -> dict[str, Any]:
    """Return a fresh default config; ``rootless`` adds a user namespace like runc's."""
    cfg: dict[str, Any] = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in
                             ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyoci",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                  "cgroup")],
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READONLY),
        },
    }
    if rootless:
        linux = cfg["linux"]
        linux["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
        linux["namespaces"].append({"type": "user"})
        del linux["resources"]
        for m in cfg["mounts"]:
            if m["destination"] == "/sys":
                m.update(type="none", source="/sys",
                         options=["rbind", "nosuid", "noexec", "nodev", "ro"])
            # The container's user namespace maps only the caller's own gid.
            if "options" in m:
                m["options"] = [o for o in m["options"] if not o.startswith(("gid=", "uid="))]
    return cfg


def _callable_module() -> None:
    """Make this module callable: ``pyoci.spec.default(rootless=False)`` is
    :func:`default_config`, while ``from pyoci.spec.default import default_config``
    keeps working (a package attribute can't be both a function and this module)."""
    import sys
    import types

    class _Module(types.ModuleType):
        def __call__(self, rootless: bool = False) -> dict[str, Any]:
            return default_config(rootless=rootless)

    sys.modules[__name__].__class__ = _Module


_callable_module()
