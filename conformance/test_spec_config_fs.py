"""config.md: root, mounts, hostname and domainname."""

from __future__ import annotations

from pathlib import Path

import pytest

EROFS = 30


def mounts(text: str) -> list[list[str]]:
    """probe mounts: "<mountpoint> <fstype> <mount-opts> <super-opts> <propagation>"."""
    return [line.split() for line in text.splitlines() if line.strip()]


def test_root_readonly_true(probe) -> None:
    """config.md "Root / readonly": "If true then the root filesystem MUST be read-only"."""
    res = probe("touch", "/newfile", **{"root.readonly": True})
    assert res.returncode == 1 and res.stderr.strip() == f"errno={EROFS}", res.stderr


def test_root_readonly_false(probe) -> None:
    """config.md "Root / readonly" (default false): the root filesystem is writable."""
    res = probe("touch", "/newfile", **{"root.readonly": False})
    assert res.returncode == 0, res.stderr


def test_root_path_is_root(probe) -> None:
    """config.md "Root / path": "the path to the root filesystem for the container" -
    the process sees the bundle's rootfs as /."""
    res = probe("ls", "/")
    assert res.returncode == 0, res.stderr
    assert "probe" in res.stdout.split()


def test_mounts_in_order(probe) -> None:
    """config.md "Mounts": "The runtime MUST mount entries in the listed order" - a tmpfs
    mounted on a directory of an earlier tmpfs is visible on top of it."""
    extra = [
        {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/mnt/inner", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=2m"]},
    ]
    res = probe("mounts", mutate=lambda c: c["mounts"].extend(extra))
    assert res.returncode == 0, res.stderr
    points = [m[0] for m in mounts(res.stdout)]
    assert "/mnt" in points and "/mnt/inner" in points
    assert points.index("/mnt") < points.index("/mnt/inner")


def test_mount_options_applied(probe) -> None:
    """config.md "Mounts / options": "Mount options of the filesystem to be used" - ro,
    nosuid, noexec, nodev on a tmpfs."""
    extra = {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
             "options": ["ro", "nosuid", "noexec", "nodev", "size=1m"]}
    res = probe("mounts", mutate=lambda c: c["mounts"].append(extra))
    mnt = [m for m in mounts(res.stdout) if m[0] == "/mnt"]
    assert mnt, res.stdout
    opts = set(mnt[-1][2].split(","))
    assert {"ro", "nosuid", "noexec", "nodev"} <= opts


def test_bind_mount(probe, tmp_path: Path) -> None:
    """config.md "Mounts / source" with a bind mount ("bind"/"rbind" options): the host
    directory's files appear at the destination."""
    src = tmp_path / "shared"
    src.mkdir()
    (src / "hello.txt").write_text("from-host\n")
    extra = {"destination": "/data", "type": "bind", "source": str(src),
             "options": ["rbind", "ro"]}
    res = probe("cat", "/data/hello.txt", mutate=lambda c: c["mounts"].append(extra))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "from-host\n"


def test_bind_mount_ro_option(probe, tmp_path: Path) -> None:
    """config.md "Mounts / options": a bind mount with "ro" MUST be read-only
    (mount(8) option semantics)."""
    src = tmp_path / "ro"
    src.mkdir()
    extra = {"destination": "/data", "type": "bind", "source": str(src),
             "options": ["rbind", "ro"]}
    res = probe("touch", "/data/x", mutate=lambda c: c["mounts"].append(extra))
    assert res.returncode == 1 and res.stderr.strip() == f"errno={EROFS}"


def test_hostname(probe) -> None:
    """config.md "Hostname": "specifies the container's hostname as seen by processes
    running inside the container" (set in the container's UTS namespace)."""
    res = probe("hostname", hostname="conformance-host")
    assert res.stdout.strip() == "conformance-host"


@pytest.mark.deviation(runc="runc 1.1.5 ignores `domainname` (support arrived in runc 1.2)")
def test_domainname(probe) -> None:
    """config.md "Domainname": "specifies the container's domainname as seen by processes
    running inside the container"."""
    res = probe("domainname", domainname="conformance.example")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "conformance.example"
