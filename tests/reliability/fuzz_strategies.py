"""Hypothesis strategies: runc's default config.json, mutated at random JSON paths.

Each example starts from ``pyoci.spec.default.default_config()`` (terminal off,
``/probe exit 0``) and applies one to four mutations: replace a value, delete a
key or list item, add an unknown key, duplicate a list item, or set one of the
fields a runtime most often gets wrong (mounts, namespaces, rlimits, cgroups,
ids, hooks) to a hostile value. ``raw_inputs`` adds what never parses: invalid
UTF-8, truncated JSON, deep nesting, non-finite numbers.

The values are hostile to a parser (``..``, NUL bytes, 2**64, NaN) but never
to the host: no hook or process path names a program that does anything, and
``root.path`` only escapes the bundle in the in-process (validation) fuzz.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

JsonPath = tuple[str | int, ...]

HOSTILE_STRINGS = [
    "", ".", "..", "../../../../../etc", "/..", "/../../etc/passwd", "/", "//", "///a//b/",
    "a\x00b", "\x00", "/tmp/\x00x", "x" * 5000, "/" + "d/" * 2000, "\u00e9\u4e2d\U0001f600",
    "\n", " ", "\t\r", "-1", "0x10", "1e9", "true", "null", "rootfs/../../..",
    "/proc/self/root", "/proc/1/ns/net", "/dev/null", "/nonexistent/x", "unknown-enum",
    "CAP_EVERYTHING", "RLIMIT_BOGUS", "SCMP_ACT_BOGUS", "MPOL_BOGUS", "bind", "rbind,ro",
    "%s%n", "${PATH}", "\\", "'", '"', "a:b:c", "::", "=", "PATH", "K=V=W",
]
HOSTILE_NUMBERS: list[Any] = [
    0, -1, 1, 2, 7, 255, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
    2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**100, -(2**31), -(2**63), -(2**64), 10**30,
    0.5, -0.0, 1e308, float("inf"), float("-inf"), float("nan"),
]

scalars = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_NUMBERS),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.integers(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["type", "path", "source", "destination", "options",
                                         "limit", "x", ""]), inner, max_size=3),
    ),
    max_leaves=8,
)
hostile_path = st.sampled_from([s for s in HOSTILE_STRINGS if s.startswith(("/", ".", "r"))]
                               + ["/mnt", "/proc", "/sys/kernel", "/dev/x", "rel/dir"])
namespace_types = st.sampled_from(["pid", "network", "ipc", "uts", "mount", "cgroup", "user",
                                   "time", "net", "bogus", "", "PID"])

# Fields worth setting even where the default config has none; each with the
# kind of value that goes wrong there.
KNOWN_FIELDS: dict[JsonPath, st.SearchStrategy[Any]] = {
    ("linux", "cgroupsPath"): st.one_of(hostile_path, st.sampled_from(
        ["/", "..", "../../..", "a/../../b", ":x:y", "pyoci", "/pyoci", "sub/leaf",
         "system.slice:pyoci:x"])),
    ("linux", "namespaces", 0): st.fixed_dictionaries(
        {"type": namespace_types}, optional={"path": hostile_path}),
    ("linux", "namespaces", -1): st.fixed_dictionaries(
        {"type": namespace_types}, optional={"path": hostile_path}),
    ("mounts", -1): st.fixed_dictionaries(
        {"destination": hostile_path},
        optional={"type": st.sampled_from(["bind", "tmpfs", "proc", "nfs", "none", "bogus", ""]),
                  "source": hostile_path,
                  "options": st.lists(st.sampled_from(
                      ["bind", "rbind", "ro", "rw", "nosuid", "size=1", "size=-1", "mode=9999",
                       "idmap", "rprivate", "shared", "bogus", "uid=x", ""]), max_size=4)}),
    ("process", "rlimits", -1): st.fixed_dictionaries(
        {"type": st.sampled_from(["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_BOGUS", "nofile"]),
         "hard": st.sampled_from(HOSTILE_NUMBERS), "soft": st.sampled_from(HOSTILE_NUMBERS)}),
    ("process", "user", "uid"): st.sampled_from(HOSTILE_NUMBERS),
    ("process", "user", "gid"): st.sampled_from(HOSTILE_NUMBERS),
    ("process", "user", "additionalGids"): st.lists(st.sampled_from(HOSTILE_NUMBERS), max_size=3),
    ("process", "user", "umask"): st.sampled_from(HOSTILE_NUMBERS),
    ("process", "oomScoreAdj"): st.sampled_from(HOSTILE_NUMBERS),
    ("process", "cwd"): hostile_path,
    ("process", "env", -1): st.sampled_from(HOSTILE_STRINGS),
    ("process", "consoleSize"): st.fixed_dictionaries(
        {"height": st.sampled_from(HOSTILE_NUMBERS), "width": st.sampled_from(HOSTILE_NUMBERS)}),
    ("process", "apparmorProfile"): st.sampled_from(HOSTILE_STRINGS),
    ("process", "selinuxLabel"): st.sampled_from(HOSTILE_STRINGS),
    ("process", "ioPriority"): st.fixed_dictionaries(
        {"class": st.sampled_from(["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BOGUS"]),
         "priority": st.sampled_from(HOSTILE_NUMBERS)}),
    ("process", "scheduler"): st.fixed_dictionaries(
        {"policy": st.sampled_from(["SCHED_OTHER", "SCHED_FIFO", "SCHED_BOGUS"])},
        optional={"priority": st.sampled_from(HOSTILE_NUMBERS),
                  "nice": st.sampled_from(HOSTILE_NUMBERS)}),
    ("process", "execCPUAffinity"): st.fixed_dictionaries(
        {}, optional={"initial": st.sampled_from(["0", "0-1", "1-0", "99999", "a", "", "0,,1"]),
                      "final": st.sampled_from(["0", "0-9999999", "-1", "x-y"])}),
    ("process", "capabilities", "bounding", -1): st.sampled_from(
        ["CAP_SYS_ADMIN", "CAP_EVERYTHING", "", "cap_kill", "CAP_KILL"]),
    ("hostname",): st.sampled_from(HOSTILE_STRINGS),
    ("domainname",): st.sampled_from(HOSTILE_STRINGS),
    ("linux", "sysctl"): st.dictionaries(
        st.sampled_from(["kernel.domainname", "net.ipv4.ip_forward", "kernel.msgmax",
                         "fs.mqueue.msg_max", "bogus.key", "", "../../x", "kernel/shmmax"]),
        st.sampled_from(HOSTILE_STRINGS), max_size=2),
    ("linux", "devices", -1): st.fixed_dictionaries(
        {"path": hostile_path, "type": st.sampled_from(["c", "b", "u", "p", "x", ""])},
        optional={"major": st.sampled_from(HOSTILE_NUMBERS),
                  "minor": st.sampled_from(HOSTILE_NUMBERS),
                  "fileMode": st.sampled_from(HOSTILE_NUMBERS),
                  "uid": st.sampled_from(HOSTILE_NUMBERS)}),
    ("linux", "uidMappings"): st.lists(st.fixed_dictionaries(
        {"containerID": st.sampled_from(HOSTILE_NUMBERS),
         "hostID": st.sampled_from(HOSTILE_NUMBERS),
         "size": st.sampled_from(HOSTILE_NUMBERS)}), max_size=2),
    ("linux", "resources", "memory"): st.dictionaries(
        st.sampled_from(["limit", "reservation", "swap", "kernel", "swappiness"]),
        st.sampled_from(HOSTILE_NUMBERS), max_size=2),
    ("linux", "resources", "cpu"): st.dictionaries(
        st.sampled_from(["shares", "quota", "period", "cpus", "mems", "idle"]),
        st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(["0-1", "9999", "x"])),
        max_size=2),
    ("linux", "resources", "pids"): st.fixed_dictionaries(
        {"limit": st.sampled_from(HOSTILE_NUMBERS)}),
    ("linux", "resources", "devices", -1): st.fixed_dictionaries(
        {"allow": st.booleans()},
        optional={"type": st.sampled_from(["a", "c", "b", "z"]),
                  "access": st.sampled_from(["rwm", "r", "x", "", "rrrr"]),
                  "major": st.sampled_from(HOSTILE_NUMBERS)}),
    ("linux", "resources", "blockIO"): st.fixed_dictionaries(
        {"weight": st.sampled_from(HOSTILE_NUMBERS)}),
    ("linux", "resources", "hugepageLimits", -1): st.fixed_dictionaries(
        {"pageSize": st.sampled_from(["2MB", "1GB", "3KB", "", "x"]),
         "limit": st.sampled_from(HOSTILE_NUMBERS)}),
    ("linux", "resources", "unified"): st.dictionaries(
        st.sampled_from(["memory.max", "pids.max", "../x", "cgroup.procs", ""]),
        st.sampled_from(HOSTILE_STRINGS), max_size=2),
    ("linux", "rootfsPropagation"): st.sampled_from(
        ["private", "rprivate", "slave", "rslave", "unbindable", "bogus", ""]),
    ("linux", "maskedPaths", -1): hostile_path,
    ("linux", "readonlyPaths", -1): hostile_path,
    ("linux", "seccomp"): st.fixed_dictionaries(
        {"defaultAction": st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_BOGUS"])},
        optional={"architectures": st.lists(st.sampled_from(
                      ["SCMP_ARCH_X86_64", "SCMP_ARCH_BOGUS"]), max_size=2),
                  "syscalls": st.lists(st.fixed_dictionaries(
                      {"names": st.lists(st.sampled_from(["read", "bogus_call", ""]),
                                         max_size=2),
                       "action": st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO",
                                                  "SCMP_ACT_KILL"])}), max_size=2)}),
    ("linux", "personality"): st.fixed_dictionaries(
        {"domain": st.sampled_from(["LINUX", "LINUX32", "BOGUS"])}),
    ("linux", "timeOffsets"): st.dictionaries(
        st.sampled_from(["monotonic", "boottime", "bogus"]),
        st.fixed_dictionaries({"secs": st.sampled_from(HOSTILE_NUMBERS),
                               "nanosecs": st.sampled_from(HOSTILE_NUMBERS)}), max_size=2),
    ("linux", "memoryPolicy"): st.fixed_dictionaries(
        {"mode": st.sampled_from(["MPOL_BIND", "MPOL_DEFAULT", "MPOL_BOGUS"])},
        optional={"nodes": st.sampled_from(["0", "0-99999", "x", ""])}),
    ("hooks", "prestart"): st.lists(st.fixed_dictionaries(
        {"path": st.sampled_from(["/nonexistent/hook", "relative/hook", "/", "", "a\x00b"])},
        optional={"timeout": st.sampled_from(HOSTILE_NUMBERS)}), max_size=2),
    ("annotations",): st.dictionaries(st.sampled_from(HOSTILE_STRINGS),
                                      st.sampled_from(HOSTILE_STRINGS), max_size=3),
    ("ociVersion",): st.sampled_from(["1.0.0", "0.1", "2.0.0", "", "1.3.0-rc.1", "x"]),
}

# Create-level fuzz runs the config for real: keep root.path inside the bundle.
HOST_ROOT_PATHS = {"/", "//", "/..", "/proc/self/root", "..", "../../../../../etc",
                   "rootfs/../../..", "/../../etc/passwd", "///a//b/", "/dev/null"}


def paths(doc: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    """Every JSON path in ``doc`` (containers and leaves), the root excluded."""
    out: list[JsonPath] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, i))
            out += paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: JsonPath) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


def _set(doc: dict[str, Any], path: JsonPath, value: Any) -> None:
    """Set ``path``, creating dicts/lists on the way; ``-1`` in a list appends."""
    node: Any = doc
    for i, p in enumerate(path[:-1]):
        nxt_is_list = isinstance(path[i + 1], int)
        if isinstance(node, dict):
            if not isinstance(node.get(p), (dict, list)):
                node[p] = [] if nxt_is_list else {}
            node = node[p]
        elif isinstance(node, list) and isinstance(p, int):
            if p == -1 or p >= len(node):
                node.append([] if nxt_is_list else {})
                node = node[-1]
            else:
                node = node[p]
        else:
            return  # a scalar in the way: another mutation replaced it
    leaf = path[-1]
    if isinstance(node, dict):
        node[leaf] = value
    elif isinstance(node, list) and isinstance(leaf, int):
        if leaf == -1 or leaf >= len(node):
            node.append(value)
        else:
            node[leaf] = value


@st.composite
def mutated_configs(draw: st.DrawFn, *, allow_host_root: bool) -> dict[str, Any]:
    from pyoci.spec.default import default_config

    cfg: dict[str, Any] = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/probe", "exit", "0"]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "delete", "unknown", "duplicate", "known",
                                   "known"]))
        existing = paths(cfg)
        if op == "known" or not existing:
            path, strat = draw(st.sampled_from(sorted(KNOWN_FIELDS.items(), key=repr)))
            _set(cfg, path, draw(strat))
            continue
        path = draw(st.sampled_from(existing))
        parent = _parent(cfg, path)
        leaf = path[-1]
        if op == "replace":
            parent[leaf] = draw(values)
        elif op == "delete":
            del parent[leaf]
        elif op == "unknown":
            target = parent[leaf] if isinstance(parent[leaf], dict) else parent
            if isinstance(target, dict):
                target[draw(st.sampled_from(["x-unknown", "Type", "process ", ""]))] = \
                    draw(values)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[leaf]))
    if not allow_host_root:
        root = cfg.get("root")
        if isinstance(root, dict) and root.get("path") in HOST_ROOT_PATHS:
            root["path"] = "rootfs"
    return cfg


def encode(cfg: Any) -> bytes:
    """JSON as a careless writer produces it: NaN and Infinity included."""
    return (json.dumps(cfg, allow_nan=True) + "\n").encode("utf-8", errors="surrogatepass")


RAW_INPUTS = [
    b"", b"\n", b"null", b"[]", b"42", b'"config"', b"{", b'{"ociVersion": "1.3.0",',
    b"\xff\xfe{}", b'{"a": "\xc3\x28"}', b"[" * 100_000 + b"]" * 100_000,
    b'{"root": {"path": "rootfs"}, "process": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"ociVersion": NaN}', b'{"ociVersion": "1.3.0", "ociVersion": "1.0.0"}',
    b"\x00" * 64, b'{"process": {"args": ["/probe"]}}' + b" trailing",
]


@st.composite
def raw_inputs(draw: st.DrawFn, *, allow_host_root: bool) -> bytes:
    """Bytes for config.json: mostly mutated configs, sometimes unparseable ones."""
    kind = draw(st.sampled_from(["config"] * 6 + ["raw", "truncated"]))
    if kind == "raw":
        return draw(st.sampled_from(RAW_INPUTS))
    data = encode(draw(mutated_configs(allow_host_root=allow_host_root)))
    if kind == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return data
