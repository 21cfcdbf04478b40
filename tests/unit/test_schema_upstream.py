"""Cross-check our fixtures against the upstream runtime-spec schema Debian ships.

Our schema is written from the spec text, not copied; this test keeps the two
honest against each other for the fields both know. Debian's
golang-github-opencontainers-specs-dev carries the 1.0.x schema, so only
fixtures named ``v10-*`` (which use 1.0 fields only) are checked. A missing
schema is a failure, not a skip: CI installs the package, and a silently
skipped cross-check is worse than none.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

UPSTREAM = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")
FIXTURES = Path(__file__).parent / "test_validate" / "valid"
V10 = sorted(FIXTURES.glob("v10-*.json"))


@functools.cache
def _upstream_validator() -> Any:
    """Draft-04 validator with every upstream file registered under its file:// URI.

    The upstream files have no ``id`` and use relative refs (``defs.json#/...``),
    so each resource must live at its real file URI for those refs to resolve.
    """
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    main = UPSTREAM / "config-schema.json"
    assert main.is_file(), (
        f"upstream schema missing: {main} "
        "(apt-get install golang-github-opencontainers-specs-dev)")
    registry: Registry = Registry()
    for f in UPSTREAM.glob("*.json"):
        contents = json.loads(f.read_text())
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        registry = registry.with_resource(f.as_uri(), resource)
    return Draft4Validator({"$ref": main.as_uri()}, registry=registry)


def test_there_are_v10_fixtures() -> None:
    assert len(V10) >= 5


@pytest.mark.parametrize("path", V10, ids=lambda p: p.stem)
def test_v10_fixture_passes_upstream_schema(path: Path) -> None:
    doc = json.loads(path.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in _upstream_validator().iter_errors(doc)]
    assert errors == []


def test_upstream_schema_rejects_garbage() -> None:
    """Guard against a registry mix-up that would make every document pass."""
    errors = list(_upstream_validator().iter_errors({"ociVersion": 1, "process": {"cwd": 5}}))
    assert errors
