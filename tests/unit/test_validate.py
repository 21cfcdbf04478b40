"""Fixture-driven tests of config.json validation (schema plus semantic checks).

Each file in ``test_validate/invalid`` carries the exact expected message under
the unknown top-level property ``_expect``; that the property does not itself
fail validation is part of what these tests show. Files in ``test_validate/valid``
may list the exact warnings they must produce under ``_warnings``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pyoci.errors import SpecError
from pyoci.spec import schema
from pyoci.spec.default import default_config
from pyoci.spec.load import read_config, read_process
from pyoci.spec.validate import validate, validate_process

HERE = Path(__file__).parent / "test_validate"
# Names are listed at collection time; the files are read through pytest-datadir's
# ``original_datadir`` (the folder named after this module). The tests only read,
# so the per-test copy that ``datadir`` makes would cost time and buy nothing.
VALID = sorted(p.stem for p in (HERE / "valid").glob("*.json"))
INVALID = sorted(p.stem for p in (HERE / "invalid").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_fixture_counts() -> None:
    assert len(VALID) >= 8
    assert len(INVALID) >= 25


@pytest.mark.parametrize("name", VALID)
def test_valid(original_datadir: Path, name: str) -> None:
    doc = _load(original_datadir / "valid" / f"{name}.json")
    warnings = validate(doc)
    assert warnings == doc.get("_warnings", [])


@pytest.mark.parametrize("name", INVALID)
def test_invalid(original_datadir: Path, name: str) -> None:
    doc = _load(original_datadir / "invalid" / f"{name}.json")
    with pytest.raises(SpecError) as exc:
        validate(doc)
    msg = str(exc.value)
    assert msg == doc["_expect"]
    assert "\n" not in msg


@pytest.mark.parametrize("rootless", [False, True])
def test_default_config_validates(rootless: bool) -> None:
    assert validate(default_config(rootless=rootless)) == []


def test_default_config_validates_offline() -> None:
    assert validate(default_config(), host=False) == []


def test_host_checks_can_be_skipped(original_datadir: Path) -> None:
    doc = _load(original_datadir / "invalid" / "namespace-path-missing.json")
    assert validate(doc, host=False) == []


def test_validate_process() -> None:
    proc = copy.deepcopy(default_config()["process"])
    assert validate_process(proc) == []
    proc["cwd"] = "rel"
    with pytest.raises(SpecError,
                       match=r'^process\.json: cwd: must be an absolute path, got "rel"$'):
        validate_process(proc)
    with pytest.raises(SpecError, match=r"^process\.json: args: required property is missing$"):
        validate_process({"cwd": "/"})


def test_schema_errors_lists_all_deepest_first() -> None:
    doc = default_config()
    doc["process"]["terminal"] = "yes"
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO",
                               "syscalls": [{"names": ["x"], "action": "bad"}]}
    errs = schema.errors(doc)
    assert len(errs) == 2
    assert errs[0].startswith("config.json: linux.seccomp.syscalls[0].action: invalid value")
    assert errs[1] == 'config.json: process.terminal: must be a boolean, got string "yes"'


def test_jsonschema_not_imported_by_lean_modules() -> None:
    """state/start/kill/delete import pyoci.spec.load and friends; jsonschema must stay out."""
    code = ("import sys; import pyoci.spec.load, pyoci.spec.schema, pyoci.spec.validate; "
            "sys.exit('jsonschema' in sys.modules)")
    rc = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", code])
    assert rc == 0


# -- check_cached ------------------------------------------------------------

def test_check_cached_writes_marker_and_skips(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    doc = default_config()
    raw = json.dumps(doc).encode()
    cache = tmp_path / "cache"
    schema.check_cached(doc, raw, str(cache))
    markers = list(cache.iterdir())
    assert len(markers) == 1 and markers[0].name.startswith("schema-")

    ran: list[str] = []
    fast = schema._fast
    monkeypatch.setattr(schema, "_fast", lambda which: ran.append(which) or fast(which))
    schema.check_cached(doc, raw, str(cache))
    assert ran == []  # a hit checks nothing
    schema.check_cached(doc, raw + b" ", str(cache))  # different bytes: checked again
    assert ran == ["config"]


def test_check_cached_failure_writes_no_marker(tmp_path: Path) -> None:
    doc = default_config()
    doc["process"]["args"] = []
    raw = json.dumps(doc).encode()
    with pytest.raises(SpecError, match=r"process\.args: must not be empty"):
        schema.check_cached(doc, raw, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_check_cached_ignores_unwritable_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    doc = default_config()
    schema.check_cached(doc, json.dumps(doc).encode(), str(blocker / "sub"))


def test_check_cached_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "_CACHE_MAX", 3)
    for i in range(6):
        doc = default_config()
        doc["hostname"] = f"h{i}"
        schema.check_cached(doc, json.dumps(doc).encode(), str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 3


def test_semantic_checks_run_on_cache_hit(original_datadir: Path, tmp_path: Path) -> None:
    doc = _load(original_datadir / "invalid" / "namespace-duplicate.json")
    raw = json.dumps(doc).encode()
    for _ in range(2):
        with pytest.raises(SpecError, match="duplicate namespace mount"):
            validate(doc, raw, str(tmp_path))


# -- load ----------------------------------------------------------------------

def test_read_config_ok(tmp_path: Path) -> None:
    raw = json.dumps(default_config()).encode()
    (tmp_path / "config.json").write_bytes(raw)
    doc, got = read_config(str(tmp_path))
    assert got == raw and doc == default_config()


def test_read_config_missing(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        read_config(str(tmp_path))
    assert str(exc.value) == f"config.json: no such file or directory: {tmp_path}/config.json"


def test_read_config_relative_bundle_reported_absolute(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as exc:
        read_config("b")
    assert str(exc.value) == f"config.json: no such file or directory: {tmp_path}/b/config.json"


@pytest.mark.parametrize(("content", "expect"), [
    (b'{"ociVersion": "1.0.0",\n  "root": }',
     "config.json: invalid json: Expecting value (line 2)"),
    (b"", "config.json: invalid json: Expecting value (line 1)"),
    (b"[1, 2]", "config.json: top level must be a json object, got array"),
    (b"\xff\xfe", "config.json: invalid json: not utf-8 at byte 0"),
])
def test_read_config_bad(tmp_path: Path, content: bytes, expect: str) -> None:
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(SpecError) as exc:
        read_config(str(tmp_path))
    assert str(exc.value) == expect


def test_read_config_is_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(SpecError, match=r"^config\.json: is a directory: "):
        read_config(str(tmp_path))


def test_read_process(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text('{"args": ["ls"], "cwd": "/"}')
    assert read_process(str(p)) == {"args": ["ls"], "cwd": "/"}
    p.write_text('"x"')
    with pytest.raises(SpecError, match=r"^process\.json: top level must be a json object, got"):
        read_process(str(p))
    with pytest.raises(SpecError, match=r"^process\.json: no such file or directory: "):
        read_process(str(tmp_path / "nope.json"))
