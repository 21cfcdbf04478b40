"""No cgroups at all (no cgroup filesystem mounted, e.g. some minimal chroots).

Lifecycle calls succeed as no-ops so a container can still run, but anything
that needs a cgroup to mean something (resource limits, pause) is refused
instead of pretending to work.
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

    def create(self, resources: dict[str, Any] | None = None) -> None:
        if resources:
            self.set(resources)

    def apply(self, pid: int) -> None:
        return None

    def set(self, resources: dict[str, Any]) -> None:
        wanted = [k for k, v in resources.items() if v and k != "devices"]
        if wanted:
            raise CgroupError(f"cgroup: no cgroup filesystem to apply {', '.join(sorted(wanted))}")

    def destroy(self) -> None:
        self.created = []

    def pids(self) -> list[int]:
        return []

    def freeze(self) -> None:
        raise CgroupError("cgroup: cannot freeze: no cgroup filesystem")

    def thaw(self) -> None:
        raise CgroupError("cgroup: cannot thaw: no cgroup filesystem")

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
        return self._base_state()

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> NoneManager:
        return cls(d.get("path", ""), d.get("created", ()))
