"""Fixtures for the conformance suite: runtime-spec 1.3.0 checked against any runtime.

    cd conformance && sudo python -m pytest [--runtime /usr/sbin/runc] [--runtime-name NAME]

Every test drives the runtime only through its runc-style command line and
checks the result from inside the container with the static probe
(tests/probe/probe.c), or from the host. A documented spec deviation of a
particular runtime is declared with::

    @pytest.mark.deviation(runc="why runc breaks the clause", crun="...")

and turns into ``xfail(strict=True)`` for that runtime only, so a runtime
that gets fixed shows up as XPASS (a failure) and the marker must go.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import rt  # noqa: E402

REPO_ROOT = HERE.parent
PROBE_SOURCE = REPO_ROOT / "tests" / "probe" / "probe.c"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--runtime", default=None,
                    help="runtime binary under test (default: pyoci on PATH)")
    group.addoption("--runtime-name", default=None,
                    help="name used for deviation markers (default: the binary's basename)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deviation(**runtimes): the named runtimes knowingly break the clause this test "
        "checks (keyword = runtime name, value = why); xfail(strict=True) for those only")
    runtime = config.getoption("--runtime") or shutil.which("pyoci") or "pyoci"
    runtime = shutil.which(runtime) or runtime
    name = config.getoption("--runtime-name") or Path(runtime).name
    rt.configure(runtime, name)


def pytest_report_header(config: pytest.Config) -> str:
    return f"runtime under test: {rt.RUNTIME} (as {rt.NAME})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("deviation"):
            reason = mark.kwargs.get(rt.NAME)
            if reason:
                item.add_marker(pytest.mark.xfail(
                    strict=True, reason=f"spec deviation of {rt.NAME}: {reason}"))


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the conformance suite creates real containers: run it as root",
                    pytrace=False)


@pytest.fixture(scope="session")
def probe_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "probe"
    cmd = [os.environ.get("CC", "gcc"), "-static", "-O2", "-Wall", "-Werror",
           "-o", str(out), str(PROBE_SOURCE)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"building the probe failed:\n{res.stdout}{res.stderr}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory, probe_path: Path) -> Path:
    from pyoci.demo import DemoError, build_rootfs

    try:
        return build_rootfs(tmp_path_factory.mktemp("template") / "rootfs",
                            extra={"/probe": probe_path})
    except DemoError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def root() -> Iterator[Path]:
    """A private ``--root`` state directory; containers left in it are force-deleted."""
    path = Path(tempfile.mkdtemp(prefix="conf-root-"))
    yield path
    for cid in rt.list_ids(path):
        rt.call(path, "delete", "--force", cid, timeout=30)
    shutil.rmtree(path, ignore_errors=True)


MakeBundle = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs_template: Path) -> MakeBundle:
    """``make_bundle(args, mutate=fn, **dotted_overrides)`` -> a fresh bundle directory."""
    counter = iter(range(1_000_000))

    def make(args: list[str] | tuple[str, ...] = ("/probe", "id"), *,
             mutate: Callable[[dict[str, Any]], Any] | None = None,
             **overrides: Any) -> Path:
        cfg = rt.config(list(args), overrides, mutate)
        dest = tmp_path / f"bundle{next(counter)}"
        dest.mkdir()
        subprocess.run(["cp", "-a", str(rootfs_template), str(dest / "rootfs")], check=True)
        (dest / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
        return dest

    return make


@pytest.fixture
def container(root: Path, make_bundle: MakeBundle, tmp_path: Path) -> rt.Factory:
    """``container(args, **overrides)`` -> an ``rt.Container`` (not yet created)."""
    def make(args: list[str] | tuple[str, ...] = ("/probe", "sleep", "inf"), **kw: Any
             ) -> rt.Container:
        return rt.Container(root, make_bundle(args, **kw), tmp_path)

    return make


@pytest.fixture
def probe(root: Path, make_bundle: MakeBundle) -> Callable[..., subprocess.CompletedProcess]:
    """``probe("hostname", hostname="x")``: ``run`` ``/probe ...`` in the foreground."""
    def run(*args: str, mutate: Callable[[dict[str, Any]], Any] | None = None,
            timeout: float = 60, **overrides: Any) -> subprocess.CompletedProcess:
        bundle = make_bundle(["/probe", *args], mutate=mutate, **overrides)
        return rt.call(root, "run", "--bundle", str(bundle), rt.unique_id(), timeout=timeout)

    return run
