"""The validation verdict cache (pyoci.spec.verdict): exact, safe, and skipped on a hit."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyoci.errors import SpecError
from pyoci.spec import schema, verdict
from pyoci.spec import validate as validate_mod
from pyoci.spec.default import default_config

REPO = Path(__file__).resolve().parents[2]


def _doc(**process: Any) -> tuple[dict[str, Any], bytes]:
    doc = default_config()
    doc["process"].update(process)
    raw = json.dumps(doc).encode()
    return json.loads(raw), raw


def _count_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = validate_mod.validate

    def counting(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(validate_mod, "validate", counting)
    return calls


def test_second_pass_of_same_bytes_skips_validation(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_validations(monkeypatch)
    config, raw = _doc()
    cache = str(tmp_path / "cache")
    first = verdict.validated(config, raw, cache)
    assert verdict.validated(config, raw, cache) == first
    assert len(calls) == 1
    verdict.validated(json.loads(raw + b" "), raw + b" ", cache)  # other bytes: validated
    assert len(calls) == 2


def test_warnings_are_kept(tmp_path: Path) -> None:
    doc = default_config()
    doc["process"]["capabilities"]["bounding"].append("CAP_NOT_A_THING")
    raw = json.dumps(doc).encode()
    cache = str(tmp_path / "cache")
    warnings = verdict.validated(json.loads(raw), raw, cache)
    assert any("CAP_NOT_A_THING" in w for w in warnings)
    assert verdict.lookup(cache, raw) == warnings


def test_rejected_config_leaves_no_verdict(tmp_path: Path) -> None:
    config, raw = _doc(args=[])
    cache = tmp_path / "cache"
    for _ in range(2):  # and is rejected again, with the same message
        with pytest.raises(SpecError, match=r"process\.args: must not be empty"):
            verdict.validated(config, raw, str(cache))
    assert not any(p.name.startswith(verdict.PREFIX) for p in cache.glob("*"))


def test_namespace_paths_are_always_checked(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    doc = default_config()
    doc["linux"]["namespaces"] = [n for n in doc["linux"]["namespaces"]
                                  if n["type"] != "network"]
    doc["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
    raw = json.dumps(doc).encode()
    cache = str(tmp_path / "cache")
    calls = _count_validations(monkeypatch)
    verdict.validated(json.loads(raw), raw, cache)
    verdict.validated(json.loads(raw), raw, cache)
    assert len(calls) == 2
    assert verdict.lookup(cache, raw) is None


def test_files_are_private(tmp_path: Path) -> None:
    config, raw = _doc()
    cache = tmp_path / "cache"
    verdict.validated(config, raw, str(cache))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    files = [p for p in cache.iterdir() if p.name.startswith(verdict.PREFIX)]
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert not any(p.name.endswith(".tmp") for p in cache.iterdir())


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xfa\x00", None])
def test_damaged_file_is_a_miss(tmp_path: Path, content: bytes | None) -> None:
    config, raw = _doc()
    cache = str(tmp_path / "cache")
    verdict.validated(config, raw, cache)
    [path] = [p for p in Path(cache).iterdir() if p.name.startswith(verdict.PREFIX)]
    import marshal

    path.write_bytes(content if content is not None else marshal.dumps((1, [7])))
    assert verdict.lookup(cache, raw) is None
    verdict.validated(config, raw, cache)  # validated again and rewritten
    assert verdict.lookup(cache, raw) == []


@pytest.mark.parametrize("part", ["_cap_last", "_stamps"])
def test_key_covers_host_and_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  part: str) -> None:
    config, raw = _doc()
    cache = str(tmp_path / "cache")
    verdict.validated(config, raw, cache)
    assert verdict.lookup(cache, raw) is not None
    monkeypatch.setattr(verdict, part, lambda: b"something else")
    assert verdict.lookup(cache, raw) is None


def test_key_covers_schema_and_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyoci

    config, raw = _doc()
    cache = str(tmp_path / "cache")
    verdict.validated(config, raw, cache)
    monkeypatch.setattr(pyoci, "__version__", "0.0.0-other")
    assert verdict.lookup(cache, raw) is None
    monkeypatch.undo()
    monkeypatch.setattr(schema, "schema_bytes", lambda which="config": b"{}")
    assert verdict.lookup(cache, raw) is None


def test_sources_exist() -> None:
    """A renamed module would silently drop out of the key."""
    assert all(os.path.isfile(p) for p in verdict._SOURCES)


def test_unwritable_cache_is_ignored(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config, raw = _doc()
    assert verdict.validated(config, raw, str(blocker / "sub")) == []


def test_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "_CACHE_MAX", 2)
    cache = tmp_path / "cache"
    for i in range(4):
        config, raw = _doc(args=["/bin/true", str(i)])
        verdict.validated(config, raw, str(cache))
    assert len([p for p in cache.iterdir() if p.name.startswith(verdict.PREFIX)]) == 2


def test_hit_does_not_import_the_validator(tmp_path: Path) -> None:
    _config, raw = _doc()
    cfg = tmp_path / "config.json"
    cfg.write_bytes(raw)
    cache = str(tmp_path / "cache")
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from pyoci import jsonio\n"
        "from pyoci.spec import verdict\n"
        f"raw = open({str(cfg)!r}, 'rb').read()\n"
        f"verdict.validated(jsonio.loads(raw), raw, {cache!r})\n"
        "print('pyoci.spec.validate' in sys.modules)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           text=True).stdout.split() for _ in range(2)]
    assert runs == [["True"], ["False"]]
