"""create: the default /dev, linux.devices, and the /dev symlinks."""

from __future__ import annotations

from typing import Any

import helpers
import pytest

pytestmark = pytest.mark.integration

DEFAULT_DEVICES = {
    "/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7",
    "/dev/random": "1:8", "/dev/urandom": "1:9", "/dev/tty": "5:0",
}


def _stat_all(run_probe: Any, paths: list[str], **kw: Any) -> dict[str, dict[str, str]]:
    script = " && ".join(f"/probe stat {p}" for p in paths)
    res = run_probe(check=True, mutate=lambda c: c["process"].update(
        args=["/bin/sh", "-c", script]), **kw)
    lines = res.stdout.splitlines()
    assert len(lines) == len(paths), res.stdout
    return {p: helpers.parse_kv(line) for p, line in zip(paths, lines, strict=True)}


def test_default_devices(run_probe: Any) -> None:
    got = _stat_all(run_probe, list(DEFAULT_DEVICES))
    for path, rdev in DEFAULT_DEVICES.items():
        assert got[path]["type"] == "chr", (path, got[path])
        assert got[path]["rdev"] == rdev, (path, got[path])
        assert got[path]["mode"] == "0666", (path, got[path])


def test_default_devices_are_usable(run_probe: Any) -> None:
    res = run_probe(check=True, mutate=lambda c: c["process"].update(args=[
        "/bin/sh", "-c", "echo gone > /dev/null && head -c 4 /dev/zero | wc -c"]))
    assert res.stdout.strip() == "4"


def test_linux_devices(run_probe: Any) -> None:
    devices = [
        {"path": "/dev/mychar", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/myblock", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600,
         "uid": 0, "gid": 6},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "uid": 12, "gid": 13},
    ]
    got = _stat_all(run_probe, [d["path"] for d in devices],
                    **{"linux.devices": devices})
    assert got["/dev/mychar"] == {"type": "chr", "mode": "0640", "uid": "1000",
                                       "gid": "1001", "rdev": "1:3"}
    assert got["/dev/sub/myblock"] == {"type": "blk", "mode": "0600", "uid": "0", "gid": "6",
                                       "rdev": "7:200"}
    assert {k: got["/dev/myfifo"][k] for k in ("type", "mode", "uid", "gid")} == {
        "type": "fifo", "mode": "0620", "uid": "12", "gid": "13"}


def test_dev_symlinks(run_probe: Any) -> None:
    links = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
             "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2",
             "/dev/ptmx": "pts/ptmx"}
    script = " && ".join(f"/probe readlink {p}" for p in links)
    res = run_probe(check=True, mutate=lambda c: c["process"].update(
        args=["/bin/sh", "-c", script]))
    assert res.stdout.splitlines() == list(links.values())


def test_dev_pts_is_devpts(run_probe: Any) -> None:
    mounts = {m.target: m for m in helpers.parse_mounts(run_probe("mounts", check=True).stdout)}
    assert mounts["/dev/pts"].fstype == "devpts"
    # /dev/pts/ptmx is the instance's own multiplexer (5:2), world-usable via ptmxmode=0666.
    st = helpers.parse_kv(run_probe("stat", "/dev/pts/ptmx", check=True).stdout)
    assert (st["type"], st["rdev"], st["mode"]) == ("chr", "5:2", "0666")
