"""cgroup management: one small interface, backends for v1, v2, hybrid and none.

``create``/``run`` call :func:`manager_for` (which detects the host's layout)
and store :meth:`Manager.to_state` in the container's state; every later
command rebuilds the same manager with :func:`from_state`, without detecting
again.  Backends are imported on first use so ``pyoci state`` pays only for
this module and :mod:`pyoci.cgroups.base`.
"""

from __future__ import annotations

import posixpath

from pyoci.cgroups.base import Manager
from pyoci.cgroups.mounts import detect
from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "PARENT",
    "CgroupError",
    "Manager",
    "cgroup_path",
    "detect",
    "from_state",
    "manager_for",
    "rootless_base",
]

# Where containers without an absolute cgroupsPath live, in every hierarchy.
PARENT = "/pyoci"


def _is_systemd_style(path: str) -> bool:
    """runc's systemd driver syntax "slice:prefix:name" (no slashes, two colons)."""
    return "/" not in path and path.count(":") == 2


def cgroup_path(cgroups_path: str | None, container_id: str, base: str = PARENT) -> str:
    """The container's cgroup path relative to each hierarchy root.

    Per runtime-spec config-linux.md: an absolute ``cgroupsPath`` is taken
    relative to the hierarchy root; a relative one is placed under ``base``
    (pyoci's parent, or for rootless see :func:`rootless_base`); none means
    ``<base>/<id>``.  ``..`` is resolved lexically inside its own part, so a
    relative path can't climb out of ``base``.
    """
    if cgroups_path and _is_systemd_style(cgroups_path):
        raise CgroupError(
            f"cgroup: systemd cgroup path {cgroups_path!r} is not supported "
            "without --systemd-cgroup"
        )
    if cgroups_path and cgroups_path.startswith("/"):
        rel = posixpath.normpath("/" + cgroups_path.lstrip("/"))
    else:
        inner = posixpath.normpath("/" + (cgroups_path or container_id)).lstrip("/")
        rel = posixpath.join(base, inner)
    rel = rel.rstrip("/")
    if rel in ("", "/", base.rstrip("/")):
        raise CgroupError(f"cgroup: cgroupsPath {cgroups_path or container_id!r} names no cgroup")
    return rel


def rootless_base(proc_cgroup: str = "/proc/self/cgroup") -> str:
    """Where a rootless container's relative (or empty) ``cgroupsPath`` goes on cgroup v2:
    beside the caller's own cgroup, as runc does.

    The spec leaves the location of a relative path to the runtime. A user's
    delegated subtree (systemd's ``user@.service``, or one an administrator
    chowned) holds the user's session as a leaf, and a v2 cgroup with processes
    can't hand controllers to a child; its parent is what the user may write to.
    Rootless podman with the cgroupfs manager passes an empty ``cgroupsPath`` and
    relies on this for ``--memory``. ``/pyoci`` is never the user's.
    """
    with open(proc_cgroup) as f:
        for line in f:
            if line.startswith("0::"):
                return posixpath.dirname(line[3:].strip() or "/")
    raise CgroupError(f"cgroup: no cgroup v2 entry in {proc_cgroup}")


def manager_for(
    cgroups_path: str | None,
    container_id: str,
    mode: str | None = None,
    *,
    systemd: bool = False,
    rootless: bool = False,
    annotations: dict[str, str] | None = None,
) -> Manager:
    """Build the manager for a new container; ``mode`` overrides detection (tests).

    With ``systemd`` (``--systemd-cgroup``) the cgroup is a transient systemd unit
    (:mod:`pyoci.cgroups.systemd`) wrapping the layout's filesystem manager.
    ``rootless`` on cgroup v2 places a relative path by :func:`rootless_base`, and
    with ``systemd`` talks to the user's own systemd.
    """
    if systemd:
        from pyoci.cgroups import systemd as sd

        mode = mode or detect()
        slice_, unit = sd.parse_path(cgroups_path, container_id, user=rootless)
        if mode == "none":
            raise CgroupError("cgroup: --systemd-cgroup needs a cgroup filesystem")
        base, bus = "", None
        if rootless:  # the user's own systemd, as runc does rootless
            if mode != "v2":
                raise CgroupError("cgroup: rootless --systemd-cgroup needs cgroup v2 "
                                  f"(this host's cgroups are {mode})")
            from pyoci.linux.dbus import user_bus_path

            bus = user_bus_path()
            base = sd.user_manager_cgroup(bus)
        inner = _fs_manager(base + sd.unit_cgroup(slice_, unit), mode)
        return sd.SystemdManager(slice_, unit, inner, sd.annotation_props(annotations or {}),
                                 user_bus=bus)
    mode = mode or detect()
    base = rootless_base() if rootless and mode == "v2" else PARENT
    return _fs_manager(cgroup_path(cgroups_path, container_id, base), mode)


def _fs_manager(path: str, mode: str) -> Manager:
    """The manager of the host's layout for one cgroup path."""
    if mode == "none":
        from pyoci.cgroups.none import NoneManager

        return NoneManager(path)
    from pyoci.cgroups.mounts import hierarchy_dir, read_mounts

    mounts = read_mounts()
    if mode == "v2":
        from pyoci.cgroups.v2 import V2Manager

        if mounts.v2 is None:
            raise CgroupError("cgroup: no cgroup2 mount found in /proc/self/mountinfo")
        root = hierarchy_dir(mounts.v2, "/")
        return V2Manager(path, root)
    if mode not in ("v1", "hybrid"):
        raise CgroupError(f"cgroup: unknown cgroup mode {mode!r}")
    if not mounts.v1:
        raise CgroupError("cgroup: no cgroup v1 hierarchy found in /proc/self/mountinfo")
    paths = {ctrl: hierarchy_dir(m, path) for ctrl, m in mounts.v1.items()}
    if mode == "hybrid" and mounts.v2 is not None:
        from pyoci.cgroups.hybrid import HybridManager

        return HybridManager(path, paths, hierarchy_dir(mounts.v2, "/"))
    from pyoci.cgroups.v1 import V1Manager

    return V1Manager(path, paths)


def from_state(d: dict[str, Any]) -> Manager:
    """Rebuild the manager that :meth:`Manager.to_state` described."""
    if d.get("systemd"):
        from pyoci.cgroups.systemd import SystemdManager

        return SystemdManager.from_state(d)
    mode = d.get("mode")
    if mode == "v2":
        from pyoci.cgroups.v2 import V2Manager

        return V2Manager.from_state(d)
    if mode == "hybrid":
        from pyoci.cgroups.hybrid import HybridManager

        return HybridManager.from_state(d)
    if mode == "v1":
        from pyoci.cgroups.v1 import V1Manager

        return V1Manager.from_state(d)
    if mode == "none":
        from pyoci.cgroups.none import NoneManager

        return NoneManager.from_state(d)
    raise CgroupError(f"cgroup: unknown cgroup mode {mode!r} in state")
