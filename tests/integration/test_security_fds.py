"""CVE-2024-21626 class: no host fd and no host cwd reach the container process.

runc leaked an fd to a host directory into the container's init; with
``process.cwd: /proc/self/fd/7`` the process started *in* that host directory
and walked ``../..`` to the host's root. Here every path in is checked: the
fds the process holds, its cwd, and cwds of the ``/proc/self/fd/N`` form,
for ``run`` and ``exec``, with and without an extra host fd handed to the
runtime by its caller. See SECURITY.md, "Leaked fds and cwd".
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration

MARKER = "HOST-MARKER-do-not-see"
# What a cwd in a host directory would list: the state dir, or the fd we hand in.
HOST_NAMES = ("state.marshal", "exec.fifo", MARKER)
FD_RANGE = range(3, 11)


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[int]:
    """An fd (not close-on-exec) to a host directory holding a marker file."""
    d = tmp_path / "hostdir"
    d.mkdir()
    (d / MARKER).write_text("secret\n")
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def _runtime(root: Path, *args: str | os.PathLike[str], pass_fds: tuple[int, ...] = (),
             host_fd: tuple[int, int] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Like helpers.run_pyoci, but handing the runtime extra open fds.

    ``host_fd=(have, want)`` starts the runtime with ``have`` open as fd ``want``
    (moved by a shell, so this process's own fd ``want`` is left alone).
    """
    cmd = [*helpers.runtime_command(), "--root", str(root), *map(os.fspath, args)]
    if host_fd is not None:
        have, want = host_fd
        move = f"{want}<&{have}" + (f" {have}<&-" if have != want else "")
        cmd = ["bash", "-c", f'exec "$@" {move}', "bash", *cmd]
        pass_fds = (*pass_fds, have)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          pass_fds=pass_fds, timeout=timeout)


def _assert_clean_fds(text: str) -> None:
    fds = helpers.parse_pairs(text)
    assert set(fds) == {"0", "1", "2"}, text
    for fd, target in fds.items():
        # A host path the process could use as a handle: it must not be a directory.
        assert not (target.startswith("/") and os.path.isdir(target)), (fd, target)


def _assert_not_host(res: subprocess.CompletedProcess[str]) -> None:
    """``/probe ls .`` either never ran or listed a container directory."""
    for name in HOST_NAMES:
        assert name not in res.stdout, (
            f"the container process started in a host directory (listed {name!r}):\n"
            f"{res.stdout}\n{res.stderr}")


@pytest.fixture
def running(make_bundle: Any, pyoci_root: Path) -> Iterator[str]:
    bundle = make_bundle(["/probe", "sleep", "inf"])
    with ch.created(bundle, pyoci_root) as cid:
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        yield cid


def test_run_sees_only_stdio(run_probe: Any) -> None:
    _assert_clean_fds(run_probe("fds", check=True).stdout)
    assert run_probe("cwd", check=True).stdout.strip() == "/"
    assert run_probe("readlink", "/proc/self/cwd", check=True).stdout.strip() == "/"
    assert run_probe("readlink", "/proc/1/cwd", check=True).stdout.strip() == "/"


def test_run_cwd_is_inside(run_probe: Any) -> None:
    out = run_probe("readlink", "/proc/self/cwd", check=True, **{"process.cwd": "/tmp"})
    assert out.stdout.strip() == "/tmp"


def test_exec_sees_only_stdio(running: str, pyoci_root: Path) -> None:
    def ex(*a: str, **kw: Any) -> str:
        return helpers.run_pyoci("exec", *kw.pop("flags", ()), running, "/probe", *a,
                                 root=pyoci_root, check=True).stdout
    _assert_clean_fds(ex("fds"))
    assert ex("cwd").strip() == "/"
    assert ex("readlink", "/proc/self/cwd").strip() == "/"
    assert ex("readlink", "/proc/self/cwd", flags=("--cwd", "/tmp")).strip() == "/tmp"


def test_run_does_not_pass_a_callers_fd(make_bundle: Any, pyoci_root: Path,
                                        host_dir: int) -> None:
    """An fd the caller left open (no --preserve-fds) never reaches the container."""
    res = _runtime(pyoci_root, "run", "--bundle", make_bundle(["/probe", "fds"]),
                   helpers.unique_id(), pass_fds=(host_dir,))
    assert res.returncode == 0, res.stderr
    _assert_clean_fds(res.stdout)


def test_exec_does_not_pass_a_callers_fd(running: str, pyoci_root: Path,
                                         host_dir: int) -> None:
    res = _runtime(pyoci_root, "exec", running, "/probe", "fds", pass_fds=(host_dir,))
    assert res.returncode == 0, res.stderr
    _assert_clean_fds(res.stdout)


@pytest.mark.parametrize("fd", FD_RANGE)
def test_run_cwd_proc_self_fd(fd: int, make_bundle: Any, pyoci_root: Path) -> None:
    """The runc attack: ``cwd: /proc/self/fd/N`` names whatever the runtime still has
    open when it changes directory (pyoci's own fds, e.g. the state dir)."""
    bundle = make_bundle(["/probe", "ls", "."], **{"process.cwd": f"/proc/self/fd/{fd}"})
    _assert_not_host(_runtime(pyoci_root, "run", "--bundle", bundle, helpers.unique_id()))


@pytest.mark.parametrize("fd", FD_RANGE)
def test_run_cwd_proc_self_fd_callers_fd(fd: int, make_bundle: Any, pyoci_root: Path,
                                         host_dir: int) -> None:
    """Same, with a host directory fd the caller leaked into the runtime."""
    bundle = make_bundle(["/probe", "ls", "."], **{"process.cwd": f"/proc/self/fd/{fd}"})
    _assert_not_host(_runtime(pyoci_root, "run", "--bundle", bundle, helpers.unique_id(),
                              host_fd=(host_dir, fd)))


@pytest.mark.parametrize("fd", FD_RANGE)
def test_exec_cwd_proc_self_fd(fd: int, running: str, pyoci_root: Path,
                               host_dir: int) -> None:
    """``exec --cwd /proc/self/fd/N``, with a host directory fd open at N in the caller."""
    _assert_not_host(_runtime(pyoci_root, "exec", "--cwd", f"/proc/self/fd/{fd}", running,
                              "/probe", "ls", ".", host_fd=(host_dir, fd)))
