"""A validated config turned into a frozen plan: everything resolved once, in the parent.

The container process is forked from the parent, so the plan reaches it
without being serialised; anything that can fail here fails at ``create``.
"""

from __future__ import annotations

import os

from pyoci.errors import SpecError
from pyoci.linux import namespaces as ns
from pyoci.record import Factory, record

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class Plan:
    cid: str
    bundle: str
    rootfs: str
    config: dict[str, Any]
    new_ns: int  # CLONE_NEW* flags to unshare (user excluded: it goes first, alone)
    new_userns: bool
    join: list[tuple[str, str]]  # (type, path) in join order
    needs_fork: bool  # a new or joined pid or time namespace
    process: dict[str, Any]
    caps: dict[str, int] | None
    seccomp: Any = None  # pyoci.linux.seccomp.Filter
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    console_socket: str | None = None
    warnings: list[str] = Factory(list)

    @property
    def linux(self) -> dict[str, Any]:
        return self.config.get("linux") or {}

    def has_ns(self, nstype: str) -> bool:
        return any(n["type"] == nstype for n in self.linux.get("namespaces") or [])


def build(cid: str, bundle: str, config: dict[str, Any], *, no_pivot: bool = False,
          no_new_keyring: bool = False, preserve_fds: int = 0,
          console_socket: str | None = None, cache_dir: str | None = None) -> Plan:
    from pyoci._native import lib
    from pyoci.linux import capabilities

    root = config["root"]["path"]
    try:
        rootfs = os.path.realpath(root if os.path.isabs(root) else os.path.join(bundle, root))
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise SpecError(f"config.json: root.path: {reason.lower()}: {root}") from None
    linux = config.get("linux") or {}
    new = 0
    new_user = False
    join: list[tuple[str, str]] = []
    needs_fork = False
    for n in linux.get("namespaces") or []:
        t = n["type"]
        if n.get("path"):
            join.append((t, n["path"]))
        elif t == "user":
            new_user = True
        else:
            new |= ns.FLAGS[t]
        if t in ("pid", "time"):
            needs_fork = True
    join.sort(key=lambda item: ns.JOIN_ORDER.index(item[0]))
    process = config.get("process") or {}
    warnings: list[str] = []
    caps = None
    if "capabilities" in process:
        caps, warnings = capabilities.masks(process["capabilities"] or {}, lib.pyoci_cap_last())
    seccomp = None
    if linux.get("seccomp"):
        from pyoci.linux.seccomp import compile_filter

        seccomp = compile_filter(linux["seccomp"], cache_dir=cache_dir)
    return Plan(
        cid=cid, bundle=bundle, rootfs=rootfs, config=config, new_ns=new,
        new_userns=new_user, join=join, needs_fork=needs_fork, process=process, caps=caps,
        seccomp=seccomp, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
        preserve_fds=preserve_fds, console_socket=console_socket, warnings=warnings,
    )
