"""pyoci.spec.fastschema must answer exactly as jsonschema does on our schemas.

jsonschema (``schema.check``) is the reference. For every document here the two
must agree on valid/invalid *and* on the one-line message ``schema.check``
would print, which the fast errors are formatted into with schema's own
helpers. The message agreement is stronger than what ``check_cached`` relies
on today (it asks jsonschema to word a rejection) and is what would let it
stop doing so.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helpers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyoci.errors import SpecError
from pyoci.spec import fastschema, schema
from pyoci.spec.default import default_config

HERE = Path(__file__).parent / "test_validate"
FIXTURES = sorted((HERE / "valid").glob("*.json")) + sorted((HERE / "invalid").glob("*.json"))
PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")
REPO = Path(__file__).resolve().parents[2]

# podman's default capability set (containers.conf default_capabilities).
PODMAN_DEFAULT_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT",
}


def fast_message(doc: Any, which: str = "config") -> str | None:
    """What schema.check would say, computed from fastschema's errors; None if valid."""
    found = [schema._leaf(e) for e in schema._fast(which).errors(doc)]
    found.sort(key=schema._rank, reverse=True)  # stable, like schema.errors
    if not found:
        return None
    path, rule = schema._describe(found[0])
    where = schema.format_path(path)
    label = schema._kind(which)[1]
    return f"{label}: {where}: {rule}" if where else f"{label}: {rule}"


def reference_message(doc: Any, which: str = "config") -> str | None:
    errs = schema.errors(doc, which)
    return errs[0] if errs else None


def assert_agree(doc: Any, which: str = "config") -> str | None:
    want = reference_message(doc, which)
    assert schema._fast(which).is_valid(doc) == (want is None)
    assert fast_message(doc, which) == want
    return want



def podman_like(cid: str = "4f1c" * 16) -> dict[str, Any]:
    """The shape of a config.json podman writes: its seccomp profile, bind mounts, annotations."""
    c = default_config()
    if PODMAN_PROFILE.exists():
        c["linux"]["seccomp"] = helpers.podman_seccomp_to_oci(PODMAN_PROFILE, PODMAN_DEFAULT_CAPS)
    else:  # a small stand-in with args, so the seccomp schema is still exercised
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write", "openat"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            ],
        }
    caps = sorted(PODMAN_DEFAULT_CAPS)
    c["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    c["process"]["env"] += [f"HOSTNAME={cid[:12]}", "container=podman"]
    c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576},
                               {"type": "RLIMIT_NPROC", "hard": 4194304, "soft": 4194304}]
    c["process"]["oomScoreAdj"] = 0
    c["hostname"] = cid[:12]
    base = f"/var/lib/containers/storage/overlay-containers/{cid}/userdata"
    for dest, name in (("/etc/hostname", "hostname"), ("/etc/hosts", "hosts"),
                       ("/etc/resolv.conf", "resolv.conf"), ("/run/.containerenv", ".containerenv"),
                       ("/run/secrets", "run/secrets")):
        c["mounts"].append({"destination": dest, "type": "bind", "source": f"{base}/{name}",
                            "options": ["bind", "rprivate", "nosuid", "nodev"]})
    c["annotations"] = {
        "io.container.manager": "libpod", "io.podman.annotations.autoremove": "TRUE",
        "org.opencontainers.image.stopSignal": "15", "io.podman.annotations.init": "FALSE",
        "org.systemd.property.KillSignal": "15", "io.kubernetes.cri-o.ContainerID": cid,
    }
    c["root"]["path"] = f"/var/lib/containers/storage/overlay/{cid}/merged"
    c["linux"]["cgroupsPath"] = f"machine.slice:libpod:{cid}"
    c["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 0"}
    c["linux"]["resources"]["pids"] = {"limit": 2048}
    return c


STATE: dict[str, Any] = {
    "ociVersion": "1.3.0", "id": "c1", "status": "running", "pid": 4422,
    "bundle": "/containers/redis", "annotations": {"myKey": "myValue"},
}
FEATURES: dict[str, Any] = {
    "ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "poststop"], "mountOptions": ["bind", "ro"],
    "linux": {"namespaces": ["mount", "pid"], "capabilities": ["CAP_CHOWN"],
              "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW"]}},
    "annotations": {"org.opencontainers.runc.version": "pyoci 0.1.0"},
}


# -- agreement on fixed documents --------------------------------------------------

@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixtures_agree(path: Path) -> None:
    doc = json.loads(path.read_text())
    msg = assert_agree(doc)
    # Fixtures that fail a schema rule carry that exact message.
    if msg is not None:
        assert msg == doc["_expect"]


def test_some_fixtures_fail_the_schema() -> None:
    """Keep the fixture test meaningful: several fixtures must be schema rejections."""
    failing = [p for p in FIXTURES if reference_message(json.loads(p.read_text()))]
    assert len(failing) >= 10


