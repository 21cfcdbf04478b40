"""Rootless: pyoci run by an ordinary user, or by root in a user namespace.

What changes then, as in runc: the global ``--rootless`` flag (``auto``, the
default, means "not root, or not in the initial user namespace") makes a cgroup
that can't be made a reason to run without one, as long as the config asks for
no limits; the container's user namespace gets its maps from the caller's own
ids, or from ``newuidmap``/``newgidmap`` (``/etc/subuid``, ``/etc/subgid``) when
the config maps more than that.
"""

from __future__ import annotations

import os

from pyoci.errors import CgroupError, ProcessSetupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

# The whole 32-bit id space mapped onto itself: the initial user namespace.
_IDENTITY = ("0", "0", "4294967295")
# Errors a rootless cgroup setup may meet and live with (runc's "ignorable" ones).
PERMISSION_ERRNOS = (1, 13, 30)  # EPERM EACCES EROFS


def in_initial_userns() -> bool:
    """Whether we run in the host's user namespace (uid_map is the full identity map)."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return True
    rows = [line.split() for line in lines if line.strip()]
    return len(rows) == 1 and tuple(x.decode() for x in rows[0]) == _IDENTITY


def detect(flag: object) -> bool:
    """``--rootless`` as runc reads it: true, false, or auto (unset)."""
    if flag == "true":
        return True
    if flag == "false":
        return False
    return os.geteuid() != 0 or not in_initial_userns()


def needs_controllers(resources: dict[str, Any] | None) -> list[str]:
    """The controllers ``linux.resources`` would have to write to, sorted.

    ``devices`` is not among them: a rootless container has no device nodes of
    its own (they are bind mounts of the host's) and runc ignores the devices
    controller's errors when rootless.
    """
    names = []
    for key, value in (resources or {}).items():
        if key == "devices" or value in (None, {}, [], 0):
            continue
        if key == "blockIO":
            key = "blkio"
        elif key == "hugepageLimits":
            key = "hugetlb"
        elif key == "network":
            key = "net_cls"
        names.append(key)
    return sorted(names)


def no_cgroup_error(resources: dict[str, Any] | None, cause: CgroupError) -> CgroupError:
    """What to say when the cgroup can't be made and the config wants limits (runc's words)."""
    wanted = needs_controllers(resources)
    return CgroupError(
        f"cannot set {wanted[0]} limit: container could not join or create cgroup "
        f"(rootless: {cause}; linux.resources needs a cgroup the user may write to, "
        "e.g. a delegated cgroup v2 subtree named by linux.cgroupsPath)")


def is_permission_error(exc: BaseException) -> bool:
    """Whether a cgroup error came from the kernel refusing an unprivileged caller."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, OSError):
        return cause.errno in PERMISSION_ERRNOS
    text = str(exc)
    return any(w in text for w in ("permission denied", "operation not permitted",
                                   "read-only file system"))


def _lines(mappings: list[dict[str, int]] | None) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings or [])


def _only_own(mappings: list[dict[str, int]] | None, own: int) -> bool:
    """Whether the mappings are one id: the caller's own, which needs no helper."""
    return len(mappings or []) == 1 and mappings[0]["hostID"] == own \
        and mappings[0]["size"] == 1  # type: ignore[index]


def write_maps(pid: int, linux: dict[str, Any]) -> None:
    """Write the user namespace maps of ``pid`` as an unprivileged user.

    The kernel lets a user map its own id alone (and gid only after
    ``setgroups`` is denied); anything more goes through the setuid helpers
    from Debian's ``uidmap``, which check ``/etc/subuid`` and ``/etc/subgid``.
    """
    for kind, own, tool in (("uid", os.geteuid(), "newuidmap"),
                            ("gid", os.getegid(), "newgidmap")):
        mappings = linux.get(f"{kind}Mappings")
        if _only_own(mappings, own):
            if kind == "gid":
                _write(pid, "setgroups", "deny", kind)
            _write(pid, f"{kind}_map", _lines(mappings), kind)
        else:
            _helper(tool, pid, mappings or [], kind)


def _write(pid: int, name: str, text: str, kind: str) -> None:
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
    except OSError as e:
        raise ProcessSetupError(
            "user namespace", e.errno or 0,
            f"write {name}: {(e.strerror or '').lower()} (rootless: only the caller's own "
            f"{kind} can be mapped without newuidmap/newgidmap)") from None


def _helper(tool: str, pid: int, mappings: list[dict[str, int]], kind: str) -> None:
    import shutil
    import subprocess

    path = shutil.which(tool) or next(
        (p for p in (f"/usr/bin/{tool}", f"/bin/{tool}") if os.path.exists(p)), None)
    sub = "/etc/subuid" if kind == "uid" else "/etc/subgid"
    if path is None:
        raise ProcessSetupError(
            "user namespace", 2,
            f"rootless: linux.{kind}Mappings maps more than the caller's own {kind}: that needs "
            f"{tool} (Debian package uidmap) and ranges in {sub}")
    args = [path, str(pid)]
    for m in mappings:
        args += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    res = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        said = res.stdout.decode(errors="replace").strip().replace("\n", "; ")
        raise ProcessSetupError(
            "user namespace", 1,
            f"{tool} {pid} {' '.join(args[2:])}: {said or f'exit status {res.returncode}'} "
            f"(rootless: the ranges must be allowed for the user in {sub})")


def check_config(config: dict[str, Any]) -> None:
    """What an unprivileged caller can't do at all, refused before anything is made.

    runc's rootless checks and wording: a user namespace is required, and
    mount options can't name an id the container's user namespace doesn't map.
    """
    from pyoci.errors import SpecError

    linux = config.get("linux") or {}
    if not any(n.get("type") == "user" for n in linux.get("namespaces") or []):
        raise SpecError("config.json: linux.namespaces: rootless container requires user "
                        "namespaces (add {\"type\": \"user\"} and uid/gid mappings, as "
                        "`pyoci spec --rootless` does)")
    joined = any(n.get("type") == "user" and n.get("path") for n in linux["namespaces"])
    for kind in ("uid", "gid"):
        if not joined and not linux.get(f"{kind}Mappings"):
            raise SpecError(f"config.json: linux.{kind}Mappings: rootless containers require "
                            f"at least one {kind.upper()} mapping")
    if joined:
        return
    for i, mount in enumerate(config.get("mounts") or []):
        for opt in mount.get("options") or []:
            key, eq, value = opt.partition("=")
            if not eq or key not in ("uid", "gid") or not value.isdigit():
                continue
            ident = int(value)
            if not any(m["containerID"] <= ident < m["containerID"] + m["size"]
                       for m in linux.get(f"{key}Mappings") or []):
                raise SpecError(
                    f"config.json: mounts[{i}] ({mount.get('destination')}): {opt}: cannot "
                    f"specify {key}= mount options for unmapped {key} in rootless containers")
