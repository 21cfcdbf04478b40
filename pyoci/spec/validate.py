"""What the schema cannot say about a config.json.

The schema checks shapes and enumerations; this module checks the rules that
span several fields (a hostname needs a uts namespace), that need the host (a
namespace path must be a namespace of that type), or that the kernel would
reject later with a far less helpful EINVAL from deep inside ``create``.
Failing here, before anything is created, means nothing has to be torn down
and the message can name the JSON path that is wrong.

Choices where the spec leaves room, and why:

* A relative mount destination is accepted with a warning: runtime-spec 1.3
  says it SHOULD be absolute but MAY be relative (deprecated, taken as relative
  to ``/``), and old tools still write them.
* ``rootfsPropagation`` also accepts runc's recursive forms (``rslave``...),
  since moby writes them.
* A sysctl that needs a namespace is accepted when that namespace is listed,
  whether new or joined by ``path``: either way it is not the host's. As in
  runc, ``kernel.hostname`` is refused (the ``hostname`` field owns it);
  ``kernel.domainname`` only when the ``domainname`` field is set too.
* Unknown or kernel-unsupported capabilities are warnings, as the spec asks.
* Host checks (namespace paths, the kernel's last capability) can be turned
  off with ``host=False`` for offline linting of a bundle.
"""

from __future__ import annotations

import errno
import os

from pyoci import SPEC_VERSION
from pyoci.errors import SpecError
from pyoci.linux import capabilities as _capabilities
from pyoci.linux import namespaces as _namespaces
from pyoci.linux import rlimits as _rlimits
from pyoci.spec import schema
from pyoci.spec.schema import format_path

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CAPABILITIES",
    "CLONE_FLAGS",
    "RLIMITS",
    "validate",
    "validate_process",
]

# One source of truth for each table: the modules that apply them.
CAPABILITIES: tuple[str, ...] = tuple(_capabilities.NAMES)
"""Capability names in kernel bit order: the index is the capability number."""

RLIMITS: frozenset[str] = frozenset(_rlimits.RESOURCES)

CLONE_FLAGS: dict[str, int] = dict(_namespaces.FLAGS)
_NS_BY_FLAG = {v: k for k, v in CLONE_FLAGS.items()}

_SUPPORTED_MAJOR = 1
_SUPPORTED_MINOR = int(SPEC_VERSION.split(".")[1])
# No `re` here: it (with `enum`) costs milliseconds on every create.


def _hugepage_size_ok(size: str) -> bool:
    """``<n>KB``, ``<n>MB`` or ``<n>GB`` with no leading zero, as the kernel names them."""
    num, unit = size[:-2], size[-2:]
    return unit in ("KB", "MB", "GB") and num.isascii() and num.isdigit() and num[0] != "0"


_MAX_ID = 1 << 32
_MAX_MAPPINGS = 340  # the kernel's limit on lines in uid_map/gid_map since 4.15
_TIME_CLOCKS = ("monotonic", "boottime")
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_RT_POLICIES = ("SCHED_FIFO", "SCHED_RR")
_MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED_MANY")


def validate(config: dict[str, Any], raw: bytes | None = None, cache_dir: str | None = None,
             *, host: bool = True) -> list[str]:
    """Check ``config`` fully; return warnings, raise SpecError on the first error.

    ``raw`` (the bytes of config.json) enables the schema cache in
    ``cache_dir``; the semantic checks below always run, since some of them
    depend on the host and not on the file alone.
    """
    if raw is not None:
        schema.check_cached(config, raw, cache_dir)
    else:
        schema.check(config)
    c = _Checker("config.json", host)
    c.config(config)
    return c.warnings


def validate_process(process: dict[str, Any], raw: bytes | None = None,
                     cache_dir: str | None = None, *, host: bool = True) -> list[str]:
    """Check the process object given to ``exec --process``; same contract as validate."""
    if raw is not None:
        schema.check_cached(process, raw, cache_dir, "process")
    else:
        schema.check(process, "process")
    c = _Checker("process.json", host)
    c.no_nul(process, ())
    c.process(process, ())
    return c.warnings


def _q(value: str) -> str:
    """Quote a value the way the schema errors do, so all messages look alike."""
    from pyoci import jsonio

    return jsonio.dumps(value)


def _is_abs(p: str) -> bool:
    return p.startswith("/")