@pytest.mark.parametrize("rootless", [False, True])
def test_default_config_agrees(rootless: bool) -> None:
    doc = default_config(rootless=rootless)
    assert assert_agree(doc) is None
    assert assert_agree(doc["process"], "process") is None


def test_podman_like_config_agrees() -> None:
    assert assert_agree(podman_like()) is None


@pytest.mark.parametrize(("which", "doc"), [("state", STATE), ("features", FEATURES)])
def test_other_kinds_agree(which: str, doc: dict[str, Any]) -> None:
    assert assert_agree(doc, which) is None
    bad = copy.deepcopy(doc)
    bad["ociVersion" if which == "state" else "ociVersionMax"] = "1.3"
    bad["annotations"] = {"": 1, "k": 2}
    assert assert_agree(bad, which) is not None


@pytest.mark.parametrize("mutate", [
    # several errors at the same depth: the choice among them must match
    lambda c: c["annotations"].update(a=1, b=2, c=None, d=[]),
    lambda c: c["linux"]["sysctl"].update({"": 1, "x": 2}),
    lambda c: c["process"].update(cwd=1, terminal="no", args=[]),
    lambda c: c["linux"]["seccomp"]["syscalls"][0].update(names=[], action="bad"),
    lambda c: c["linux"]["seccomp"]["syscalls"].append({"names": [1, 2], "action": 3}),
    lambda c: c.update(ociVersion="1.3.0\n"),  # re.search's `$` accepts a final newline
    lambda c: c.update(ociVersion="01.3.0"),
    lambda c: c.update(ociVersion=1.3),
    lambda c: c["linux"].update(devices=[{"type": "p", "path": "/dev/p"},
                                         {"type": "c", "path": "/dev/c"}]),
    lambda c: c["process"]["rlimits"][0].update(hard=-1, soft=1.5),
    lambda c: c["process"]["user"].update(uid=True, gid=1.0),
    lambda c: c["process"].update(oomScoreAdj=1001),
    lambda c: c.pop("root"),
    lambda c: c.clear(),
])
def test_multi_error_documents_agree(mutate: Any) -> None:
    doc = podman_like()
    mutate(doc)
    assert_agree(doc)


# -- agreement on generated mutations ----------------------------------------------

def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


def _bases() -> list[dict[str, Any]]:
    docs = [default_config(), default_config(rootless=True), podman_like()]
    for p in sorted((HERE / "valid").glob("*.json")):
        d = json.loads(p.read_text())
        d.pop("_warnings", None)
        docs.append(d)
    return docs


BASES = _bases()
BASE_PATHS = [_paths(d) for d in BASES]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from([
        -1, 0, 1, 1.0, 2**32, 2**63, -(2**63) - 1, -1001, 1001, "", "\n", "bogus", "1.3.0\n",
        "rel/path", "/abs", "SCMP_ACT_BOGUS", "p", "rwm", "rwx", "0-3,7", "0-3;7", "CAP_X",
    ]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["", "type", "path", "names", "x", "action"]), inner,
                      max_size=3),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    i = draw(st.integers(0, len(BASES) - 1))
    doc = copy.deepcopy(BASES[i])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(BASE_PATHS[i]))
        parent: Any = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            if path:
                parent[path[-1]]  # the path may be gone after an earlier mutation
        except (KeyError, IndexError, TypeError):
            continue
        if not path:
            continue
        key = path[-1]
        old = parent[key]
        kind = draw(st.sampled_from(["replace", "delete", "number", "enum", "empty", "add"]))
        if kind == "delete":
            del parent[key]
        elif kind == "number" and isinstance(old, int | float) and not isinstance(old, bool):
            parent[key] = old + draw(st.sampled_from([-(2**33), -1, 1, 2**33, 0.5]))
        elif kind == "enum" and isinstance(old, str):
            parent[key] = draw(st.sampled_from([old + "X", old.lower(), old.upper(), " " + old]))
        elif kind == "empty" and isinstance(old, str | list | dict):
            parent[key] = type(old)()
        elif kind == "add" and isinstance(old, dict):
            old[draw(st.sampled_from(["", "x", "type", "path"]))] = draw(json_values)
        else:
            parent[key] = draw(json_values)
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_agree(doc: dict[str, Any]) -> None:
    assert_agree(doc)


@settings(max_examples=100, deadline=None)
@given(mutated())
def test_mutations_agree_for_process(doc: dict[str, Any]) -> None:
    assert_agree(doc.get("process"), "process")


# -- hand-written patterns ---------------------------------------------------------

PATTERN_ALPHABET = st.sampled_from([*"0123456789.-+,/ rwmxCAP_aZ\n\t", "é", "١"])
PATTERN_TEXT = st.one_of(
    st.text(PATTERN_ALPHABET, max_size=12),
    st.sampled_from(["1.3.0", "1.3.0-rc.1+b.5", "0.0.0", "01.0.0", "1.0", "1.0.0-", "1.0.0+",
                     "1.0.0-a+b+c", "1.0.0\n", "1.0.0\n\n", "CAP_SYS_ADMIN", "CAP_", "rwm\n"]),
)


