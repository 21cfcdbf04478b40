"""Small helpers shared by the ``test_create_*`` integration tests.

They speak runc's command line through ``helpers.run_pyoci``, so every test
also runs against ``PYOCI_TEST_RUNTIME=/usr/sbin/runc``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers


def create(bundle: Path, root: Path, cid: str | None = None, *extra: str,
           check: bool = True, **kw: Any) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``create --bundle B [extra] ID``; returns the id and the result."""
    cid = cid or helpers.unique_id()
    res = helpers.run_pyoci("create", "--bundle", bundle, *extra, cid, root=root,
                            check=check, **kw)
    return cid, res


MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")


def memory_cgroup(pid: int) -> Path:
    """The v1 memory cgroup directory ``pid`` is in."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return MEMORY_CGROUP / path.lstrip("/")
    raise AssertionError(f"no memory cgroup for {pid}")


def receive_console(sock: socket.socket) -> int:
    """Accept one connection; exactly one message with exactly one fd and a payload."""
    sock.settimeout(10)
    conn, _ = sock.accept()
    with conn:
        conn.settimeout(10)
        msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, fds
        assert msg, "empty payload"
        rest = conn.recv(4096)  # the runtime sends nothing else and hangs up
        assert rest == b"", rest
    return fds[0]


def force_delete(cid: str, root: Path) -> None:
    helpers.run_pyoci("delete", "--force", cid, root=root, timeout=30)


@contextlib.contextmanager
def created(bundle: Path, root: Path, *extra: str, **kw: Any) -> Iterator[str]:
    """A created container, force-deleted on the way out."""
    cid, _ = create(bundle, root, None, *extra, **kw)
    try:
        yield cid
    finally:
        force_delete(cid, root)


def run_to_stop(cid: str, root: Path) -> None:
    """``start`` a created container and wait until it has exited."""
    helpers.run_pyoci("start", cid, root=root, check=True)
    helpers.wait_for_status(cid, root, "stopped")


def container_dirs(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def listed_ids(root: Path) -> list[str]:
    """Ids shown by ``list -q``."""
    res = helpers.run_pyoci("list", "-q", root=root, check=True)
    return res.stdout.split()


def assert_nothing_left(root: Path, cid: str) -> None:
    """No state dir, no ``list`` entry and no runtime process for ``cid``."""
    assert container_dirs(root) == [], f"left under --root: {container_dirs(root)}"
    assert cid not in listed_ids(root)
    assert runtime_processes(root) == [], runtime_processes(root)


def assert_one_line_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 1 with exactly one non-empty line on stderr, containing each needle."""
    assert res.returncode == 1, (res.returncode, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def runtime_processes(root: Path, exclude: int = 0) -> list[tuple[int, str]]:
    """Live processes whose command line names this ``--root`` (the runtime itself).

    ``exclude`` is the container's init: before ``start`` execs the user's
    process it may still carry the runtime's argv (a forked pyoci does).
    """
    out = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, exclude):
            continue
        line = cmdline(int(entry))
        if str(root) in line:
            out.append((int(entry), line))
    return out


def ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def gone(pid: int) -> bool:
    """The process has exited (no /proc entry, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def ns_inode(pid: int | str, name: str) -> str:
    """``net:[4026531840]`` for /proc/PID/ns/NAME (PID may be ``self``)."""
    return os.readlink(f"/proc/{pid}/ns/{name}")


def host_ns(name: str) -> str:
    return ns_inode("self", name)


def read_when(path: Path, predicate: Any = bool, what: str = "output") -> str:
    """Wait until ``path`` exists and its text satisfies ``predicate``; return the text."""
    def get() -> str | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return text if predicate(text) else None
    return helpers.wait_for(get, what=f"{what} in {path}")


def is_mountpoint(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0
