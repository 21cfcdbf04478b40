"""The systemd cgroup driver (``--systemd-cgroup``), as runc has it.

``cgroupsPath`` reads ``slice:prefix:name``; the container gets a transient
scope ``<prefix>-<name>.scope`` in ``<slice>``, made by systemd through its
D-Bus API (``StartTransientUnit`` with the init's pid, then waiting for the
job).  systemd owns the resources it has properties for (CPU, cpuset, memory,
pids, IO weight, device policy), so those go to the unit as properties; the
scope is ``Delegate=yes``, so everything is then also written to the cgroup
files by the filesystem manager of the host's layout (v2, v1 or hybrid), which
also covers what systemd has no property for.

This module is imported by ``from_state`` for such containers; the D-Bus
client (:mod:`pyoci.linux.dbus`) only when a unit is started, changed or
stopped, so ``state``/``kill`` of a systemd container stay lean.
"""

from __future__ import annotations

from pyoci.cgroups.base import Manager
from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

    from pyoci.cgroups.oom import OomWatch
    from pyoci.linux.dbus import Connection

DEFAULT_SLICE = "system.slice"
# Rootless, the unit goes to the user's own systemd, in its user.slice (runc's default).
DEFAULT_USER_SLICE = "user.slice"
# runc's default for an empty cgroupsPath is "system.slice:runc:<id>"; ours names pyoci.
DEFAULT_PREFIX = "pyoci"
ANNOTATION_PREFIX = "org.systemd.property."
JOB_TIMEOUT = 90.0  # a slow (emulated) host can take seconds per job

_DEST = "org.freedesktop.systemd1"
_PATH = "/org/freedesktop/systemd1"
_IFACE = "org.freedesktop.systemd1.Manager"
INFINITY = 2**64 - 1
_JOB_REMOVED_MATCH = (f"type='signal',sender='{_DEST}',path='{_PATH}',interface='{_IFACE}',"
                      "member='JobRemoved'")


def parse_path(cgroups_path: str | None, container_id: str,
               user: bool = False) -> tuple[str, str]:
    """(slice, unit name) for a systemd ``cgroupsPath`` (runc's rules and wording);
    ``user``: the user's own systemd (rootless), whose default slice differs."""
    default_slice = DEFAULT_USER_SLICE if user else DEFAULT_SLICE
    if not cgroups_path:
        return default_slice, f"{DEFAULT_PREFIX}-{container_id}.scope"
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError(
            'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
            f"got {cgroups_path!r} instead")
    slice_, prefix, name = parts
    if not name:
        raise CgroupError(f"cgroup: cgroupsPath {cgroups_path!r}: empty unit name")
    if name.endswith(".slice"):
        unit = name
    elif prefix:
        unit = f"{prefix}-{name}.scope"
    else:
        unit = f"{name}.scope"
    return slice_ or default_slice, unit


def expand_slice(slice_: str) -> str:
    """A slice's cgroup path: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise CgroupError(f"cgroup: invalid systemd slice name {slice_!r}")
    if slice_ == "-.slice":
        return "/"
    name = slice_[: -len(".slice")]
    path = ""
    prefix = ""
    for part in name.split("-"):
        if not part:
            raise CgroupError(f"cgroup: invalid systemd slice name {slice_!r}")
        path += f"/{prefix}{part}.slice"
        prefix += f"{part}-"
    return path


def unit_cgroup(slice_: str, unit: str) -> str:
    """The unit's cgroup path relative to the hierarchy roots."""
    if unit.endswith(".slice"):
        return expand_slice(unit)
    return expand_slice(slice_).rstrip("/") + "/" + unit


# -- resources -> unit properties ----------------------------------------------


def _limit(value: int) -> int:
    return INFINITY if value < 0 else value


