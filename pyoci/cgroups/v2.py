"""cgroup v2 (unified hierarchy) backend.

Written from the kernel's Documentation/admin-guide/cgroup-v2.rst: one tree,
controllers enabled for a child by writing "+name" to the parent's
cgroup.subtree_control, core files (cgroup.procs, cgroup.freeze, cgroup.kill,
cgroup.events) present in every non-root cgroup.  The resource writers are
module functions so the hybrid backend can reuse them on its unified mount.
"""

from __future__ import annotations

import errno
import os
import time

from pyoci.cgroups import convert
from pyoci.cgroups.base import (
    CGROUP_ROOT,
    Manager,
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

UINT64_MAX = 2**64 - 1
_FREEZE_TIMEOUT = 5.0


def _exists(d: str, name: str) -> bool:
    return os.path.exists(os.path.join(d, name))


def _write(d: str, name: str, value: str | int) -> None:
    write_file(os.path.join(d, name), value)


def available_controllers(d: str) -> set[str]:
    """Controllers usable in cgroup ``d`` (enabled by its parent)."""
    return set((read_optional(os.path.join(d, "cgroup.controllers")) or "").split())


def enable_controllers(parent: str) -> None:
    """Delegate every controller ``parent`` has to its children.

    Each controller is enabled with its own write so one the kernel refuses
    (say, cpu while a realtime task sits in the parent) doesn't block the
    others; a resource that needs the missing controller then fails with the
    name of the missing file, which says more than the refusal would.
    """
    have = available_controllers(parent)
    enabled = set((read_optional(os.path.join(parent, "cgroup.subtree_control")) or "").split())
    for ctrl in sorted(have - enabled):
        try:
            _write(parent, "cgroup.subtree_control", f"+{ctrl}")
        except CgroupError:
            continue


def make_path(root: str, leaf: str) -> list[str]:
    """Create ``leaf`` under mount ``root``, delegating controllers on the way.

    Returns the directories made.  Existing ancestors get controllers enabled
    too, since a pre-made parent (e.g. /pyoci from an older run) may lack them.
    A parent removed half-way by another container's delete (it was empty a
    moment ago) is made again, as :func:`pyoci.cgroups.base.mkdirs` does.
    """
    rel = os.path.relpath(leaf, root)
    chain = [root]
    if rel != ".":
        cur = root
        for part in rel.split("/"):
            cur = os.path.join(cur, part)
            chain.append(cur)
    made: list[str] = []
    for attempt in range(_MAKE_TRIES):
        try:
            _make_chain(chain, made)
            return made
        except CgroupError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError) or attempt == _MAKE_TRIES - 1:
                raise
    return made


_MAKE_TRIES = 50


def _make_chain(chain: list[str], made: list[str]) -> None:
    for i, d in enumerate(chain):
        if not os.path.isdir(d):
            try:
                os.mkdir(d, 0o755)
                if d not in made:
                    made.append(d)
            except FileExistsError:
                pass
            except OSError as exc:
                reason = (exc.strerror or "").lower()
                raise CgroupError(f"cgroup: mkdir {d}: {reason}") from exc
        if i < len(chain) - 1:
            enable_controllers(d)


# -- resources -------------------------------------------------------------


def set_memory(d: str, mem: dict[str, Any]) -> None:
    """memory.max / memory.swap.max / memory.low.

    swappiness, disableOOMKiller and the kernel limits have no v2 file; runc
    and crun skip them on v2, and so do we (see the manager's ``ignored``).
    Swap goes first so that lowering memory.max never meets an old swap value.
    """
    limit = mem.get("limit")
    swap = convert.swap_to_v2(mem.get("swap"), limit)
    if swap is not None:
        text = convert.limit_text(swap)
        path = os.path.join(d, "memory.swap.max")
        if os.path.exists(path):
            write_file(path, text)
        elif text not in ("max", "0"):
            raise CgroupError(f"cgroup: {path}: swap accounting is not available")
    if limit:
        _write(d, "memory.max", convert.limit_text(limit))
    reservation = mem.get("reservation")
    if reservation:
        _write(d, "memory.low", convert.limit_text(reservation))


