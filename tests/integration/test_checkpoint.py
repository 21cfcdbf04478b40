"""checkpoint / restore through CRIU: a counting busybox loop goes on where it was.

CRIU 3.17 fails its own ``criu check`` on this host's kernel, so the tests that
need a working CRIU are ``v2lane``: they run in the VM lane (Debian's 6.1
kernel; the bundles live on its /tmp tmpfs). ``PYOCI_TEST_RUNTIME=/usr/sbin/runc``
runs the same tests against runc, to show they are sound. The two tests that
are not marked run on both sides and check that pyoci's behaviour follows
``criu check``: the one-line failure where CRIU can't work, ``features``.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import helpers
import pytest

pytestmark = [pytest.mark.integration]

# Prints 0, 1, 2, ... one a line: a restore that lost memory would start again at 0
# or repeat, one that lost the process would print nothing.
COUNTER = ["/bin/sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done"]


_STDIN_WRITERS: list[int] = []


@pytest.fixture(autouse=True)
def _close_stdin_writers() -> Any:
    yield
    while _STDIN_WRITERS:
        os.close(_STDIN_WRITERS.pop())


def _criu_check() -> str | None:
    res = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=120)
    return None if res.returncode == 0 else res.stderr + res.stdout


def _runtime(root: Path, *args: Any, stdout: Any = None, timeout: float = 120,
             check: bool = True, log_file: bool = True) -> subprocess.CompletedProcess[str]:
    """The runtime with pipes as the stdio the container inherits: ``stdout`` (a
    fd) and a stdin pipe nobody writes to. CRIU can only dump stdio it can reach
    or that restore hands back (pipes): a host /dev/null stdin fails with runc too,
    and runc's own tests use pipes for the same reason."""
    import tempfile

    log = tempfile.NamedTemporaryFile(prefix="rt-log-")
    cmd = [*helpers.runtime_command(), "--root", os.fspath(root),
           *(["--log", log.name] if log_file else []), *map(os.fspath, args)]
    in_r, in_w = os.pipe()
    try:
        with log, tempfile_() as err:
            out = stdout if stdout is not None else err
            # The container's stderr too must be a pipe; the runtime's errors go to --log.
            proc = subprocess.run(cmd, stdin=in_r, stdout=out, stderr=out, timeout=timeout,
                                  env=helpers._runtime_env(cmd, None))
            err.seek(0)
            text = err.read().decode(errors="replace") + log.read().decode(errors="replace")
    finally:
        os.close(in_r)
        _STDIN_WRITERS.append(in_w)  # open while the container may read it
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {proc.returncode}: {text}{_criu_log(args)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, "", text)


def _criu_log(args: tuple[Any, ...]) -> str:
    """The end of CRIU's log in the work/image dir, to see why a step failed."""
    for flag in ("--work-path", "--image-path"):
        if flag in args:
            d = Path(args[list(args).index(flag) + 1])
            for name in ("dump.log", "restore.log"):
                if (d / name).exists():
                    lines = (d / name).read_text(errors="replace").splitlines()
                    return f"\n--- {d / name}:\n" + "\n".join(lines[-40:])
    return ""


def tempfile_() -> Any:
    import tempfile

    return tempfile.TemporaryFile()


class Lines:
    """Numbers read from a pipe or pty master, with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.seen: list[int] = []

    def _fill(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: a pty's slave side is gone
            data = b""
        if not data:
            return False
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        self.seen += [int(x) for x in (ln.strip() for ln in done) if x.isdigit()]
        return True

    def wait_count(self, n: int, timeout: float = 60) -> list[int]:
        """Read until ``n`` more numbers arrived; return the new ones."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while len(self.seen) - start < n:
            assert time.monotonic() < deadline, f"only {self.seen[start:]} within {timeout}s"
            assert self._fill(0.5), f"EOF after {self.seen[start:]}"
        return self.seen[start:]

    def available(self) -> list[int]:
        """Read whatever the pipe holds now, without waiting for more."""
        while self._fill(0):
            ready, _, _ = select.select([self.fd], [], [], 0)
            if not ready:
                break
        return self.seen

    def drain(self, timeout: float = 60) -> list[int]:
        """Read to EOF (the writer is gone)."""
        deadline = time.monotonic() + timeout
        while self._fill(0.5):
            assert time.monotonic() < deadline, f"no EOF within {timeout}s: {self.seen[-5:]}"
        return self.seen


