"""Hybrid hosts: v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified).

The v2 tree here holds whatever controllers the v1 mounts didn't claim (on
this project's test host, only hugetlb).  The container gets a directory there
too, so its processes are visible to v2-aware tools, and resources go to v2
only when their v1 controller is absent: hugepage limits when hugetlb isn't a
v1 mount, and ``unified`` keys whose controller the v2 tree holds.
"""

from __future__ import annotations

import os

from pyoci.cgroups import v2
from pyoci.cgroups.base import write_file
from pyoci.cgroups.v1 import V1Manager
from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


class HybridManager(V1Manager):
    """V1Manager plus the container's directory in the unified (v2) mount."""

    mode = "hybrid"

    def __init__(
        self,
        path: str,
        paths: dict[str, str],
        unified_root: str,
        created: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__(path, paths, created)
        self.unified_root = unified_root
        self.unified = os.path.join(unified_root, path.lstrip("/")).rstrip("/") or unified_root

    def create(self, resources: dict[str, Any] | None = None) -> None:
        made = v2.make_path(self.unified_root, self.unified)
        self.created.extend(d for d in made if d not in self.created)
        super().create(resources)

    def apply(self, pid: int) -> None:
        super().apply(pid)
        write_file(os.path.join(self.unified, "cgroup.procs"), pid)

    def leaves(self) -> list[str]:
        return [*super().leaves(), self.unified]

    def _set_hugetlb(self, limits: list[dict[str, Any]]) -> None:
        if "hugetlb" in self.paths:
            super()._set_hugetlb(limits)
            return
        if "hugetlb" not in v2.available_controllers(self.unified):
            raise CgroupError(
                f"cgroup: the hugetlb controller is available in neither v1 nor {self.unified}"
            )
        v2.set_hugetlb(self.unified, limits)

    def _set_unified(self, unified: dict[str, str]) -> None:
        """Only keys whose controller lives in the v2 tree can be honoured."""
        v2.set_unified(self.unified, unified)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        if "hugetlb" not in self.paths:
            out["hugetlb"] = v2.hugetlb_stats(self.unified)
        return out

    def to_state(self) -> dict[str, Any]:
        state = super().to_state()
        state["unified_root"] = self.unified_root
        return state

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> HybridManager:
        return cls(d["path"], d.get("paths", {}), d["unified_root"], d.get("created", ()))
