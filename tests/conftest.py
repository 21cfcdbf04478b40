"""Fixtures for tests that run real containers.

The building blocks, cheapest first:

* ``probe_path`` - the static probe, compiled once per session.
* ``rootfs_template`` - a busybox rootfs with the probe at ``/probe``, built once.
* ``make_bundle(args, mutate=None, **overrides)`` - a fresh bundle per call.
* ``pyoci_root`` - a private ``--root`` that must be empty again after the test.
* ``run_probe(*probe_args, **overrides)`` - ``run`` one probe command in a container.

Tests under ``tests/integration`` are marked ``integration`` automatically.
Those need root, and fail (not skip) without it, so a CI job that lost its
privileges shows red instead of quietly testing nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# Explicit, so `import helpers` also works under --import-mode=importlib.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs real containers; needs root (fails, not skips, without)"
    )
    config.addinivalue_line("markers", "v2lane: needs a pure cgroup v2 host; run in the VM lane")
    config.addinivalue_line("markers", "vm: boots the cgroup v2 lane VM (qemu, minutes)")
    config.addinivalue_line(
        "markers", "systemdlane: needs systemd as PID 1; run in the systemd lane (tests/vm)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration, so nobody forgets the marker.

    tryfirst: the marks must exist before ``-m`` deselection looks at them.
    """
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
    # v2lane tests need a pure cgroup v2 host: they run inside the VM lane (whose runner,
    # tests/vm, is part of the normal run), and are deselected, not skipped, elsewhere.
    for mark in ("v2lane", "systemdlane"):
        if mark not in (config.getoption("markexpr", "") or ""):
            lane = [i for i in items if i.get_closest_marker(mark) is not None]
            if lane:
                config.hook.pytest_deselected(items=lane)
                items[:] = [i for i in items if i.get_closest_marker(mark) is None]


def require_root() -> None:
    """Fail the current test with the reason, rather than a confusing EPERM later."""
    if os.geteuid() != 0:
        pytest.fail("integration tests create namespaces, mounts and cgroups: run them as root "
                    "(e.g. sudo -E python -m pytest -m integration)", pytrace=False)


@pytest.fixture(autouse=True)
def _integration_needs_root(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("integration") is not None:
        require_root()


@pytest.fixture(scope="session")
def probe_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe binary, built with -Werror so a warning can't hide a bug in it."""
    try:
        return helpers.build_probe(tmp_path_factory.mktemp("probe"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory, probe_path: Path) -> Path:
    """The rootfs every bundle copies: busybox applets plus ``/probe``."""
    from pyoci.demo import DemoError, build_rootfs

    try:
        return build_rootfs(tmp_path_factory.mktemp("template") / "rootfs",
                            extra={"/probe": probe_path})
    except DemoError as exc:
        pytest.fail(str(exc), pytrace=False)


MakeBundle = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs_template: Path) -> MakeBundle:
    """Factory: ``make_bundle(["/probe", "hostname"], hostname="x")`` returns a bundle dir.

    Keyword overrides are deep-merged into runc's default config (dotted keys
    reach nested fields: ``**{"process.cwd": "/tmp"}``; ``helpers.DELETE``
    removes a key); ``mutate=fn`` then gets the whole dict for anything else.
    The namespaces stay runc's defaults (pid, network, ipc, uts, mount, cgroup).
    """
    counter = iter(range(1_000_000))

    def make(args: Sequence[str] = ("/probe", "id"), *,
             mutate: Callable[[dict[str, Any]], Any] | None = None,
             **overrides: Any) -> Path:
        cfg = helpers.bundle_config(args, overrides, mutate)
        return helpers.write_bundle(tmp_path / f"bundle{next(counter)}", rootfs_template, cfg)

    return make


def _container_dirs(root: Path) -> list[str]:
    """Container state dirs; dotfiles are the store's own (locks) and may stay."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def pyoci_root() -> Iterator[Path]:
    """A private ``--root``; the test fails if it leaves a container behind.

    Leftovers are force-deleted first, so one broken test doesn't leak
    processes, mounts or cgroups into the tests after it. The path is short
    (under /tmp) because runtimes put unix sockets in their state dirs.
    """
    require_root()
    root = Path(tempfile.mkdtemp(prefix="pyoci-root-"))
    try:
        yield root
    finally:
        leftovers = _container_dirs(root)
        problems = []
        for cid in leftovers:
            try:
                res = helpers.run_pyoci("delete", "--force", cid, root=root, timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{cid}: delete --force timed out")
                continue
            if res.returncode != 0:
                problems.append(f"{cid}: delete --force failed: {res.stderr.strip()}")
        remaining = _container_dirs(root)
        if not remaining:
            shutil.rmtree(root, ignore_errors=True)
        if leftovers:
            detail = "; ".join(problems) or "force-deleted"
            pytest.fail(f"containers left in {root}: {', '.join(leftovers)} ({detail}); "
                        f"still present: {remaining or 'none'}", pytrace=False)


RunProbe = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_probe(make_bundle: MakeBundle, pyoci_root: Path) -> RunProbe:
    """``run_probe("hostname", hostname="x")``: ``run`` ``/probe hostname`` in the foreground.

    Returns the CompletedProcess of ``run`` (the container's exit status and
    output). ``check=True`` raises with stderr when the status is not zero.
    """
    def run(*probe_args: str, check: bool = False, timeout: float = 60,
            mutate: Callable[[dict[str, Any]], Any] | None = None,
            **overrides: Any) -> subprocess.CompletedProcess[str]:
        bundle = make_bundle(["/probe", *probe_args], mutate=mutate, **overrides)
        return helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(),
                                 root=pyoci_root, timeout=timeout, check=check)

    return run


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A 0755 directory for bundles: pytest's tmp dirs are 0700, which a uid-shifted
    container root (a user namespace) can't traverse."""
    d = Path(tempfile.mkdtemp(prefix="pyoci-open-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


@pytest.fixture
def console_listener() -> Iterator[tuple[str, socket.socket]]:
    """An AF_UNIX listener for --console-socket, at a short path (sun_path is 108 bytes)."""
    d = tempfile.mkdtemp(prefix="pyoci-cs-")
    path = os.path.join(d, "console.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    try:
        yield path, sock
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(d)