def _start_counter(root: Path, bundle: Path, cid: str) -> tuple[Lines, int]:
    r, w = os.pipe()
    try:
        _runtime(root, "run", "-d", "--bundle", bundle, cid, stdout=w)
    finally:
        os.close(w)
    lines = Lines(r)
    lines.wait_count(3)
    return lines, r


def _restore(root: Path, bundle: Path, cid: str, image: Path, tmp: Path,
             *extra: Any) -> tuple[Lines, int, int]:
    r, w = os.pipe()
    pid_file = tmp / f"{cid}.pid"
    try:
        _runtime(root, "restore", "-d", "--bundle", bundle, "--image-path", image,
                 "--pid-file", pid_file, *extra, cid, stdout=w)
    finally:
        os.close(w)
    return Lines(r), r, int(pid_file.read_text())


def _assert_lifecycle(root: Path, cid: str, pid: int) -> None:
    """A restored container is a container: state, exec, kill, delete."""
    st = helpers.state(cid, root)
    assert st["status"] == "running" and st["pid"] == pid, st
    res = helpers.run_pyoci("exec", cid, "/bin/cat", "/proc/1/cmdline", root=root, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "i=0; while" in res.stdout  # exec joined the restored pid namespace
    helpers.run_pyoci("kill", cid, "KILL", root=root, check=True)
    helpers.wait_for_status(cid, root, "stopped", timeout=30)
    helpers.run_pyoci("delete", cid, root=root, check=True)
    assert helpers.run_pyoci("state", cid, root=root).returncode != 0


@pytest.mark.v2lane
def test_checkpoint_counter_goes_on(make_bundle: Any, pyoci_root: Path, tmp_path: Path) -> None:
    """checkpoint (which stops the container), restore: the count resumes at the next number."""
    bundle = make_bundle(COUNTER)
    cid = helpers.unique_id()
    lines, r = _start_counter(pyoci_root, bundle, cid)
    image = tmp_path / "image"
    try:
        _runtime(pyoci_root, "checkpoint", "--image-path", image, cid)
        before = lines.drain()  # the checkpoint killed the writer
    finally:
        os.close(r)
    assert before == list(range(len(before))), before[-5:]
    # As runc: a checkpointed container is gone.
    assert helpers.run_pyoci("state", cid, root=pyoci_root).returncode != 0
    after, r2, pid = _restore(pyoci_root, bundle, cid, image, tmp_path)
    try:
        got = after.wait_count(3)
        assert got[0] == before[-1] + 1, (before[-3:], got)
        assert got == list(range(got[0], got[0] + len(got)))
        _assert_lifecycle(pyoci_root, cid, pid)
    finally:
        os.close(r2)


@pytest.mark.v2lane
def test_checkpoint_leave_running_restore_new_id(make_bundle: Any, pyoci_root: Path,
                                                  tmp_path: Path) -> None:
    """--leave-running: the container goes on; its image restores under another id."""
    bundle = make_bundle(COUNTER)
    cid = helpers.unique_id()
    lines, r = _start_counter(pyoci_root, bundle, cid)
    image = tmp_path / "image"
    try:
        low = lines.seen[-1]
        _runtime(pyoci_root, "checkpoint", "--leave-running", "--image-path", image, cid)
        lines.available()  # all it printed up to the dump, and maybe more
        high = lines.wait_count(3)[-1]  # still counting
        assert helpers.state(cid, pyoci_root)["status"] == "running"
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
    finally:
        os.close(r)
    new = helpers.unique_id()
    after, r2, pid = _restore(pyoci_root, bundle, new, image, tmp_path)
    try:
        got = after.wait_count(3)
        # Where the dump caught it: after what was read before it, no later than
        # the next number after all that was printed by the time it returned.
        assert low < got[0] <= high + 1, (low, got, high)
        assert got == list(range(got[0], got[0] + len(got)))
        _assert_lifecycle(pyoci_root, new, pid)
    finally:
        os.close(r2)


def _pre_dump_then_dump(root: Path, bundle: Path, cid: str, tmp: Path,
                        *dump_flags: str) -> tuple[Path, list[int]]:
    """Start the counter, ``--pre-dump`` it (it runs on), then dump on top of that with
    ``--parent-path`` and ``dump_flags``; return the dump's dir and the numbers printed."""
    lines, r = _start_counter(root, bundle, cid)
    pre, final = tmp / "pre", tmp / "final"
    try:
        _runtime(root, "checkpoint", "--pre-dump", "--image-path", pre, cid)
        assert any(p.name.startswith("pagemap") for p in pre.iterdir()), list(pre.iterdir())
        lines.wait_count(2)
        assert helpers.state(cid, root)["status"] == "running"
        _runtime(root, "checkpoint", "--image-path", final, "--parent-path", "../pre",
                 *dump_flags, cid)
        return final, lines.drain()
    finally:
        os.close(r)


@pytest.mark.v2lane
def test_checkpoint_pre_dump_then_dump(make_bundle: Any, pyoci_root: Path,
                                       tmp_path: Path) -> None:
    """--pre-dump leaves it running; the dump on top (--parent-path) restores."""
    bundle = make_bundle(COUNTER)
    cid = helpers.unique_id()
    final, before = _pre_dump_then_dump(pyoci_root, bundle, cid, tmp_path)
    assert (final / "parent").is_symlink()
    after, r2, pid = _restore(pyoci_root, bundle, cid, final, tmp_path)
    try:
        got = after.wait_count(3)
        assert got[0] == before[-1] + 1, (before[-3:], got)
        _assert_lifecycle(pyoci_root, cid, pid)
    finally:
        os.close(r2)


@pytest.mark.v2lane
def test_checkpoint_auto_dedup_and_cgroup_modes(make_bundle: Any, pyoci_root: Path,
                                                tmp_path: Path) -> None:
    """``--auto-dedup`` on the dump over a pre-dump, ``--manage-cgroups-mode`` on both
    sides (``soft`` dumping, ``ignore`` restoring, so CRIU leaves cgroups to the runtime):
    the count goes on, and the restored init is in the container's cgroup with its limit."""
    cid = helpers.unique_id()
    bundle = make_bundle(COUNTER, **{"linux.resources": {"memory": {"limit": 256 << 20}},
                                     "linux.cgroupsPath": f"/ckpt/{cid}"})
    final, before = _pre_dump_then_dump(pyoci_root, bundle, cid, tmp_path, "--auto-dedup",
                                        "--manage-cgroups-mode", "soft")
    after, r2, pid = _restore(pyoci_root, bundle, cid, final, tmp_path,
                              "--manage-cgroups-mode", "ignore")
    try:
        got = after.wait_count(3)
        assert got[0] == before[-1] + 1, (before[-3:], got)
        cgroup = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
        assert cgroup == f"/ckpt/{cid}", cgroup
        assert (Path("/sys/fs/cgroup") / cgroup.lstrip("/") / "memory.max").read_text() == \
            f"{256 << 20}\n"
        _assert_lifecycle(pyoci_root, cid, pid)
    finally:
        os.close(r2)


def test_checkpoint_bad_flags_are_refused_before_criu(make_bundle: Any, pyoci_root: Path,
                                                       tmp_path: Path) -> None:
    """An unknown ``--manage-cgroups-mode`` or ``--empty-ns`` namespace is refused before
    CRIU runs (so on any host): the container runs on, no image directory is made."""
    bundle = make_bundle(["/probe", "sleep", "600"])
    cid = helpers.unique_id()
    helpers.run_pyoci("run", "-d", "--bundle", bundle, cid, root=pyoci_root, check=True,
                      timeout=60)
    is_runc = "runc" in helpers.runtime_command()[0]
    try:
        for flags, words in ((("--manage-cgroups-mode", "bogus"),
                              ("invalid manage cgroups mode",)),
                             (("--empty-ns", "ipc"), ("namespace", "ipc", "not supported"
                                                      if is_runc else "isn't supported"))):
            image = tmp_path / f"image-{flags[0].strip('-')}"
            res = _runtime(pyoci_root, "checkpoint", *flags, "--image-path", image, cid,
                           check=False)
            assert res.returncode != 0
            assert all(w in res.stderr.lower() for w in words), (flags, res.stderr)
            assert helpers.state(cid, pyoci_root)["status"] == "running"
            if not is_runc:  # runc 1.1.5 makes the image directory first
                assert not image.exists()
    finally:
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)