def _cpulist_ok(text: str) -> bool:
    """Whether ``text`` is a kernel cpu/node list such as ``0-3,7`` (empty is fine)."""
    if not text.strip():
        return True
    for part in text.split(","):
        lo, dash, hi = (p.strip() for p in part.partition("-"))
        if not (lo.isascii() and lo.isdigit()):
            return False
        if dash and not (hi.isascii() and hi.isdigit() and int(hi) >= int(lo)):
            return False
    return True


def _ifname_ok(name: str, template: bool) -> bool:
    """Linux dev_valid_name(): at most 15 bytes, no '/', ':' or whitespace, not . or .."""
    if template:
        name = name.replace("%d", "0")
    return (0 < len(name.encode()) <= 15 and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


class _Checker:
    """Walks one document; keeps the label, host switch and collected warnings."""

    def __init__(self, label: str, host: bool) -> None:
        self.label = label
        self.host = host
        self.warnings: list[str] = []
        self.ns: dict[str, dict[str, Any]] = {}
        self._cap_last: int | None = None
        self.domainname_set = False

    # -- reporting ---------------------------------------------------------
    def fail(self, path: tuple[str | int, ...], rule: str) -> None:
        raise SpecError(f"{self.label}: {format_path(path)}: {rule}")

    def warn(self, path: tuple[str | int, ...], rule: str) -> None:
        self.warnings.append(f"{self.label}: {format_path(path)}: {rule}")

    def need_abs(self, path: tuple[str | int, ...], value: str) -> None:
        if not _is_abs(value):
            self.fail(path, f"must be an absolute path, got {_q(value)}")

    # -- whole config ------------------------------------------------------
    def no_nul(self, value: Any, path: tuple[str | int, ...]) -> None:
        """No string may carry a NUL byte: every one of them ends up in a C string."""
        if isinstance(value, str):
            if "\0" in value:
                self.fail(path, "contains a NUL byte")
        elif isinstance(value, dict):
            for k, v in value.items():
                if "\0" in k:
                    self.fail(path, "contains a key with a NUL byte")
                self.no_nul(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.no_nul(v, (*path, i))

    def config(self, cfg: dict[str, Any]) -> None:
        self.no_nul(cfg, ())
        self.version(cfg["ociVersion"])
        linux = cfg.get("linux") or {}
        self.namespaces(linux.get("namespaces") or [])
        if "process" in cfg:
            self.process(cfg["process"], ("process",))
        self.domainname_set = cfg.get("domainname") is not None
        for key in ("hostname", "domainname"):
            if cfg.get(key) and "uts" not in self.ns:
                self.fail((key,), f"setting the {key} needs a uts namespace")
        for i, m in enumerate(cfg.get("mounts") or []):
            self.mount(m, ("mounts", i))
        self.hooks(cfg.get("hooks") or {})
        self.linux(linux)

    def version(self, v: str) -> None:
        # the schema's semver pattern guarantees "<major>.<minor>.<patch>..."
        major, minor = (int(x) for x in v.split(".", 2)[:2])
        if major != _SUPPORTED_MAJOR:
            self.fail(("ociVersion",), f"unsupported major version {_q(v)}, want 1.x")
        if minor > _SUPPORTED_MINOR:
            self.fail(("ociVersion",), f"{_q(v)} is newer than the supported {SPEC_VERSION}")

    # -- namespaces and id mappings ---------------------------------------
    def namespaces(self, nss: list[dict[str, Any]]) -> None:
        for i, ns in enumerate(nss):
            t = ns["type"]
            if t in self.ns:
                self.fail(("linux", "namespaces", i, "type"), f"duplicate namespace {t}")
            self.ns[t] = ns
            if "path" in ns:
                self.ns_path(ns["path"], t, ("linux", "namespaces", i, "path"))

    def ns_path(self, p: str, t: str, path: tuple[str | int, ...]) -> None:
        self.need_abs(path, p)
        if not self.host:
            return
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            # runc's wording ("no such file or directory", "permission denied")
            # is what callers match on, hence strerror rather than our own text.
            raise SpecError(f"{self.label}: {format_path(path)}: "
                            f"{(e.strerror or 'cannot open').lower()}: {p}") from None
        try:
            from pyoci._native import ffi, lib

            got = lib.pyoci_ns_type(fd)
            err = ffi.errno
        finally:
            os.close(fd)
        if got < 0:
            bad = err in (errno.ENOTTY, errno.EINVAL)
            detail = "not a namespace file" if bad else os.strerror(err).lower()
            self.fail(path, f"{detail}: {p}")
        kind = _NS_BY_FLAG.get(got, hex(got))
        if kind != t:
            self.fail(path, f"{p} is a {kind} namespace, not {t}")

    def new_ns(self, t: str) -> bool:
        return t in self.ns and "path" not in self.ns[t]

    def mappings(self, maps: list[dict[str, int]], path: tuple[str | int, ...]) -> None:
        if len(maps) > _MAX_MAPPINGS:
            self.fail(path, f"{len(maps)} mappings, the kernel allows at most {_MAX_MAPPINGS}")
        for i, m in enumerate(maps):
            if m["size"] < 1:
                self.fail((*path, i, "size"), "must be at least 1")
            for key in ("containerID", "hostID"):
                if m[key] + m["size"] > _MAX_ID:
                    self.fail((*path, i), f"{key} {m[key]} + size {m['size']} exceeds 2^32")
            for j in range(i):
                o = maps[j]
                for key in ("containerID", "hostID"):
                    if m[key] < o[key] + o["size"] and o[key] < m[key] + m["size"]:
                        self.fail((*path, i), f"{key} range overlaps {format_path((*path, j))}")

    def user_ns(self, linux: dict[str, Any]) -> None:
        has = {k: k in linux for k in ("uidMappings", "gidMappings")}
        if any(has.values()) and "user" not in self.ns:
            key = "uidMappings" if has["uidMappings"] else "gidMappings"
            self.fail(("linux", key), "needs a user namespace in linux.namespaces")
        if self.new_ns("user"):
            for key, present in has.items():
                if not present or not linux[key]:
                    self.fail(("linux", key), "required to create a new user namespace")
        for key, present in has.items():
            if present:
                self.mappings(linux[key], ("linux", key))

    # -- process -----------------------------------------------------------
    def process(self, proc: dict[str, Any], base: tuple[str | int, ...]) -> None:
        self.need_abs((*base, "cwd"), proc["cwd"])
        seen: dict[str, int] = {}
        for i, rl in enumerate(proc.get("rlimits") or []):
            t = rl["type"]
            where = (*base, "rlimits", i)
            if t not in RLIMITS:
                self.fail((*where, "type"), f"unknown rlimit {t}")
            if t in seen:
                self.fail((*where, "type"), f"duplicate {t}")
            seen[t] = i
            if rl["soft"] > rl["hard"]:
                self.fail(where, f"soft limit {rl['soft']} exceeds hard limit {rl['hard']}")
        seen: set[str] = set()  # one warning per name, however many sets list it
        sets = proc.get("capabilities") or {}
        for kind in _capabilities.SETS:  # the order capabilities.masks warns in
            caps = sets.get(kind)
            if isinstance(caps, list):
                for i, cap in enumerate(caps):
                    if cap not in seen:
                        seen.add(cap)
                        self.capability(cap, (*base, "capabilities", kind, i))
        if "scheduler" in proc:
            self.scheduler(proc["scheduler"], (*base, "scheduler"))
        for key in ("initial", "final"):
            text = (proc.get("execCPUAffinity") or {}).get(key)
            if text is not None and not _cpulist_ok(text):
                self.fail((*base, "execCPUAffinity", key), f"invalid cpu list {_q(text)}")

    def capability(self, cap: str, path: tuple[str | int, ...]) -> None:
        if cap not in CAPABILITIES:
            self.warn(path, f"unknown capability {cap}, ignored")
            return
        last = self.cap_last()
        if last is not None and CAPABILITIES.index(cap) > last:
            self.warn(path, f"capability {cap} is not supported by this kernel, ignored")

    def cap_last(self) -> int | None:
        if not self.host:
            return None
        if self._cap_last is None:
            try:
                with open("/proc/sys/kernel/cap_last_cap") as f:
                    self._cap_last = int(f.read())
            except (OSError, ValueError):
                self._cap_last = len(CAPABILITIES) - 1
        return self._cap_last

    def scheduler(self, s: dict[str, Any], path: tuple[str | int, ...]) -> None:
        policy = s["policy"]
        nice = s.get("nice", 0)
        if not -20 <= nice <= 19:
            self.fail((*path, "nice"), f"{nice} is outside -20..19")
        prio = s.get("priority", 0)
        if policy in _RT_POLICIES:
            if not 1 <= prio <= 99:
                self.fail((*path, "priority"), f"{policy} needs a priority in 1..99, got {prio}")
        elif prio:
            self.fail((*path, "priority"), f"only SCHED_FIFO and SCHED_RR take a priority, "
                                           f"not {policy}")
        dl = {k: s.get(k, 0) for k in ("runtime", "deadline", "period")}
        if policy == "SCHED_DEADLINE":
            if not dl["runtime"] or not dl["runtime"] <= dl["deadline"] <= (
                    dl["period"] or dl["deadline"]):
                self.fail(path, "SCHED_DEADLINE needs 0 < runtime <= deadline <= period")
        else:
            for k, v in dl.items():
                if v:
                    self.fail((*path, k), f"only SCHED_DEADLINE takes a {k}, not {policy}")

    # -- mounts and hooks ----------------------------------------------------
    def mount(self, m: dict[str, Any], path: tuple[str | int, ...]) -> None:
        dest = m["destination"]
        if not _is_abs(dest):
            self.warn((*path, "destination"),
                      f"relative path {_q(dest)} is deprecated, taken as \"/{dest}\"")
        has_uid, has_gid = "uidMappings" in m, "gidMappings" in m
        if has_uid != has_gid:
            missing = "gidMappings" if has_uid else "uidMappings"
            self.fail((*path, missing), "required with "
                      f"{'uidMappings' if has_uid else 'gidMappings'}")
        for key in ("uidMappings", "gidMappings"):
            if key in m:
                self.mappings(m[key], (*path, key))
        opts = m.get("options") or []
        idmap = [o for o in opts if o in ("idmap", "ridmap")]
        if idmap and not has_uid and "user" not in self.ns:
            self.fail((*path, "options"),
                      f"{idmap[0]} needs uidMappings and gidMappings or a user namespace")

    def hooks(self, hooks: dict[str, Any]) -> None:
        for stage, entries in hooks.items():
            if isinstance(entries, list):
                for i, h in enumerate(entries):
                    if isinstance(h, dict) and isinstance(h.get("path"), str):
                        self.need_abs(("hooks", stage, i, "path"), h["path"])

    # -- linux -------------------------------------------------------------
    def linux(self, linux: dict[str, Any]) -> None:
        self.user_ns(linux)
        if "timeOffsets" in linux:
            if not self.new_ns("time"):
                self.fail(("linux", "timeOffsets"), "needs a new time namespace")
            for clock in linux["timeOffsets"]:
                if clock not in _TIME_CLOCKS:
                    self.fail(("linux", "timeOffsets", clock),
                              "unknown clock, want monotonic or boottime")
        self.devices(linux.get("devices") or [])
        for key in ("maskedPaths", "readonlyPaths"):
            for i, p in enumerate(linux.get(key) or []):
                self.need_abs(("linux", key, i), p)
        for key, value in (linux.get("sysctl") or {}).items():
            self.sysctl(key, value)
        if "resources" in linux:
            self.resources(linux["resources"])
        if "seccomp" in linux:
            self.seccomp(linux["seccomp"])
        if linux.get("netDevices"):
            self.net_devices(linux["netDevices"])
        for i, flag in enumerate((linux.get("personality") or {}).get("flags") or []):
            self.fail(("linux", "personality", "flags", i),
                      f"unsupported personality flag {_q(flag)}")
        clos = (linux.get("intelRdt") or {}).get("closID")
        if clos is not None and (clos in ("", ".", "..") or "/" in clos or "\n" in clos):
            self.fail(("linux", "intelRdt", "closID"), f"invalid directory name {_q(clos)}")
        if "memoryPolicy" in linux:
            self.memory_policy(linux["memoryPolicy"])

    def devices(self, devs: list[dict[str, Any]]) -> None:
        seen: dict[str, int] = {}
        for i, d in enumerate(devs):
            self.need_abs(("linux", "devices", i, "path"), d["path"])
            p = os.path.normpath(d["path"])
            if p in seen and devs[seen[p]] != d:
                self.fail(("linux", "devices", i, "path"),
                          f"{d['path']} conflicts with linux.devices[{seen[p]}]")
            seen.setdefault(p, i)

    def sysctl(self, key: str, value: str) -> None:
        """Allow only sysctls the kernel namespaces, and only with that namespace.

        Anything else would change the host for every process on it.
        """
        name = key.replace("/", ".")
        if name in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
            # runc refuses kernel.hostname outright: the hostname field owns it, and
            # the two would silently race. kernel.domainname is how Docker sets a
            # domainname, so it is refused only when the domainname field is set too.
            field = name.split(".")[1]
            if need in self.ns and (field == "hostname" or self.domainname_set):
                self.fail(("linux", "sysctl", key),
                          f'not allowed as it conflicts with the OCI "{field}" field')
        elif (name.startswith(("kernel.shm", "kernel.msg", "fs.mqueue."))
              or name == "kernel.sem"):
            need = "ipc"
        elif name.startswith("net."):
            need = "network"
        else:
            self.fail(("linux", "sysctl", key),
                      "sysctl is not namespaced and cannot be set in a container")
            return
        if need not in self.ns:
            article = "an" if need == "ipc" else "a"
            self.fail(("linux", "sysctl", key), f"needs {article} {need} namespace")

    def resources(self, r: dict[str, Any]) -> None:
        base = ("linux", "resources")
        mem = r.get("memory") or {}
        limit, swap = mem.get("limit", 0), mem.get("swap", 0)
        if limit > 0 and swap > 0 and swap < limit:
            self.fail((*base, "memory", "swap"),
                      f"{swap} is below the memory limit {limit} (swap counts memory + swap)")
        cpu = r.get("cpu") or {}
        for key in ("cpus", "mems"):
            if key in cpu and not _cpulist_ok(cpu[key]):
                self.fail((*base, "cpu", key), f"invalid cpu list {_q(cpu[key])}")
        for i, hp in enumerate(r.get("hugepageLimits") or []):
            if not _hugepage_size_ok(hp["pageSize"]):
                self.fail((*base, "hugepageLimits", i, "pageSize"),
                          f"invalid page size {_q(hp['pageSize'])}, want e.g. 2MB or 1GB")
        for key in r.get("unified") or {}:
            if "/" in key or "." not in key.strip(".") or key.startswith("."):
                self.fail((*base, "unified", key), "invalid cgroup file name")

    def seccomp(self, sc: dict[str, Any]) -> None:
        base = ("linux", "seccomp")
        default = sc["defaultAction"]
        if default == "SCMP_ACT_NOTIFY":
            self.fail((*base, "defaultAction"), "SCMP_ACT_NOTIFY cannot be the default action")
        if "defaultErrnoRet" in sc and default not in _ERRNO_ACTIONS:
            self.fail((*base, "defaultErrnoRet"), f"not allowed with {default}")
        if "listenerMetadata" in sc and "listenerPath" not in sc:
            self.fail((*base, "listenerMetadata"), "not allowed without listenerPath")
        for i, rule in enumerate(sc.get("syscalls") or []):
            where = (*base, "syscalls", i)
            action = rule["action"]
            if "errnoRet" in rule and action not in _ERRNO_ACTIONS:
                self.fail((*where, "errnoRet"), f"not allowed with {action}")
            if action == "SCMP_ACT_NOTIFY" and "listenerPath" not in sc:
                self.fail((*where, "action"), "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
            for j, name in enumerate(rule["names"]):
                if not name:
                    self.fail((*where, "names", j), "must not be empty")
            for j, arg in enumerate(rule.get("args") or []):
                if arg["index"] > 5:
                    self.fail((*where, "args", j, "index"),
                              f"{arg['index']} is out of range, a syscall has arguments 0-5")

    def net_devices(self, devs: dict[str, Any]) -> None:
        if "network" not in self.ns:
            self.fail(("linux", "netDevices"), "needs a network namespace")
        for host_name, spec in devs.items():
            where = ("linux", "netDevices", host_name)
            if not _ifname_ok(host_name, template=False):
                self.fail(where, f"invalid interface name {_q(host_name)}")
            name = spec.get("name")
            if name is not None and not _ifname_ok(name, template=True):
                self.fail((*where, "name"), f"invalid interface name {_q(name)}")

    def memory_policy(self, mp: dict[str, Any]) -> None:
        base = ("linux", "memoryPolicy")
        mode, nodes = mp["mode"], (mp.get("nodes") or "").strip()
        if nodes and not _cpulist_ok(nodes):
            self.fail((*base, "nodes"), f"invalid node list {_q(nodes)}")
        if mode in _MPOL_NO_NODES and nodes:
            self.fail((*base, "nodes"), f"{mode} takes no nodes")
        if mode in _MPOL_NEED_NODES and not nodes:
            self.fail((*base, "nodes"), f"{mode} needs at least one node")
