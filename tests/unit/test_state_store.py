"""The state record under --root: marshal, atomic, and readable from an older pyoci's JSON."""

from __future__ import annotations

import json
import marshal
from pathlib import Path

import pytest

from pyoci.errors import ContainerNotFound, StateError
from pyoci.state.store import LEGACY_STATE_FILE, STATE_FILE, Store

STATE = {"ociVersion": "1.3.0", "id": "c1", "pid": 0, "bundle": "/b", "annotations": {"k": "v"},
         "cgroup": {"mode": "v1", "paths": {"pids": "/x"}, "created": ["/x"]}}


def test_save_writes_a_marshal_record(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.claim("c1")
    store.save("c1", STATE)
    assert marshal.loads((tmp_path / "c1" / STATE_FILE).read_bytes()) == STATE
    assert store.load("c1") == STATE
    assert store.exists("c1") and store.ids() == ["c1"]


def test_a_container_from_an_older_pyoci_is_still_found(tmp_path: Path) -> None:
    """An upgrade must not strand running containers: their state.json is read."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / LEGACY_STATE_FILE).write_text(json.dumps(STATE))
    store = Store(str(tmp_path))
    assert store.exists("old") and store.ids() == ["old"]
    assert store.load("old") == STATE
    store.save("old", {**STATE, "pid": 7})  # from then on the marshal record is read
    assert store.load("old")["pid"] == 7
    store.remove("old")
    assert not (tmp_path / "old").exists()


@pytest.mark.parametrize(("name", "data"), [
    (STATE_FILE, b"\x00garbage"), (STATE_FILE, marshal.dumps([1, 2])),
    (LEGACY_STATE_FILE, b"{not json"), (LEGACY_STATE_FILE, b"[1]"),
])
def test_a_damaged_record_is_a_clear_error(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / name).write_bytes(data)
    with pytest.raises(StateError, match=f"corrupt state file {tmp_path}/c1/{name}: "):
        Store(str(tmp_path)).load("c1")


def test_no_record_is_no_container(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    with pytest.raises(ContainerNotFound):
        Store(str(tmp_path)).load("c1")
    assert Store(str(tmp_path)).ids() == []


@pytest.mark.parametrize("doc", [
    {"ociVersion": "1.3.0", "id": "c1", "pid": 42, "status": "running", "bundle": "/b",
     "annotations": {"k": "v", "quote\"back\\slash": "tab\tnl\nctl\x01", "é": "😀 \u2028"}},
    {"empty": {}, "list": [], "nested": [{"a": [1, 2.5, None, True, False]}], "neg": -3},
    [], {}, "plain", 0, 1e100,
])
def test_state_output_is_json_dumps_indent_2(doc: object) -> None:
    """`pyoci state` prints without json/_json: byte for byte what json.dumps(indent=2) writes."""
    from pyoci.cli.state import pretty

    assert pretty(doc) == json.dumps(doc, indent=2)