def _recv_master(listener: socket.socket, timeout: float = 60) -> int:
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    assert fds, "no fd on the console socket"
    return fds[0]


@pytest.mark.v2lane
def test_checkpoint_tty_console_socket(make_bundle: Any, pyoci_root: Path, tmp_path: Path,
                                       console_listener: tuple[str, socket.socket]) -> None:
    """A terminal container: the restored one's pty master comes over --console-socket."""
    path, listener = console_listener
    bundle = make_bundle(COUNTER, **{"process.terminal": True})
    cid = helpers.unique_id()
    _runtime(pyoci_root, "run", "-d", "--console-socket", path, "--bundle", bundle, cid)
    master = _recv_master(listener)
    image = tmp_path / "image"
    try:
        lines = Lines(master)
        lines.wait_count(3)
        _runtime(pyoci_root, "checkpoint", "--image-path", image, cid)
        last = lines.drain()[-1]
    finally:
        os.close(master)
    _runtime(pyoci_root, "restore", "-d", "--console-socket", path, "--bundle", bundle,
             "--image-path", image, cid)
    master2 = _recv_master(listener)
    try:
        got = Lines(master2).wait_count(3)
        assert last < got[0] <= last + 2, (last, got)  # a line may sit in the old pty
        assert helpers.state(cid, pyoci_root)["status"] == "running"
    finally:
        os.close(master2)
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)


