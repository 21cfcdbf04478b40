"""Fuzzed config.json: every input is accepted or refused cleanly, never half-done.

Two levels:

* in-process: ``parse_json`` -> ``validate`` -> ``plan.build``, the code every
  ``create`` runs before it touches the machine. Any exception other than a
  ``PyociError`` is a bug (it would reach the user as "internal error").
  ``PYOCI_FUZZ_VALIDATE_EXAMPLES`` (default 300).
* create: the bytes are written to a real bundle and fed to ``pyoci create``.
  Success is followed by ``delete --force``; failure must be exit 1 with one
  line on stderr and no traceback; either way nothing may remain (state dir,
  cgroup dir, mount, process). ``PYOCI_FUZZ_EXAMPLES`` (default 40).

CI runs a fixed (derandomized) set of examples; setting either variable also
turns on random exploration. See README.md for the long form.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import reliability_helpers as rh
from fuzz_strategies import raw_inputs
from hypothesis import HealthCheck, event, given, settings

CREATE_EXAMPLES = rh.env_int("PYOCI_FUZZ_EXAMPLES", 40)
VALIDATE_EXAMPLES = rh.env_int("PYOCI_FUZZ_VALIDATE_EXAMPLES", 300)
LONG = bool(os.environ.get("PYOCI_FUZZ_EXAMPLES") or os.environ.get("PYOCI_FUZZ_VALIDATE_EXAMPLES"))

COMMON = {
    "deadline": None,
    "database": None,  # no .hypothesis/ in the work tree
    "derandomize": not LONG,
    "suppress_health_check": list(HealthCheck),
}


@settings(max_examples=VALIDATE_EXAMPLES, **COMMON)
@given(raw=raw_inputs(allow_host_root=True))
def test_validate_and_plan_raise_only_pyoci_errors(raw: bytes, tmp_path_factory: Any) -> None:
    from pyoci.errors import PyociError
    from pyoci.spec import plan as planmod
    from pyoci.spec.load import parse_json
    from pyoci.spec.validate import validate

    bundle = "/nonexistent-bundle"
    try:
        config = parse_json(raw, "config.json")
        validate(config)
        planmod.build("fuzz", bundle, config, cache_dir=str(_cache_dir(tmp_path_factory)))
    except PyociError as e:
        assert str(e).strip(), f"{type(e).__name__} with no message"


_CACHE: list[Path] = []


def _cache_dir(factory: Any) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("seccomp-cache"))
    return _CACHE[0]


def _cgroup_needles(raw: bytes) -> list[str]:
    """The last part of a fuzzed cgroupsPath: where a leaked cgroup would be."""
    import json

    try:
        path = json.loads(raw)["linux"]["cgroupsPath"]
    except Exception:
        return []
    if not isinstance(path, str):
        return []
    last = path.replace(":", "/").rstrip("/").rsplit("/", 1)[-1]
    return [last] if len(last) >= 3 and last not in ("pyoci", "cgroup") else []


def create_once(raw: bytes, rootfs_template: Path, root: Path, tmp: Path,
                ) -> subprocess.CompletedProcess[str]:
    """``create`` on a bundle with config.json = ``raw``; assert the outcome is clean."""
    cid = rh.new_id("fz")
    bundle = tmp / f"{cid}-bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(rootfs_template), str(bundle / "rootfs")], check=True)
    rh.write_config(bundle, None, raw)
    snap = rh.Snapshot(root, needles=_cgroup_needles(raw))
    res = rh.pyoci("create", "--bundle", bundle, cid, root=root)
    assert "Traceback" not in res.stderr, rh.describe(res)
    if res.returncode == 0:
        deleted = rh.force_delete(cid, root)
        assert deleted.returncode == 0, rh.describe(deleted)
    else:
        assert rh.error_problems(res) == [], f"{rh.describe(res)}\nconfig: {raw[:3000]!r}"
    leaks = snap.problems(ids=[cid], bundles=[bundle])
    assert leaks == [], f"{rh.describe(res)}\nconfig: {raw[:3000]!r}"
    subprocess.run(["rm", "-rf", str(bundle)], check=True)
    return res


@settings(max_examples=CREATE_EXAMPLES, **COMMON)
@given(raw=raw_inputs(allow_host_root=False))
def test_create_succeeds_or_fails_cleanly(raw: bytes, rootfs_template: Path,
                                          pyoci_root: Path, tmp_path: Path) -> None:
    res = create_once(raw, rootfs_template, pyoci_root, tmp_path)
    # --hypothesis-show-statistics: how many examples got how far
    event("created" if res.returncode == 0 else f"refused: {res.stderr.split(':')[0][:40]}")


@pytest.mark.parametrize("raw", [
    b"",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"ociVersion": "1.3.0", "root": {"path": "rootfs"}, "process": {"cwd": "/", '
    b'"args": ["/probe", "exit", "0"], "user": {"uid": 1e400, "gid": 0}}}',
], ids=["empty", "deeply-nested", "uid-infinity"])
def test_known_hostile_bytes(raw: bytes, rootfs_template: Path, pyoci_root: Path,
                             tmp_path: Path) -> None:
    """The inputs that break naive JSON handling, always run (not left to chance)."""
    create_once(raw, rootfs_template, pyoci_root, tmp_path)
