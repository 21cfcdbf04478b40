"""podman's security options, driving pyoci, checked from inside the container.

Uses the private podman setup of ``podman_env`` (its own storage, config and
temp dirs); every container is ``run --rm``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import podman_env
from podman_env import IMAGE, PodmanEnv

DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")


@pytest.fixture(scope="module")
def podman(rootfs_template: Path) -> Iterator[PodmanEnv]:
    with podman_env.podman_env(rootfs_template) as env:
        yield env


@pytest.fixture
def pm(podman: PodmanEnv) -> Iterator[PodmanEnv]:
    """``podman``, checked after each test: no container or runtime state left."""
    yield from podman_env.checked(podman)


def caps(pm: PodmanEnv, *opts: str) -> dict[str, str]:
    res = pm.run(*opts, IMAGE, "/probe", "caps")
    assert res.returncode == 0, res.stderr
    return helpers.parse_status(res.stdout)


def test_cap_drop_all_add_chown(pm: PodmanEnv) -> None:
    st = caps(pm, "--cap-drop=all", "--cap-add=CHOWN")
    assert helpers.cap_set(st["CapEff"]) == {0}, st
    assert helpers.cap_set(st["CapPrm"]) == {0}, st
    assert helpers.cap_set(st["CapBnd"]) == {0}, st


def test_default_caps_are_not_everything(pm: PodmanEnv) -> None:
    """The contrast: podman's default set has CHOWN and more, but not SYS_ADMIN (21)."""
    eff = helpers.cap_set(caps(pm)["CapEff"])
    assert 0 in eff and len(eff) > 1, eff
    assert 21 not in eff, eff


def test_no_new_privileges(pm: PodmanEnv) -> None:
    assert caps(pm, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"


def test_new_privileges_allowed_by_default(pm: PodmanEnv) -> None:
    assert caps(pm)["NoNewPrivs"] == "0"


def test_custom_oci_seccomp_profile(pm: PodmanEnv) -> None:
    profile = pm.base / "deny-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))
    res = pm.run("--security-opt", f"seccomp={profile}", IMAGE, "/probe", "mkdir", "/tmp/x")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "errno=1" in res.stderr.splitlines(), res.stderr
    # Without the profile the same command works.
    res = pm.run(IMAGE, "/probe", "mkdir", "/tmp/x")
    assert res.returncode == 0, res.stderr


def test_default_seccomp_profile(pm: PodmanEnv) -> None:
    res = pm.run(IMAGE, "/probe", "mkdir", "/tmp/x")
    assert res.returncode == 0, res.stderr
    st = caps(pm, "--security-opt", f"seccomp={DEFAULT_PROFILE}")
    assert st["Seccomp"] == "2", st
    assert caps(pm)["Seccomp"] == "2"


def test_seccomp_unconfined(pm: PodmanEnv) -> None:
    assert caps(pm, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"


def test_user(pm: PodmanEnv) -> None:
    res = pm.run("--user", "1000:1000", IMAGE, "/probe", "id")
    assert res.returncode == 0, res.stderr
    ids = helpers.parse_kv(res.stdout)
    assert (ids["uid"], ids["gid"]) == ("1000", "1000"), res.stdout
    res = pm.run("--user", "1000:1000", IMAGE, "id")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:2] == ["uid=1000(1000)", "gid=1000(1000)"], res.stdout


def test_user_drops_effective_caps(pm: PodmanEnv) -> None:
    """A non-root user gets no effective capabilities from podman's default set."""
    st = caps(pm, "--user", "1000:1000")
    assert helpers.cap_set(st["CapEff"]) == set(), st