def test_checkpoint_follows_criu_check(make_bundle: Any, pyoci_root: Path,
                                       tmp_path: Path) -> None:
    """Where ``criu check`` fails, checkpoint fails with one line giving CRIU's reason.

    Runs on the host (where CRIU 3.17 can't read the 6.18 kernel's vDSO) and in
    the VM lane (where it works, and the container is checkpointed).
    """
    problem = _criu_check()
    bundle = make_bundle(COUNTER)
    cid = helpers.unique_id()
    _lines, r = _start_counter(pyoci_root, bundle, cid)
    try:
        res = _runtime(pyoci_root, "checkpoint", "--image-path", tmp_path / "img", cid,
                       check=False, log_file=False)
    finally:
        os.close(r)
    if problem is None:
        assert res.returncode == 0, res.stderr
        return
    helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, check=True)
    assert res.returncode != 0
    if "runc" in helpers.runtime_command()[0]:
        return  # runc words it its own way (see the evidence file); the exit status holds
    text = res.stderr.strip()
    assert "\n" not in text, text
    first = next(ln for ln in problem.splitlines() if "Error (" in ln)
    reason = first.split("): ", 1)[-1].strip()
    assert reason in text, (reason, text)


def test_features_lists_checkpoint_where_criu_works() -> None:
    """The ``io.github.pyoci.checkpoint.criu`` annotation (CRIU's version) only where
    ``criu check`` passes; both verbs' ``--help`` works (podman's probe)."""
    if "runc" not in helpers.runtime_command()[0]:  # runc's document says nothing of it
        res = subprocess.run([*helpers.runtime_command(), "features"], capture_output=True,
                             text=True, timeout=120, check=True)
        doc = json.loads(res.stdout)
        value = doc.get("annotations", {}).get("io.github.pyoci.checkpoint.criu")
        if _criu_check() is None:
            assert value and re.fullmatch(r"\d+\.\d+(\.\d+)?", value), doc["annotations"]
        else:
            assert value is None, doc["annotations"]
    for verb in ("checkpoint", "restore"):
        res = subprocess.run([*helpers.runtime_command(), verb, "--help"], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0 and "--image-path" in res.stdout, res


def test_stdio_dev_null_reopened_in_container(make_bundle: Any, pyoci_root: Path) -> None:
    """stdin on the host's /dev/null (what conmon passes) is reopened on the container's
    /dev/null, as runc does: CRIU can't dump a file on a mount the container can't see."""
    script = ("m=$(sed -n 's/^mnt_id:[[:space:]]*//p' /proc/self/fdinfo/0); "
              "echo link=$(readlink /proc/self/fd/0); "
              "cut -d' ' -f1 /proc/self/mountinfo | grep -qx \"$m\" && echo visible=yes; "
              "echo done")
    bundle = make_bundle(["/bin/sh", "-c", script])
    cid = helpers.unique_id()
    r, w = os.pipe()
    cmd = [*helpers.runtime_command(), "--root", os.fspath(pyoci_root), "run", "-d",
           "--bundle", os.fspath(bundle), cid]
    try:
        with open(os.devnull) as null:
            res = subprocess.run(cmd, stdin=null, stdout=w, stderr=w, timeout=60,
                                 env=helpers._runtime_env(cmd, None))
        os.close(w)
        w = -1
        out = b""
        while b"done" not in out:
            ready, _, _ = select.select([r], [], [], 30)
            assert ready, out
            chunk = os.read(r, 4096)
            assert chunk, out
            out += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert res.returncode == 0
    helpers.wait_for_status(cid, pyoci_root, "stopped", timeout=30)
    helpers.run_pyoci("delete", cid, root=pyoci_root, check=True)
    assert b"link=/dev/null" in out and b"visible=yes" in out, out
