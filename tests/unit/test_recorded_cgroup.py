"""The recorded cgroup (pyoci/state/recorded_cgroup.py): exec's placement writes what the
managers' apply writes.

The managers are rebuilt from a recorded state whose directories are plain
temporary directories holding an empty ``cgroup.procs``; each side writes a pid,
and the files that received it must be the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyoci.cgroups import from_state
from pyoci.errors import CgroupError
from pyoci.execute import placer
from pyoci.state import recorded_cgroup as placement


def _states(tmp: Path) -> dict[str, dict[str, Any]]:
    v1 = {c: str(tmp / "v1" / c / "pyoci" / "c1") for c in ("cpu", "memory", "pids")}
    v1["cpuacct"] = v1["cpu"]  # two controllers, one directory: written once
    return {
        "v1": {"mode": "v1", "path": "/pyoci/c1", "created": [], "paths": v1},
        "hybrid": {"mode": "hybrid", "path": "/pyoci/c1", "created": [], "paths": v1,
                   "unified_root": str(tmp / "unified")},
        "v2": {"mode": "v2", "path": "/pyoci/c1/", "created": [], "root": str(tmp / "v2"),
               "paths": {"": str(tmp / "v2" / "pyoci" / "c1")}},
        "none": {"mode": "none", "path": "/pyoci/c1", "created": []},
    }


def _procs_files(tmp: Path) -> list[Path]:
    return sorted(tmp.rglob("cgroup.procs"))


def _written(tmp: Path) -> dict[str, str]:
    out = {}
    for f in _procs_files(tmp):
        if f.read_text():
            out[str(f)] = f.read_text()
            f.write_text("")
    return out


@pytest.mark.parametrize("mode", ["v1", "hybrid", "v2", "none"])
def test_same_files_as_the_manager(tmp_path: Path, mode: str) -> None:
    state = _states(tmp_path)[mode]
    for d in [*(state.get("paths") or {}).values(), tmp_path / "unified" / "pyoci" / "c1"]:
        Path(d).mkdir(parents=True, exist_ok=True)
        (Path(d) / "cgroup.procs").write_text("")
    from_state(state).apply(4321)
    by_manager = _written(tmp_path)
    placer(state)(4321)
    assert _written(tmp_path) == by_manager
    assert placement.directories(state) is not None


def test_unknown_mode_goes_to_the_manager() -> None:
    assert placement.directories({"mode": "systemd", "path": "/x"}) is None
    with pytest.raises(CgroupError, match="unknown cgroup mode"):
        placer({"mode": "systemd", "path": "/x"})


def test_errors_are_worded_as_the_manager_words_them(tmp_path: Path) -> None:
    state = _states(tmp_path)["v2"]
    with pytest.raises(CgroupError) as ours:
        placer(state)(1)
    with pytest.raises(CgroupError) as theirs:
        from_state(state).apply(1)
    assert str(ours.value) == str(theirs.value)
    assert "no such file or directory" in str(ours.value)


def _v1_record(tmp: Path, made: bool = True) -> dict[str, Any]:
    leaf = tmp / "freezer" / "pyoci" / "c1"
    leaf.mkdir(parents=True)
    return {"mode": "v1", "path": "/pyoci/c1", "paths": {"freezer": str(leaf), "pids": str(leaf)},
            "created": [str(tmp / "freezer" / "pyoci"), str(leaf)] if made else []}


@pytest.mark.parametrize(("mode", "name", "frozen", "thawed"), [
    ("v1", "freezer.state", "FROZEN\n", "THAWED\n"),
    ("hybrid", "freezer.state", "FROZEN\n", "FREEZING\n"),
    ("v2", "cgroup.freeze", "1\n", "0\n"),
])
def test_frozen_reads_the_recorded_freezer(tmp_path: Path, mode: str, name: str, frozen: str,
                                           thawed: str) -> None:
    key = "" if mode == "v2" else "freezer"
    record = {"mode": mode, "path": "/pyoci/c1", "paths": {key: str(tmp_path)}}
    (tmp_path / name).write_text(frozen)
    assert placement.frozen(record)
    (tmp_path / name).write_text(thawed)
    assert not placement.frozen(record)
    (tmp_path / name).unlink()
    assert not placement.frozen(record)  # a cgroup already gone is not paused
    assert not placement.frozen({"mode": "none", "path": "/pyoci/c1"})


def test_remove_if_empty_removes_what_create_made(tmp_path: Path) -> None:
    record = _v1_record(tmp_path)
    assert placement.remove_if_empty(record)
    assert not (tmp_path / "freezer" / "pyoci").exists()
    assert (tmp_path / "freezer").is_dir()  # not ours
    assert placement.remove_if_empty(record)  # again: already gone is fine


def test_remove_if_empty_takes_a_pre_existing_leaf_but_not_its_parent(tmp_path: Path) -> None:
    """The leaf is the container's even if create found it; the parent it didn't make stays."""
    record = _v1_record(tmp_path, made=False)
    assert placement.remove_if_empty(record)
    assert not (tmp_path / "freezer" / "pyoci" / "c1").exists()
    assert (tmp_path / "freezer" / "pyoci").is_dir()


def test_remove_if_empty_keeps_a_parent_a_sibling_uses(tmp_path: Path) -> None:
    record = _v1_record(tmp_path)
    (tmp_path / "freezer" / "pyoci" / "sibling").mkdir()
    assert placement.remove_if_empty(record)
    assert not (tmp_path / "freezer" / "pyoci" / "c1").exists()
    assert (tmp_path / "freezer" / "pyoci" / "sibling").is_dir()


@pytest.mark.parametrize("case", ["tasks", "frozen", "busy"])
def test_remove_if_empty_leaves_the_unusual_to_the_manager(tmp_path: Path, case: str) -> None:
    record = _v1_record(tmp_path)
    leaf = Path(record["paths"]["freezer"])
    if case == "tasks":
        (leaf / "cgroup.procs").write_text("123\n")
    elif case == "frozen":
        (leaf / "freezer.state").write_text("FROZEN\n")
    elif case == "busy":
        (leaf / "child").mkdir()  # rmdir fails, as it does for a nested cgroup
    assert not placement.remove_if_empty(record)
    assert leaf.is_dir()