def set_cpu(d: str, cpu: dict[str, Any]) -> None:
    """cpu.weight, cpu.max, cpu.max.burst, cpu.idle, cpuset.cpus/mems."""
    if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
        raise CgroupError("cgroup: realtime cpu settings are not supported on cgroup v2")
    weight = convert.shares_to_weight(cpu.get("shares") or 0)
    if weight:
        _write(d, "cpu.weight", weight)
    line = convert.cpu_max(cpu.get("quota"), cpu.get("period"))
    if line is not None:
        _write(d, "cpu.max", line)
    if cpu.get("burst") is not None:
        _write(d, "cpu.max.burst", cpu["burst"])
    if cpu.get("idle") is not None:
        _write(d, "cpu.idle", cpu["idle"])
    if cpu.get("cpus"):
        _write(d, "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        _write(d, "cpuset.mems", cpu["mems"])


def set_io(d: str, bio: dict[str, Any]) -> None:
    """BFQ's io.bfq.weight keeps the v1 range; plain io.weight needs converting."""
    bfq = _exists(d, "io.bfq.weight")
    weight = bio.get("weight")
    if weight:
        if bfq:
            _write(d, "io.bfq.weight", weight)
        else:
            _write(d, "io.weight", convert.blkio_weight_to_io_weight(weight))
    for dev in bio.get("weightDevice") or []:
        w = dev.get("weight")
        if not w:
            continue
        key = f"{dev['major']}:{dev['minor']}"
        if bfq:
            _write(d, "io.bfq.weight", f"{key} {w}")
        else:
            _write(d, "io.weight", f"{key} {convert.blkio_weight_to_io_weight(w)}")
    for spec_key, io_key in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for dev in bio.get(spec_key) or []:
            rate = dev.get("rate") or 0
            value = str(rate) if rate > 0 else "max"  # v1's rate 0 lifts the limit
            _write(d, "io.max", f"{dev['major']}:{dev['minor']} {io_key}={value}")


def set_hugetlb(d: str, limits: list[dict[str, Any]]) -> None:
    """hugetlb.<size>.max, and the reservation limit too where the kernel has it."""
    for entry in limits:
        size, limit = entry["pageSize"], entry["limit"]
        _write(d, f"hugetlb.{size}.max", convert.limit_text(limit))
        rsvd = f"hugetlb.{size}.rsvd.max"
        if _exists(d, rsvd):
            _write(d, rsvd, convert.limit_text(limit))


def set_unified(d: str, unified: dict[str, str]) -> None:
    """Write ``linux.resources.unified`` verbatim, after checking each key.

    A key names a file in the container's cgroup, so it must not contain a
    slash; and its controller must be enabled here, or the write would fail
    with a bare "no such file" that hides the real cause.
    """
    if not unified:
        return
    have = available_controllers(d)
    for key, value in unified.items():
        if "/" in key or key.startswith(".") or "." not in key:
            raise CgroupError(f"cgroup: invalid unified resource key {key!r}")
        ctrl = key.split(".", 1)[0]
        if ctrl != "cgroup" and ctrl not in have:
            raise CgroupError(
                f"cgroup: unified resource {key}: controller {ctrl} is not available in {d}"
            )
        if not _exists(d, key):
            raise CgroupError(f"cgroup: unified resource {key}: no such file in {d}")
        _write(d, key, value)


def set_resources(d: str, res: dict[str, Any], ignored: list[str]) -> None:
    """Apply ``linux.resources`` to v2 cgroup ``d``.

    ``ignored`` collects settings with no v2 equivalent that were skipped, so
    the caller can warn (or refuse) instead of the miss being silent.
    """
    mem = res.get("memory")
    if mem:
        for key in ("swappiness", "disableOOMKiller", "kernel", "kernelTCP"):
            if mem.get(key) not in (None, False):
                ignored.append(f"memory.{key}")
        set_memory(d, mem)
    cpu = res.get("cpu")
    if cpu:
        set_cpu(d, cpu)
    pids = res.get("pids")
    if pids:
        text = convert.pids_text(pids.get("limit"))
        if text is not None:
            _write(d, "pids.max", text)
    bio = res.get("blockIO")
    if bio:
        if bio.get("leafWeight") or any(w.get("leafWeight") for w in bio.get("weightDevice") or []):
            ignored.append("blockIO.leafWeight")
        set_io(d, bio)
    if res.get("hugepageLimits"):
        set_hugetlb(d, res["hugepageLimits"])
    net = res.get("network")
    if net and (net.get("classID") is not None or net.get("priorities")):
        raise CgroupError("cgroup: network classID and priorities are not supported on cgroup v2")
    if res.get("rdma"):
        for line in parse_rdma(res["rdma"]):
            _write(d, "rdma.max", line)
    if "devices" in res:
        set_devices(d, res["devices"] or [], ignored)
    set_unified(d, res.get("unified") or {})


def set_devices(d: str, rules: list[dict[str, Any]], ignored: list[str]) -> int | None:
    """Enforce device rules with an eBPF program attached to ``d``; return its id.

    v2 has no devices files: the kernel asks a BPF_CGROUP_DEVICE program (see
    :mod:`pyoci.cgroups.devices_bpf`).  A kernel without bpf(2), or a caller
    not allowed to use it (no CAP_BPF/CAP_SYS_ADMIN), gets the rules recorded
    as not enforced rather than a failed container.
    """
    from pyoci.cgroups import devices_bpf

    try:
        return devices_bpf.install(d, rules)
    except CgroupError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSYS, errno.EPERM):
            ignored.append("devices")
            return None
        raise


