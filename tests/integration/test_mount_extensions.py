"""Mount extensions pyoci implements beyond the kernel flags: tmpcopyup."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_tmpcopyup_fills_the_tmpfs_with_the_image_contents(run_probe: Any) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                              "options": ["tmpcopyup", "mode=755"]})

    res = run_probe("ls", "/etc", mutate=mutate, check=True)
    assert "passwd" in res.stdout.split()
    mounts = run_probe("mounts", mutate=mutate, check=True).stdout
    assert any(line.split()[:2] == ["/etc", "tmpfs"] for line in mounts.splitlines())


def test_plain_tmpfs_starts_empty(run_probe: Any) -> None:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                              "options": ["mode=755"]})

    assert run_probe("ls", "/etc", mutate=mutate, check=True).stdout == ""
