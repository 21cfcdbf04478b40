"""Bind-mount sources are opened by the runtime as host root, before any user namespace.

A source under a directory that only host root may traverse (0700) must bind in a
container with a user namespace, as it does with runc and crun; a source that can't be
opened fails ``create`` with the real errno, the path, and nothing left behind.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A root-owned 0700 directory: the container's root (host uid 100000) can't enter it."""
    d = Path(tempfile.mkdtemp(prefix="pyoci-private-"))
    d.chmod(0o700)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


def _bundle(open_dir: Path, rootfs_template: Path, args: list[str], mounts: list[dict[str, Any]],
            userns: bool) -> Path:
    def mutate(cfg: dict[str, Any]) -> None:
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = MAP
            cfg["linux"]["gidMappings"] = MAP
        cfg["mounts"].extend(mounts)

    cfg = helpers.bundle_config(args, mutate=mutate)
    bundle = helpers.write_bundle(open_dir / f"bundle-{helpers.unique_id()}", rootfs_template,
                                  cfg)
    for m in mounts:  # the rootfs is host root's: a shifted root couldn't make them
        dest = bundle / "rootfs" / m["destination"].lstrip("/")
        if m["destination"].endswith("file"):
            dest.touch()
        else:
            dest.mkdir(exist_ok=True)
    return bundle


def _sources(private_dir: Path) -> tuple[Path, Path]:
    src = private_dir / "src"
    src.mkdir(mode=0o755)
    (src / "hello").write_text("from a private dir\n")
    one = private_dir / "one-file"
    one.write_text("one file\n")
    one.chmod(0o644)
    return src, one


@pytest.mark.parametrize("userns", [True, False], ids=["userns", "no-userns"])
def test_sources_under_a_0700_dir(open_dir: Path, rootfs_template: Path, pyoci_root: Path,
                                  private_dir: Path, userns: bool) -> None:
    src, one = _sources(private_dir)
    mounts = [{"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind"]},
              {"destination": "/etc/one-file", "type": "bind", "source": str(one),
               "options": ["bind", "ro"]}]
    bundle = _bundle(open_dir, rootfs_template,
                     ["/bin/sh", "-c", "/probe cat /data/hello; /probe cat /etc/one-file"],
                     mounts, userns)
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    assert res.stdout == "from a private dir\none file\n"


def test_options_apply_to_a_private_source_in_userns(open_dir: Path, rootfs_template: Path,
                                                     pyoci_root: Path, private_dir: Path) -> None:
    """ro/nosuid/nodev/noexec and propagation still land on the mount the runtime opened."""
    src, _ = _sources(private_dir)
    mounts = [{"destination": "/data", "type": "bind", "source": str(src),
               "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"]},
              {"destination": "/rw", "type": "bind", "source": str(src),
               "options": ["bind", "rw", "nosuid", "runbindable"]}]
    bundle = _bundle(open_dir, rootfs_template,
                     ["/bin/sh", "-c", "/probe mounts; /probe mkdir /data/x"], mounts, True)
    res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root)
    assert (res.returncode, res.stderr) == (1, "errno=30\n"), (res.stdout, res.stderr)
    by = {m.target: m for m in helpers.parse_mounts(res.stdout)}
    assert {"ro", "nosuid", "nodev", "noexec"} <= by["/data"].options, by["/data"]
    assert by["/data"].propagation == "private", by["/data"]
    assert "rw" in by["/rw"].options and "nosuid" in by["/rw"].options, by["/rw"]
    assert by["/rw"].propagation == "unbindable", by["/rw"]
    assert list(src.iterdir()) == [src / "hello"]


@pytest.mark.parametrize(("option", "visible"), [("bind", False), ("rbind", True)])
def test_bind_vs_rbind_of_a_private_source_in_userns(open_dir: Path, rootfs_template: Path,
                                                     pyoci_root: Path, private_dir: Path,
                                                     option: str, visible: bool) -> None:
    top = private_dir / "tree"
    (top / "sub").mkdir(parents=True)
    top.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(top / "sub")], check=True)
    try:
        (top / "sub" / "in-submount").write_text("x")
        bundle = _bundle(open_dir, rootfs_template, ["/probe", "ls", "/tree/sub"],
                         [{"destination": "/tree", "type": "bind", "source": str(top),
                           "options": [option]}], True)
        res = helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(),
                                root=pyoci_root, check=True)
    finally:
        subprocess.run(["umount", "-l", str(top / "sub")], check=False)
    assert ("in-submount" in res.stdout) is visible, res.stdout


@pytest.mark.parametrize("userns", [True, False], ids=["userns", "no-userns"])
@pytest.mark.parametrize(("name", "error"), [
    ("missing", "no such file or directory"),
    ("a-file/below", "not a directory"),
    ("loop", "too many levels of symbolic links"),
])
def test_unopenable_source_fails_with_its_errno(open_dir: Path, rootfs_template: Path,
                                                pyoci_root: Path, private_dir: Path,
                                                userns: bool, name: str, error: str) -> None:
    (private_dir / "a-file").write_text("")
    (private_dir / "loop").symlink_to("loop")
    source = private_dir / name
    bundle = _bundle(open_dir, rootfs_template, ["/probe", "id"],
                     [{"destination": "/data", "type": "bind", "source": str(source),
                       "options": ["rbind"]}], userns)
    cid, res = ch.create(bundle, pyoci_root, check=False)
    ch.assert_one_line_error(res, str(source), error)
    ch.assert_nothing_left(pyoci_root, cid)


@pytest.mark.parametrize("mode", ["userns", "no-userns", "idmapped"])
def test_shared_source_becomes_a_slave(open_dir: Path, rootfs_template: Path,
                                       pyoci_root: Path, private_dir: Path, mode: str) -> None:
    """A bind of a shared host mount receives the host's later mounts and sends none back:
    the runtime's copy (plain or idmapped) must not join the host's peer group."""
    shared = private_dir / "shared"
    shared.mkdir(mode=0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        (shared / "sub").mkdir()
        bundle = _bundle(open_dir, rootfs_template,
                         ["/bin/sh", "-c", "/probe mounts; /probe ls /data/sub"],
                         [{"destination": "/data", "type": "bind", "source": str(shared),
                           "options": ["rbind"],
                           **({"uidMappings": MAP, "gidMappings": MAP}
                              if mode == "idmapped" else {})}], mode != "no-userns")
        out = open_dir / "out"
        with ch.created(bundle, pyoci_root, stdout=out) as cid:
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(shared / "sub")], check=True)
            (shared / "sub" / "mounted-later").write_text("")
            ch.run_to_stop(cid, pyoci_root)
        text = out.read_text()
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared)], check=False)
    data = {m.target: m for m in helpers.parse_mounts(text)}["/data"]
    assert data.propagation.startswith("master:"), data
    assert "shared:" not in data.propagation, data
    assert "mounted-later" in text, text
