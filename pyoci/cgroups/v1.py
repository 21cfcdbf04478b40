"""cgroup v1 backend: one directory per mounted hierarchy.

Every mounted hierarchy (including named ones such as name=systemd) gets the
container's directory and its pid, as runc does, so tools that look up a
process's cgroup in any hierarchy find the container.  Resources go to the
controller that owns them; a resource whose controller isn't mounted is an
error rather than a silent no-op.
"""

from __future__ import annotations

import os
import time

from pyoci.cgroups import convert
from pyoci.cgroups.base import (
    Manager,
    mkdirs,
    parse_flat_keyed,
    parse_rdma,
    read_file,
    read_int,
    read_optional,
    read_procs,
    walk_dirs,
    write_file,
)
from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

    from pyoci.cgroups.oom import OomWatch

_FREEZE_TIMEOUT = 5.0
_NS_PER_SEC = 1_000_000_000


def _is_einval(exc: CgroupError) -> bool:
    return str(exc).endswith(": invalid argument")


class V1Manager(Manager):
    """A container cgroup on a cgroup v1 host.

    ``paths`` maps each controller name ("cpu", "memory", "name=systemd", ...)
    to the container's absolute directory in that controller's hierarchy;
    co-mounted controllers share a directory.
    """

    mode = "v1"

    def __init__(
        self,
        path: str,
        paths: dict[str, str],
        created: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__(path, created)
        self.paths = dict(paths)

    # -- helpers ---------------------------------------------------------
    def _dirs(self) -> list[str]:
        return sorted(set(self.paths.values()))

    def _dir(self, ctrl: str, needed_for: str) -> str:
        d = self.paths.get(ctrl)
        if d is None:
            raise CgroupError(
                f"cgroup: the {ctrl} controller is not mounted (needed for {needed_for})"
            )
        return d

    def _write(self, ctrl: str, name: str, value: str | int, needed_for: str = "") -> None:
        d = self._dir(ctrl, needed_for or name)
        write_file(os.path.join(d, name), value)

    # -- lifecycle -------------------------------------------------------
    def create(self, resources: dict[str, Any] | None = None) -> None:
        for d in self._dirs():
            made = mkdirs(d)
            self.created.extend(m for m in made if m not in self.created)
        if "cpuset" in self.paths:
            self._fill_cpuset(self.paths["cpuset"])
        res = dict(resources or {})
        # runc puts every container under a default-deny device policy plus
        # its standard allow list, even when the config lists no rules.
        if self.skip_devices:
            res.pop("devices", None)
        else:
            res.setdefault("devices", [])
        self.set(res)

    @staticmethod
    def _fill_cpuset(leaf: str) -> None:
        """Copy cpuset.cpus/mems down into empty directories on the way to ``leaf``.

        A v1 cpuset starts empty, and the kernel refuses tasks in an empty
        cpuset, so every level we (or anyone) left empty must inherit its
        parent's sets before the container's pid can be added.
        """
        chain = []
        cur = leaf
        while os.path.exists(os.path.join(cur, "cpuset.cpus")):
            chain.append(cur)
            parent = os.path.dirname(cur)
            if parent == cur:
                break
            cur = parent
        for d in reversed(chain[:-1]):
            parent = os.path.dirname(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if read_file(os.path.join(d, name)) == "":
                    write_file(os.path.join(d, name), read_file(os.path.join(parent, name)))

    def apply(self, pid: int) -> None:
        for d in self._dirs():
            write_file(os.path.join(d, "cgroup.procs"), pid)

    def set(self, resources: dict[str, Any]) -> None:
        self.ignored = []
        res = resources
        if res.get("memory"):
            self._set_memory(res["memory"])
        if res.get("cpu"):
            self._set_cpu(res["cpu"])
        pids = res.get("pids")
        if pids:
            text = convert.pids_text(pids.get("limit"))
            if text is not None:
                self._write("pids", "pids.max", text, "pids.limit")
        if res.get("blockIO"):
            self._set_blkio(res["blockIO"])
        if res.get("hugepageLimits"):
            self._set_hugetlb(res["hugepageLimits"])
        net = res.get("network")
        if net:
            if net.get("classID") is not None:
                self._write("net_cls", "net_cls.classid", net["classID"], "network.classID")
            for prio in net.get("priorities") or []:
                line = f"{prio['name']} {prio['priority']}"
                self._write("net_prio", "net_prio.ifpriomap", line, "network.priorities")
        if res.get("rdma"):
            for line in parse_rdma(res["rdma"]):
                self._write("rdma", "rdma.max", line, "rdma")
        if "devices" in res and "devices" in self.paths:
            self._set_devices(res["devices"] or [])
        elif res.get("devices"):
            raise CgroupError("cgroup: the devices controller is not mounted (needed for devices)")
        if res.get("unified"):
            self._set_unified(res["unified"])

    def _set_unified(self, unified: dict[str, str]) -> None:
        key = next(iter(unified))
        raise CgroupError(f"cgroup: unified resource {key} requires cgroup v2")

    def _set_memory(self, mem: dict[str, Any]) -> None:
        """memory.* in the order runc uses, so a raise and a cut both succeed.

        The kernel insists memory.limit <= memsw.limit at every moment, so when
        the new total is above the current limit memsw goes first, else last.
        """
        d = self._dir("memory", "memory")
        limit = mem.get("limit") or 0
        swap = mem.get("swap") or 0
        implied_swap = False
        if limit == -1 and swap == 0:
            swap, implied_swap = -1, True
        memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
        lim = os.path.join(d, "memory.limit_in_bytes")
        if swap and not os.path.exists(memsw):
            if not implied_swap:
                raise CgroupError(f"cgroup: {memsw}: swap accounting is not enabled")
            swap = 0
        if limit and swap:
            current = read_int(lim, -1)
            if swap == -1 or current < swap:
                write_file(memsw, swap)
                write_file(lim, limit)
                swap = limit = 0
        if limit:
            write_file(lim, limit)
        if swap:
            write_file(memsw, swap)
        if mem.get("reservation"):
            write_file(os.path.join(d, "memory.soft_limit_in_bytes"), mem["reservation"])
        if mem.get("kernelTCP"):
            write_file(os.path.join(d, "memory.kmem.tcp.limit_in_bytes"), mem["kernelTCP"])
        if mem.get("kernel"):
            # Kernel memory limits are deprecated (and refused since 5.16);
            # runc ignores them too.
            self.ignored.append("memory.kernel")
        swappiness = mem.get("swappiness")
        if swappiness is not None and swappiness != -1:
            if not 0 <= swappiness <= 100:
                raise CgroupError(
                    f"cgroup: invalid memory swappiness {swappiness}: valid range is 0-100"
                )
            write_file(os.path.join(d, "memory.swappiness"), swappiness)
        if mem.get("disableOOMKiller"):
            write_file(os.path.join(d, "memory.oom_control"), "1")

    def _set_cpu(self, cpu: dict[str, Any]) -> None:
        if cpu.get("shares"):
            d = self._dir("cpu", "cpu.shares")
            path = os.path.join(d, "cpu.shares")
            write_file(path, cpu["shares"])
            got = read_int(path)
            if got != cpu["shares"]:
                # The kernel clamps silently; runc reports the clamp as an error.
                bound = "maximum" if cpu["shares"] > got else "minimum"
                raise CgroupError(f"cgroup: {path}: the {bound} allowed cpu-shares is {got}")
        quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
        if period:
            try:
                self._write("cpu", "cpu.cfs_period_us", period)
            except CgroupError as exc:
                # A shorter period can be refused under the current quota;
                # setting the quota first makes the pair consistent.
                if not (quota and _is_einval(exc)):
                    raise
                self._write("cpu", "cpu.cfs_quota_us", quota)
                self._write("cpu", "cpu.cfs_period_us", period)
        if quota:
            self._write("cpu", "cpu.cfs_quota_us", quota)
        if cpu.get("burst") is not None:
            self._write("cpu", "cpu.cfs_burst_us", cpu["burst"])
        if cpu.get("realtimePeriod"):
            self._write("cpu", "cpu.rt_period_us", cpu["realtimePeriod"])
        if cpu.get("realtimeRuntime"):
            self._write("cpu", "cpu.rt_runtime_us", cpu["realtimeRuntime"])
        if cpu.get("idle") is not None:
            self._write("cpu", "cpu.idle", cpu["idle"])
        if cpu.get("cpus"):
            self._write("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._write("cpuset", "cpuset.mems", cpu["mems"])

    def _set_blkio(self, bio: dict[str, Any]) -> None:
        d = self._dir("blkio", "blockIO")
        # CFQ's blkio.weight, or BFQ's blkio.bfq.weight on newer kernels.
        prefix = None
        for cand in ("blkio.", "blkio.bfq."):
            if os.path.exists(os.path.join(d, cand + "weight")):
                prefix = cand
                break
        wants_weight = bio.get("weight") or bio.get("leafWeight") or bio.get("weightDevice")
        if wants_weight and prefix is None:
            raise CgroupError(
                f"cgroup: blkio weight is not supported: no blkio.weight or blkio.bfq.weight in {d}"
            )
        if bio.get("weight"):
            write_file(os.path.join(d, f"{prefix}weight"), bio["weight"])
        if bio.get("leafWeight"):
            write_file(os.path.join(d, f"{prefix}leaf_weight"), bio["leafWeight"])
        for dev in bio.get("weightDevice") or []:
            key = f"{dev['major']}:{dev['minor']}"
            if dev.get("weight"):
                write_file(os.path.join(d, f"{prefix}weight_device"), f"{key} {dev['weight']}")
            if dev.get("leafWeight"):
                write_file(
                    os.path.join(d, f"{prefix}leaf_weight_device"), f"{key} {dev['leafWeight']}"
                )
        for spec_key, name in (
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
        ):
            for dev in bio.get(spec_key) or []:
                write_file(os.path.join(d, name), f"{dev['major']}:{dev['minor']} {dev['rate']}")

    def _set_hugetlb(self, limits: list[dict[str, Any]]) -> None:
        for entry in limits:
            name = f"hugetlb.{entry['pageSize']}.limit_in_bytes"
            self._write("hugetlb", name, entry["limit"], "hugepageLimits")

    def _set_devices(self, rules: list[dict[str, Any]]) -> None:
        """Default deny, then each rule in order, then runc's standard allow list.

        v1 applies allow/deny writes incrementally, so replaying the list in
        order reproduces the spec's "last matching rule wins" semantics; a
        wildcard "a" rule switches the default (and clears the exceptions).
        """
        d = self.paths["devices"]
        write_file(os.path.join(d, "devices.deny"), "a")
        for rule in [*rules, *convert.DEFAULT_DEVICE_RULES]:
            target = "devices.allow" if rule.get("allow") else "devices.deny"
            for line in convert.v1_device_lines(rule):
                write_file(os.path.join(d, target), line)

    def leaves(self) -> list[str]:
        return self._dirs()

    def destroy(self) -> None:
        # A frozen cgroup can't be emptied; thaw so dying tasks can exit.
        if "freezer" in self.paths and self.frozen() and self.pids():
            try:
                self.thaw()
            except CgroupError:
                pass
        super().destroy()

    # -- inspection and control -----------------------------------------
    def _pid_dir(self) -> str | None:
        for ctrl in ("pids", "freezer", "memory", "cpu", "devices"):
            if ctrl in self.paths:
                return self.paths[ctrl]
        dirs = self._dirs()
        return dirs[0] if dirs else None

    def pids(self) -> list[int]:
        top = self._pid_dir()
        out: list[int] = []
        if top is None:
            return out
        for d in walk_dirs(top):
            out.extend(read_procs(d))
        return out

    def _freezer_state(self, want: str) -> None:
        d = self._dir("freezer", "pause")
        path = os.path.join(d, "freezer.state")
        write_file(path, want)
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        delay = 0.0005
        while True:
            state = read_optional(path)
            if state is None or state == want:
                return
            if time.monotonic() > deadline:
                if want == "FROZEN":
                    write_file(path, "THAWED")
                raise CgroupError(f"cgroup: write {path}: timed out waiting for {want}")
            # Re-asserting FROZEN nudges tasks that were mid-fork when it began.
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            write_file(path, want)

    def freeze(self) -> None:
        self._freezer_state("FROZEN")

    def thaw(self) -> None:
        self._freezer_state("THAWED")

    def frozen(self) -> bool:
        from pyoci.linux.cgroupfiles import frozen  # the one reading `state` uses too

        return frozen(self.to_state())

    def has_freezer(self) -> bool:
        return "freezer" in self.paths and os.path.isdir(self.paths["freezer"])

    def exists(self) -> bool:
        d = self._pid_dir()
        return d is not None and os.path.isdir(d)

    def oom_watch(self) -> OomWatch | None:
        if "memory" not in self.paths:
            return None
        from pyoci.cgroups.oom import V1OomWatch

        return V1OomWatch(self.paths["memory"])

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cpu: dict[str, Any] = {"usage": {}, "throttling": {}}
        if "cpuacct" in self.paths:
            d = self.paths["cpuacct"]
            ticks = os.sysconf("SC_CLK_TCK") or 100
            acct = parse_flat_keyed(read_optional(os.path.join(d, "cpuacct.stat")))
            usage = cpu["usage"]
            usage["total"] = read_int(os.path.join(d, "cpuacct.usage"))
            for key, name in (
                ("percpu", "cpuacct.usage_percpu"),
                ("percpu_kernel", "cpuacct.usage_percpu_sys"),
                ("percpu_user", "cpuacct.usage_percpu_user"),
            ):
                text = read_optional(os.path.join(d, name))
                if text:
                    usage[key] = [int(x) for x in text.split()]
            usage["kernel"] = acct.get("system", 0) * _NS_PER_SEC // ticks
            usage["user"] = acct.get("user", 0) * _NS_PER_SEC // ticks
        if "cpu" in self.paths:
            st = parse_flat_keyed(read_optional(os.path.join(self.paths["cpu"], "cpu.stat")))
            cpu["throttling"] = {
                "periods": st.get("nr_periods", 0),
                "throttledPeriods": st.get("nr_throttled", 0),
                "throttledTime": st.get("throttled_time", 0),
            }
        out["cpu"] = cpu
        if "memory" in self.paths:
            d = self.paths["memory"]

            def entry(prefix: str) -> dict[str, int]:
                return {
                    "limit": read_int(os.path.join(d, f"{prefix}.limit_in_bytes")),
                    "usage": read_int(os.path.join(d, f"{prefix}.usage_in_bytes")),
                    "max": read_int(os.path.join(d, f"{prefix}.max_usage_in_bytes")),
                    "failcnt": read_int(os.path.join(d, f"{prefix}.failcnt")),
                }

            raw = parse_flat_keyed(read_optional(os.path.join(d, "memory.stat")))
            out["memory"] = {
                "cache": raw.get("cache", 0),
                "usage": entry("memory"),
                "swap": entry("memory.memsw"),
                "kernel": entry("memory.kmem"),
                "kernelTCP": entry("memory.kmem.tcp"),
                "raw": raw,
            }
        if "pids" in self.paths:
            d = self.paths["pids"]
            out["pids"] = {
                "current": read_int(os.path.join(d, "pids.current")),
                "limit": read_int(os.path.join(d, "pids.max")),
            }
        if "blkio" in self.paths:
            out["blkio"] = self._blkio_stats(self.paths["blkio"])
        if "hugetlb" in self.paths:
            from pyoci.cgroups.v2 import hugepage_sizes

            d = self.paths["hugetlb"]
            out["hugetlb"] = {
                size: {
                    "usage": read_int(os.path.join(d, f"hugetlb.{size}.usage_in_bytes")),
                    "max": read_int(os.path.join(d, f"hugetlb.{size}.max_usage_in_bytes")),
                    "failcnt": read_int(os.path.join(d, f"hugetlb.{size}.failcnt")),
                }
                for size in hugepage_sizes()
            }
        return out

    @staticmethod
    def _blkio_stats(d: str) -> dict[str, Any]:
        """Per-device Read/Write counters, from the first scheduler that has them."""

        def entries(name: str) -> list[dict[str, Any]] | None:
            text = read_optional(os.path.join(d, name))
            if text is None:
                return None
            out = []
            for line in text.splitlines():
                parts = line.split()
                if len(parts) != 3 or ":" not in parts[0]:
                    continue
                major, minor = (int(x) for x in parts[0].split(":"))
                out.append({"major": major, "minor": minor, "op": parts[1], "value": int(parts[2])})
            return out

        result: dict[str, Any] = {}
        for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
            sb = entries(f"{prefix}io_service_bytes_recursive")
            if sb:
                result["ioServiceBytesRecursive"] = sb
                result["ioServicedRecursive"] = entries(f"{prefix}io_serviced_recursive") or []
                break
        return result

    # -- persistence -----------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        state = self._base_state()
        state["paths"] = dict(self.paths)
        return state

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> V1Manager:
        return cls(d["path"], d.get("paths", {}), d.get("created", ()))

    def read(self, ctrl: str, name: str) -> str:
        """A control file of the container cgroup in one hierarchy (tests, checks)."""
        return read_file(os.path.join(self._dir(ctrl, name), name))