@pytest.mark.parametrize("pattern", sorted(fastschema._PATTERNS))
@settings(max_examples=300, deadline=None)
@given(text=PATTERN_TEXT)
def test_hand_patterns_match_re_search(pattern: str, text: str) -> None:
    assert fastschema._PATTERNS[pattern](text) == bool(re.search(pattern, text))


def test_every_schema_pattern_is_implemented_by_hand() -> None:
    """A new pattern would still work (through `re`), but would cost the import."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for which in ("config", "state", "features"):
        walk(schema._schema_doc(which))
    assert found <= set(fastschema._PATTERNS)


def test_other_patterns_fall_back_to_re() -> None:
    v = fastschema.compile_schema({"type": "string", "pattern": "^a+b$"})
    assert v.is_valid("aab")
    assert not v.is_valid("ba")


# -- compile-time refusal ----------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"anyOf": [{"type": "string"}]},
    {"maxLength": 3},
    {"properties": {"a": {"exclusiveMinimum": 0}}},
    {"type": "object", "additionalProperties": False},
    {"items": True},
    {"then": {"type": "string"}},
    {"$ref": "https://example.com/schema.json"},
    {"$ref": "#/$defs/missing"},
    {"type": "strin"},
    {"$defs": {"X": {"format": "uri"}}, "$ref": "#/$defs/X"},
])
def test_unsupported_schema_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(fastschema.UnsupportedSchema):
        fastschema.compile_schema(bad)


@pytest.mark.parametrize("which", ["config", "process", "state", "features"])
def test_shipped_schemas_compile(which: str) -> None:
    schema._fast(which)


def test_recursive_ref() -> None:
    kids = {"type": "array", "items": {"$ref": "#/$defs/T"}}
    v = fastschema.compile_schema({
        "$defs": {"T": {"type": "object", "properties": {"kids": kids}}},
        "$ref": "#/$defs/T",
    })
    assert v.is_valid({"kids": [{"kids": []}]})
    [err] = v.errors({"kids": [{"kids": [1]}]})
    assert err.absolute_path == ["kids", 0, "kids", 0]


# -- wiring into check_cached ------------------------------------------------------

def test_miss_accepts_without_jsonschema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object) -> None:
        raise AssertionError("jsonschema path used for a valid document")

    monkeypatch.setattr(schema, "errors", boom)
    raw = json.dumps(podman_like()).encode()
    schema.check_cached(json.loads(raw), raw, str(tmp_path))
    assert [p.name[:7] for p in tmp_path.iterdir()] == ["schema-"]
    # Uncached too (update --resources, the library): a valid document never needs it.
    schema.check(json.loads(raw))
    schema.check({"ociVersion": "1.3.0", "root": {"path": "rootfs"},
                  "linux": {"resources": {"memory": {"limit": 1 << 26}}}})


def test_miss_rejects_with_the_reference_message(tmp_path: Path) -> None:
    doc = podman_like()
    doc["process"]["rlimits"][0]["type"] = 7
    raw = json.dumps(doc).encode()
    with pytest.raises(SpecError) as exc:
        schema.check_cached(doc, raw, str(tmp_path))
    assert str(exc.value) == reference_message(doc)
    assert list(tmp_path.iterdir()) == []  # no marker for a rejected document


def test_jsonschema_wins_a_disagreement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were fastschema ever stricter than jsonschema, the reference's acceptance counts."""

    class Strict:
        def is_valid(self, doc: object) -> bool:
            return False

    monkeypatch.setattr(schema, "_fast", lambda which: Strict())
    raw = json.dumps(default_config()).encode()
    schema.check_cached(json.loads(raw), raw, str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1


def _fresh(code: str, *flags: str) -> list[str]:
    out = subprocess.run([sys.executable, *flags, "-c", code], check=True, capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out.stdout.split()


def test_valid_config_does_not_import_jsonschema(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_bytes(json.dumps(podman_like()).encode())
    code = (
        "import sys\n"
        "from pyoci.spec.validate import validate\n"
        f"raw = open({str(cfg)!r}, 'rb').read()\n"
        "from pyoci import jsonio\n"
        f"validate(jsonio.loads(raw), raw, cache_dir={str(tmp_path / 'cache')!r}, host=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'jsonschema') or 'none')\n"
    )
    assert _fresh(code) == ["none"]
    assert len(os.listdir(tmp_path / "cache")) == 1


def test_fastschema_does_not_import_re() -> None:
    """`re` costs ~5 ms; -S keeps site (and an editable install's finder, which uses re) out."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from pyoci.spec import schema\n"
        "for w in ('config', 'process', 'state', 'features'):\n"
        "    schema._fast(w).is_valid({'ociVersion': '1.3.0', 'root': {'path': 'r'}})\n"
        "print('re' in sys.modules, 'json' in sys.modules, 'jsonschema' in sys.modules)\n"
    )
    assert _fresh(code, "-S") == ["False", "False", "False"]