# -- stats -----------------------------------------------------------------


def hugepage_sizes() -> list[str]:
    """Page sizes the kernel offers, named the way hugetlb files name them."""
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for name in names:
        kb = int(name.removeprefix("hugepages-").removesuffix("kB"))
        for unit, scale in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % scale == 0:
                out.append(f"{kb // scale}{unit}")
                break
    return sorted(out)


def _max_or(value: str | None, default: int) -> int:
    if value is None:
        return 0
    return default if value == "max" else int(value.split()[0])


def io_stats(d: str) -> dict[str, Any]:
    """io.stat in runc's blkio shape (Read/Write entries per device)."""
    nbytes: list[dict[str, Any]] = []
    nios: list[dict[str, Any]] = []
    for line in (read_optional(os.path.join(d, "io.stat")) or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for src, op, dest in (
            ("rbytes", "Read", nbytes),
            ("wbytes", "Write", nbytes),
            ("rios", "Read", nios),
            ("wios", "Write", nios),
        ):
            if src in kv:
                dest.append({"major": major, "minor": minor, "op": op, "value": int(kv[src])})
    out: dict[str, Any] = {}
    if nbytes:
        out["ioServiceBytesRecursive"] = nbytes
    if nios:
        out["ioServicedRecursive"] = nios
    return out


def hugetlb_stats(d: str) -> dict[str, Any]:
    out = {}
    for size in hugepage_sizes():
        current = read_optional(os.path.join(d, f"hugetlb.{size}.current"))
        if current is None:
            continue
        events = parse_flat_keyed(read_optional(os.path.join(d, f"hugetlb.{size}.events")))
        out[size] = {
            "usage": int(current),
            "max": _max_or(read_optional(os.path.join(d, f"hugetlb.{size}.max")), UINT64_MAX),
            "failcnt": events.get("max", 0),
        }
    return out


def stats_for(d: str) -> dict[str, Any]:
    """Usage of v2 cgroup ``d`` in runc's ``events --stats`` shape."""
    cpu = parse_flat_keyed(read_optional(os.path.join(d, "cpu.stat")))
    mem_raw = parse_flat_keyed(read_optional(os.path.join(d, "memory.stat")))
    mem_events = parse_flat_keyed(read_optional(os.path.join(d, "memory.events")))
    mem_current = read_int(os.path.join(d, "memory.current"))
    swap_current = read_int(os.path.join(d, "memory.swap.current"))
    mem_limit = _max_or(read_optional(os.path.join(d, "memory.max")), UINT64_MAX)
    swap_limit = _max_or(read_optional(os.path.join(d, "memory.swap.max")), UINT64_MAX)
    memory: dict[str, Any] = {
        "cache": mem_raw.get("file", 0),
        "usage": {
            "limit": mem_limit,
            "usage": mem_current,
            "max": read_int(os.path.join(d, "memory.peak")),
            "failcnt": mem_events.get("max", 0),
        },
        # runc reports v2 swap as memory+swap so v1-minded callers see the same sum.
        "swap": {
            "limit": UINT64_MAX
            if UINT64_MAX in (mem_limit, swap_limit)
            else mem_limit + swap_limit,
            "usage": mem_current + swap_current,
            "failcnt": 0,
        },
        "raw": mem_raw,
    }
    return {
        "cpu": {
            "usage": {
                "total": cpu.get("usage_usec", 0) * 1000,
                "kernel": cpu.get("system_usec", 0) * 1000,
                "user": cpu.get("user_usec", 0) * 1000,
            },
            "throttling": {
                "periods": cpu.get("nr_periods", 0),
                "throttledPeriods": cpu.get("nr_throttled", 0),
                "throttledTime": cpu.get("throttled_usec", 0) * 1000,
            },
        },
        "memory": memory,
        "pids": {
            "current": read_int(os.path.join(d, "pids.current")),
            "limit": read_int(os.path.join(d, "pids.max")),
        },
        "blkio": io_stats(d),
        "hugetlb": hugetlb_stats(d),
    }


def freeze_dir(d: str, on: bool) -> None:
    """Write cgroup.freeze and wait until cgroup.events agrees.

    Freezing is asynchronous in v2: tasks stop at their next return to user
    space, and only then does cgroup.events flip "frozen".
    """
    want = "1" if on else "0"
    _write(d, "cgroup.freeze", want)
    events = os.path.join(d, "cgroup.events")
    deadline = time.monotonic() + _FREEZE_TIMEOUT
    delay = 0.0005
    while True:
        state = parse_flat_keyed(read_optional(events))
        if str(state.get("frozen", 0)) == want or not os.path.isdir(d):
            return
        if time.monotonic() > deadline:
            if on:
                _write(d, "cgroup.freeze", "0")
            raise CgroupError(f"cgroup: {'freeze' if on else 'thaw'} {d}: timed out")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class V2Manager(Manager):
    """A container cgroup on a pure cgroup v2 host."""

    mode = "v2"

    def __init__(
        self,
        path: str,
        root: str = CGROUP_ROOT,
        created: list[str] | tuple[str, ...] = (),
        device_prog: int | None = None,
    ) -> None:
        super().__init__(path, created)
        self.root = root
        self.dir = os.path.join(root, path.lstrip("/")).rstrip("/") or root
        # Id of the device program the last set() attached (informational: a
        # later set() finds the programs to replace by querying the cgroup).
        self.device_prog: int | None = device_prog

    def create(self, resources: dict[str, Any] | None = None) -> None:
        if self.dir == self.root:
            raise CgroupError(f"cgroup: refusing to use the root cgroup {self.root}")
        self.created.extend(d for d in make_path(self.root, self.dir) if d not in self.created)
        res = dict(resources or {})
        # As on v1 (and in runc): every container gets the default-deny device
        # policy plus the standard allow list, even when the config has no rules.
        if self.skip_devices:
            res.pop("devices", None)
        else:
            res.setdefault("devices", [])
        self.set(res)

    def apply(self, pid: int) -> None:
        _write(self.dir, "cgroup.procs", pid)

    def leaves(self) -> list[str]:
        return [self.dir]

    def frozen_by_anyone(self) -> bool:
        """cgroup.events says frozen also when an ancestor's cgroup.freeze is the cause."""
        return parse_flat_keyed(read_optional(os.path.join(self.dir, "cgroup.events"))).get(
            "frozen") == 1 or self.frozen()

    def clone_dir(self) -> str | None:
        return self.dir

    def set(self, resources: dict[str, Any]) -> None:
        self.ignored = []
        res = dict(resources)
        devices = res.pop("devices", None) if "devices" in res else False
        set_resources(self.dir, res, self.ignored)
        if devices is not False:
            self.device_prog = set_devices(self.dir, devices or [], self.ignored)

    def pids(self) -> list[int]:
        out: list[int] = []
        for d in walk_dirs(self.dir):
            out.extend(read_procs(d))
        return out

    def freeze(self) -> None:
        freeze_dir(self.dir, True)

    def thaw(self) -> None:
        freeze_dir(self.dir, False)

    def frozen(self) -> bool:
        from pyoci.linux.cgroupfiles import frozen  # the one reading `state` uses too

        return frozen(self.to_state())

    def has_freezer(self) -> bool:
        return _exists(self.dir, "cgroup.freeze")

    def kill_all(self, sig: int) -> None:
        """cgroup.kill (Linux 5.14+) SIGKILLs the whole subtree atomically."""
        import signal

        if sig == signal.SIGKILL and _exists(self.dir, "cgroup.kill"):
            _write(self.dir, "cgroup.kill", "1")
            # cgroup.kill reaches frozen tasks too, but leaves the cgroup frozen:
            # thaw it, as the freezer path below does, or it stays "paused".
            if self.frozen():
                self.thaw()
            return
        super().kill_all(sig)

    def stats(self) -> dict[str, Any]:
        return stats_for(self.dir)

    def oom_watch(self) -> OomWatch | None:
        if not _exists(self.dir, "memory.events"):
            return None
        from pyoci.cgroups.oom import V2OomWatch

        return V2OomWatch(self.dir)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def to_state(self) -> dict[str, Any]:
        state = self._base_state()
        state["root"] = self.root
        state["paths"] = {"": self.dir}
        if self.device_prog is not None:
            state["device_prog"] = self.device_prog
        return state

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> V2Manager:
        return cls(
            d["path"], d.get("root", CGROUP_ROOT), d.get("created", ()), d.get("device_prog")
        )

    def read(self, name: str) -> str:
        """A control file of the container cgroup (tests, ``update`` checks)."""
        return read_file(os.path.join(self.dir, name))
