"""No cgroups at all: none mounted (some minimal chroots), or rootless without permission.

Lifecycle calls succeed as no-ops so a container can still run, but anything
that needs a cgroup to mean something (resource limits, pause) is refused
instead of pretending to work. ``ps`` and ``kill --all`` find the processes in
``/proc`` instead (pyoci.linux.proctree).
"""

from __future__ import annotations

from pyoci.cgroups.base import Manager
from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


class NoneManager(Manager):
    """The manager used when the host has no cgroup hierarchy."""

    mode = "none"

    def __init__(self, path: str, created: Any = (), rootless: bool = False) -> None:
        super().__init__(path, created)
        # Rootless and not allowed to make the cgroup (pyoci.create._rootless_cgroup).
        self.rootless = rootless

    def _why(self) -> str:
        if self.rootless:
            return ("the container has no cgroup (rootless: no permission to create "
                    f"{self.path}; run it in a cgroup the user may write to, e.g. a delegated "
                    "cgroup v2 subtree named by linux.cgroupsPath)")
        return "no cgroup filesystem"

    def create(self, resources: dict[str, Any] | None = None) -> None:
        if resources:
            self.set(resources)

    def apply(self, pid: int) -> None:
        return None

    def set(self, resources: dict[str, Any]) -> None:
        wanted = [k for k, v in resources.items() if v and k != "devices"]
        if wanted:
            if self.rootless:
                raise CgroupError(f"cannot set {sorted(wanted)[0]} limit: container could not "
                                  f"join or create cgroup: {self._why()}")
            raise CgroupError(f"cgroup: no cgroup filesystem to apply {', '.join(sorted(wanted))}")

    def destroy(self) -> None:
        self.created = []

    def pids(self) -> list[int]:
        return []

    def freeze(self) -> None:
        raise CgroupError(f"cgroup: cannot freeze: {self._why()}")

    def thaw(self) -> None:
        raise CgroupError(f"cgroup: cannot thaw: {self._why()}")

    def frozen(self) -> bool:
        return False

    def has_freezer(self) -> bool:
        return False

    def kill_all(self, sig: int) -> None:
        """Nothing to enumerate; the caller signals the init pid itself."""
        return None

    def stats(self) -> dict[str, Any]:
        return {}

    def to_state(self) -> dict[str, Any]:
        d = self._base_state()
        if self.rootless:
            d["rootless"] = True
        return d

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> NoneManager:
        return cls(d.get("path", ""), d.get("created", ()), bool(d.get("rootless")))