def cpuset_mask(text: str) -> bytes:
    """A cpuset list ("0-2,4") as systemd's byte-array bitmask (AllowedCPUs)."""
    bits: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise CgroupError(f"cgroup: invalid cpuset {text!r}") from None
        bits.update(range(first, last + 1))
    if not bits:
        return b""
    out = bytearray(max(bits) // 8 + 1)
    for b in bits:
        out[b // 8] |= 1 << (b % 8)
    return bytes(out)


def _quota_props(quota: int | None, period: int | None) -> list[tuple[str, str, Any]]:
    """CPUQuotaPerSecUSec (rounded up to 10ms, as systemd stores it) and the period."""
    props: list[tuple[str, str, Any]] = []
    if not quota and not period:
        return props
    if period:
        props.append(("CPUQuotaPeriodUSec", "t", period))
    per_sec = INFINITY
    if quota and quota > 0:
        per_sec = quota * 1_000_000 // (period or 100_000)
        if per_sec % 10_000:
            per_sec = (per_sec // 10_000 + 1) * 10_000
    props.append(("CPUQuotaPerSecUSec", "t", per_sec))
    return props


def _proc_devices() -> dict[tuple[str, int], str]:
    out: dict[tuple[str, int], str] = {}
    kind = ""
    try:
        with open("/proc/devices", "rb") as fh:
            text = fh.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("Character"):
            kind = "char"
        elif line.startswith("Block"):
            kind = "block"
        elif line.strip():
            major, _, name = line.strip().partition(" ")
            out[(kind, int(major))] = name
    return out


def device_props(rules: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """DevicePolicy/DeviceAllow for the rules plus runc's default allow list.

    systemd has allow lists only: a deny-all rule makes the policy ``strict``
    (nothing but what follows), an allow-all one ``auto`` with no list; a
    narrower deny can't be expressed and is left to the eBPF program the
    filesystem manager attaches anyway (as in runc).
    """
    from pyoci.cgroups.convert import DEFAULT_DEVICE_RULES

    policy, allow = "strict", []  # runc starts from deny-all
    names: dict[tuple[str, int], str] | None = None
    for rule in [*rules, *DEFAULT_DEVICE_RULES]:
        kind = rule.get("type") or "a"
        major, minor = rule.get("major"), rule.get("minor")
        access = rule.get("access") or "rwm"
        wild_major = major is None or major < 0
        wild_minor = minor is None or minor < 0
        if not rule.get("allow"):
            if kind == "a" and wild_major and wild_minor:
                policy, allow = "strict", []
            continue
        if kind == "a" and wild_major and wild_minor and set(access) >= set("rwm"):
            policy, allow = "auto", []
            continue
        kinds = ("char", "block") if kind == "a" else ("char" if kind == "c" else "block",)
        for k in kinds:
            if wild_major:
                allow.append((f"{k}-*", access))
            elif wild_minor:
                if names is None:
                    names = _proc_devices()
                if (k, major) in names:
                    allow.append((f"{k}-{names[(k, major)]}", access))
            else:
                allow.append((f"/dev/{k}/{major}:{minor}", access))
    if policy == "auto":
        return [("DevicePolicy", "s", "auto"), ("DeviceAllow", "a(ss)", [])]
    return [("DevicePolicy", "s", "strict"), ("DeviceAllow", "a(ss)", allow)]


def resource_props(res: dict[str, Any], v2: bool) -> list[tuple[str, str, Any]]:
    """The unit properties for ``linux.resources`` (runc's mapping)."""
    from pyoci.cgroups.convert import blkio_weight_to_io_weight, shares_to_weight, swap_to_v2

    props: list[tuple[str, str, Any]] = []
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        if v2:
            props.append(("CPUWeight", "t", shares_to_weight(cpu["shares"])))
        else:
            props.append(("CPUShares", "t", cpu["shares"]))
    props += _quota_props(cpu.get("quota"), cpu.get("period"))
    if v2 and cpu.get("cpus"):
        props.append(("AllowedCPUs", "ay", cpuset_mask(cpu["cpus"])))
    if v2 and cpu.get("mems"):
        props.append(("AllowedMemoryNodes", "ay", cpuset_mask(cpu["mems"])))
    mem = res.get("memory") or {}
    if mem.get("limit"):
        props.append(("MemoryMax" if v2 else "MemoryLimit", "t", _limit(mem["limit"])))
    if v2 and mem.get("reservation"):
        props.append(("MemoryLow", "t", _limit(mem["reservation"])))
    if v2 and mem.get("swap"):
        swap = swap_to_v2(mem.get("swap"), mem.get("limit"))
        if swap is not None:
            props.append(("MemorySwapMax", "t", _limit(swap)))
    pids = res.get("pids") or {}
    if pids.get("limit"):
        props.append(("TasksMax", "t", _limit(pids["limit"])))
    bio = res.get("blockIO") or {}
    if bio.get("weight"):
        if v2:
            props.append(("IOWeight", "t", blkio_weight_to_io_weight(bio["weight"])))
        else:
            props.append(("BlockIOWeight", "t", bio["weight"]))
    if v2:
        props += _unified_props(res.get("unified") or {})
    if "devices" in res:
        props += device_props(res.get("devices") or [])
    return props


def _unified_props(unified: dict[str, str]) -> list[tuple[str, str, Any]]:
    """The ``unified`` keys systemd has properties for (runc's table)."""
    props: list[tuple[str, str, Any]] = []

    def num(key: str, value: str) -> int:
        value = value.strip()
        if value == "max":
            return INFINITY
        try:
            return int(value)
        except ValueError:
            raise CgroupError(f"cgroup: unified.{key}: invalid value {value!r}") from None

    for key, value in unified.items():
        if key == "cpu.weight":
            props.append(("CPUWeight", "t", num(key, value)))
        elif key == "cpu.max":
            quota, _, period = value.strip().partition(" ")
            q = -1 if quota == "max" else num(key, quota)
            props += _quota_props(q if q > 0 else -1, num(key, period) if period else None)
        elif key == "cpuset.cpus":
            props.append(("AllowedCPUs", "ay", cpuset_mask(value)))
        elif key == "cpuset.mems":
            props.append(("AllowedMemoryNodes", "ay", cpuset_mask(value)))
        elif key in ("memory.high", "memory.low", "memory.min", "memory.max"):
            props.append(("Memory" + key.split(".")[1].capitalize(), "t", num(key, value)))
        elif key == "memory.swap.max":
            props.append(("MemorySwapMax", "t", num(key, value)))
        elif key == "pids.max":
            props.append(("TasksMax", "t", num(key, value)))
    return props


_TYPED = {"byte": "y", "boolean": "b", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
          "int64": "x", "uint64": "t", "double": "d", "string": "s", "objectpath": "o"}


def annotation_props(annotations: dict[str, str]) -> list[tuple[str, str, Any]]:
    """``org.systemd.property.NAME`` annotations, values in GVariant text form (as runc).

    ``uint64 5``, ``true``, ``'text'`` and bare integers (int32) are understood;
    a ``...Sec`` name takes seconds and becomes ``...USec`` (runc does the same).
    """
    props: list[tuple[str, str, Any]] = []
    for key, text in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX):]
        if not name or name in ("PIDs", "Slice", "Delegate", "DefaultDependencies"):
            raise CgroupError(f"annotations: {key}: property can't be set this way")
        sig, value = _gvariant(key, text.strip())
        if name.endswith("Sec") and not name.endswith("USec"):
            name = name[:-3] + "USec"
            value = int(float(value) * 1_000_000)
            sig = "t"
        props.append((name, sig, value))
    return props


def _gvariant(key: str, text: str) -> tuple[str, Any]:
    try:
        if text in ("true", "false"):
            return "b", text == "true"
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return "s", text[1:-1]
        word, _, rest = text.partition(" ")
        if word in _TYPED:
            sig = _TYPED[word]
            rest = rest.strip()
            if sig == "s":
                return sig, rest.strip("'\"")
            if sig == "b":
                return sig, rest == "true"
            if sig == "d":
                return sig, float(rest)
            return sig, int(rest, 0)
        if word.startswith("@") and len(word) == 2:
            return word[1], int(rest, 0) if word[1] in "ynqiuxt" else rest
        if "." in text:
            return "d", float(text)
        return "i", int(text, 0)
    except ValueError:
        raise CgroupError(f"annotations: {key}: can't parse value {text!r}") from None


# -- the manager ----------------------------------------------------------------


def connect(user_bus: str | None = None) -> Connection:
    """systemd itself (as root), or rootless the user's own systemd on ``user_bus``."""
    from pyoci.linux.dbus import Connection

    return Connection(user_bus)


def user_manager_cgroup(user_bus: str) -> str:
    """The cgroup of the user's systemd (``.../user@UID.service``): its slices and units
    live below it, where the user may write (systemd delegates it to the user)."""
    with connect(user_bus) as bus:
        (value,) = bus.call(_DEST, _PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                            [_IFACE, "ControlGroup"])
    path = getattr(value, "value", value)
    if not isinstance(path, str) or not path.startswith("/"):
        raise CgroupError(f"systemd: the user manager reports no control group ({path!r})")
    return path.rstrip("/")


def _wait_job(bus: Connection, job: str, what: str) -> None:
    import time

    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        if time.monotonic() > deadline:
            raise CgroupError(f"systemd: timed out waiting for {what}")
        msg = bus.signal("JobRemoved")
        if len(msg.body) >= 4 and msg.body[1] == job:
            if msg.body[3] != "done":
                raise CgroupError(f"systemd: {what}: job {msg.body[3]}")
            return


class SystemdManager(Manager):
    """A transient systemd unit wrapping the host layout's filesystem manager."""

    def __init__(self, slice_: str, unit: str, inner: Manager,
                 properties: list[tuple[str, str, Any]] | None = None,
                 user_bus: str | None = None) -> None:
        super().__init__(inner.path, inner.created)
        self.slice = slice_
        self.unit = unit
        self.inner = inner
        self.mode = inner.mode  # type: ignore[misc]  # the files are the layout's
        self.extra = list(properties or [])
        self.resources: dict[str, Any] | None = None
        self._bus: Connection | None = None
        self.started = False
        # The user's own systemd (rootless), kept in the state so delete finds it with
        # any environment. No device rules then: a user manager can't enforce them,
        # and runc leaves them out rootless too.
        self.user_bus = user_bus

    def _conn(self) -> Connection:
        if self._bus is None:
            self._bus = connect(self.user_bus)
            if self._bus.is_bus:  # a bus daemon routes signals only to who asked for them
                self._bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "AddMatch", "s", [_JOB_REMOVED_MATCH])
            self._bus.call(_DEST, _PATH, _IFACE, "Subscribe")
        return self._bus

    def _close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    # create() only checks systemd is there; the unit starts in apply(), when the pid exists.
    def create(self, resources: dict[str, Any] | None = None) -> None:
        self.resources = dict(resources or {})
        if self.user_bus:
            self.resources.pop("devices", None)
        else:
            self.resources.setdefault("devices", [])
        from pyoci import trace  # create's path only: state/kill/delete stay lean

        trace.debug(f"systemd: connected to {self._conn().path}, subscribed")

    def clone_dir(self) -> str | None:
        return None  # the scope exists only once systemd has the init's pid

    def apply(self, pid: int) -> None:
        if self.started:
            self.inner.apply(pid)
            return
        from pyoci import trace
        from pyoci.linux.dbus import Variant

        res = self.resources or {}
        v2 = self.inner.mode == "v2"
        props: list[tuple[str, str, Any]] = [
            ("Description", "s", f"pyoci container {self.unit}"),
        ]
        if self.unit.endswith(".scope"):
            props += [("Slice", "s", self.slice), ("PIDs", "au", [pid]),
                      ("DefaultDependencies", "b", False)]
        else:
            props += [("Wants", "as", [self.slice])]
        props += [("Delegate", "b", True), ("MemoryAccounting", "b", True),
                  ("CPUAccounting", "b", True), ("TasksAccounting", "b", True),
                  ("IOAccounting" if v2 else "BlockIOAccounting", "b", True)]
        props += resource_props(res, v2)
        props += self.extra
        bus = self._conn()
        try:
            (job,) = bus.call(_DEST, _PATH, _IFACE, "StartTransientUnit", "ssa(sv)a(sa(sv))", [
                self.unit, "replace", [(n, Variant(s, v)) for n, s, v in props], []])
            trace.debug(f"systemd: start {self.unit}: job {job} queued")
            _wait_job(bus, job, f"start of {self.unit}")
            trace.debug(f"systemd: start {self.unit}: job done")
        except CgroupError as exc:
            raise CgroupError(f"systemd: start transient unit {self.unit}: {exc}") from None
        finally:
            self._close()
        self.started = True
        if not self.unit.endswith(".scope"):  # a slice holds no pid of its own
            self.inner.create(res)
            self.inner.apply(pid)
        else:
            self.inner.create(res)  # the files systemd has no property for; v1 extras
            self.inner.apply(pid)
        self.created = self.inner.created
        trace.debug(f"systemd: {self.unit}: files written, pid {pid} in place")

    def set(self, resources: dict[str, Any]) -> None:
        from pyoci.linux.dbus import Variant

        props = resource_props(resources, self.inner.mode == "v2")
        if props:
            bus = self._conn()
            try:
                bus.call(_DEST, _PATH, _IFACE, "SetUnitProperties", "sba(sv)",
                         [self.unit, True, [(n, Variant(s, v)) for n, s, v in props]])
            except CgroupError as exc:
                raise CgroupError(f"systemd: set properties of {self.unit}: {exc}") from None
            finally:
                self._close()
        self.inner.set(resources)
        self.ignored = self.inner.ignored

    def attach(self, pid: int) -> None:
        """Have systemd move ``pid`` into the unit (``exec`` where the kernel refuses the
        caller the move: rootless, from outside the user's delegated subtree)."""
        bus = self._conn()
        try:
            bus.call(_DEST, _PATH, _IFACE, "AttachProcessesToUnit", "ssau",
                     [self.unit, "", [pid]])
        except CgroupError as exc:
            raise CgroupError(f"systemd: attach pid {pid} to {self.unit}: {exc}") from None
        finally:
            self._close()

    def destroy(self) -> None:
        """Stop the unit (systemd removes its cgroup), then whatever else we made."""
        from pyoci.linux.dbus import DBusError

        bus = self._conn()
        try:
            try:
                (job,) = bus.call(_DEST, _PATH, _IFACE, "StopUnit", "ss", [self.unit, "replace"])
                _wait_job(bus, job, f"stop of {self.unit}")
            except DBusError as exc:
                if not exc.name.endswith(".NoSuchUnit"):
                    raise CgroupError(f"systemd: stop unit {self.unit}: {exc}") from None
            try:
                bus.call(_DEST, _PATH, _IFACE, "ResetFailedUnit", "s", [self.unit])
            except DBusError:
                pass
        finally:
            self._close()
        self.inner.destroy()
        self.created = []

    # -- everything else is the filesystem's ------------------------------------
    def leaves(self) -> list[str]:
        return self.inner.leaves()

    def pids(self) -> list[int]:
        return self.inner.pids()

    def freeze(self) -> None:
        self.inner.freeze()

    def thaw(self) -> None:
        self.inner.thaw()

    def frozen(self) -> bool:
        return self.inner.frozen()

    def frozen_by_anyone(self) -> bool:
        return self.inner.exists() and self.inner.frozen_by_anyone()

    def kill_all(self, sig: int) -> None:
        self.inner.kill_all(sig)

    def has_freezer(self) -> bool:
        return self.inner.has_freezer()

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def exists(self) -> bool:
        return self.inner.exists()

    def oom_watch(self) -> OomWatch | None:
        return self.inner.oom_watch()

    def to_state(self) -> dict[str, Any]:
        state = self.inner.to_state()
        state["systemd"] = {"slice": self.slice, "unit": self.unit}
        if self.user_bus:
            state["systemd"]["user_bus"] = self.user_bus
        return state

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SystemdManager:
        from pyoci.cgroups import from_state

        inner_state = dict(d)
        sd = inner_state.pop("systemd")
        mgr = cls(sd["slice"], sd["unit"], from_state(inner_state), user_bus=sd.get("user_bus"))
        mgr.started = True
        return mgr

    def __getattr__(self, name: str) -> Any:
        # read() and other backend extras (tests, update checks)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
