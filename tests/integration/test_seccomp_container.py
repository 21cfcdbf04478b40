"""linux.seccomp in real containers, checked from inside with ``/probe mkdir``.

``/probe mkdir PATH`` prints exactly ``errno=N`` when mkdir(2) fails, so the
errno a filter returns is visible. The SCMP_ACT_NOTIFY test runs a seccomp
agent in the test process: an AF_UNIX server that receives the container
state and the listener fd (SCM_RIGHTS), then answers every notified syscall
with its own errno through the SECCOMP_IOCTL_NOTIF_RECV/SEND ioctls.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import podman_env
from podman_env import IMAGE, PodmanEnv

MKDIR = ["mkdir", "mkdirat"]
ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
# What the static probe and pyoci's exec tail (after the filter is loaded) need,
# on x86_64: everything else, mkdir included, gets the default action.
PROBE_SYSCALLS = [
    "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "prlimit64", "getrlimit", "mprotect", "mmap", "munmap", "readlink", "readlinkat",
    "getrandom", "uname", "write", "writev", "exit", "exit_group", "fstat", "newfstatat",
    "ioctl", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "close", "close_range",
    "sendmsg", "umask", "fcntl", "futex", "getpid", "openat", "read", "lseek",
    # runc's Go init runs after its filter is loaded: the same test then runs on runc.
    "fstatfs", "statfs", "getppid", "nanosleep", "sched_yield", "sigaltstack", "gettid",
    "tgkill", "clone", "mmap", "madvise", "epoll_ctl", "epoll_pwait", "epoll_create1",
    "pipe2", "dup3", "capget", "capset", "prctl", "setresuid", "setresgid", "setgroups",
    "getuid", "getgid", "geteuid", "getegid", "clock_gettime", "fchdir", "chdir", "getcwd",
    "getdents64", "getdents",
]


def seccomp(default: str = ALLOW, *syscalls: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": list(syscalls), **extra}


def rule(names: list[str], action: str, **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def mkdir_errno(run_probe, sc: dict[str, Any]) -> tuple[str, subprocess.CompletedProcess[str]]:
    res = run_probe("mkdir", "/tmp/x", **{"linux.seccomp": sc, "root.readonly": False})
    return res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "", res


def test_without_seccomp_mkdir_works(run_probe) -> None:
    res = run_probe("mkdir", "/tmp/x", **{"root.readonly": False})
    assert res.returncode == 0, res.stderr


def test_errno_rule_gives_eperm(run_probe) -> None:
    last, res = mkdir_errno(run_probe, seccomp(ALLOW, rule(MKDIR, ERRNO)))
    assert res.returncode == 1, res
    assert last == "errno=1", res.stderr


def test_errno_ret(run_probe) -> None:
    last, res = mkdir_errno(run_probe, seccomp(ALLOW, rule(MKDIR, ERRNO, errnoRet=99)))
    assert res.returncode == 1, res
    assert last == "errno=99", res.stderr


def test_errno_default_with_allow_list(run_probe) -> None:
    """defaultAction ERRNO: the probe runs on its allow-list, mkdir gets defaultErrnoRet."""
    sc = seccomp(ERRNO, rule(PROBE_SYSCALLS, ALLOW), defaultErrnoRet=38)
    last, res = mkdir_errno(run_probe, sc)
    assert res.returncode == 1, res
    assert last == "errno=38", res.stderr
    # The same filter lets the probe report normally.
    res = run_probe("echo", "still", "here", **{"linux.seccomp": sc})
    assert (res.returncode, res.stdout) == (0, "still here\n"), res


def test_errno_default_allow_list_with_mkdir(run_probe) -> None:
    sc = seccomp(ERRNO, rule([*PROBE_SYSCALLS, *MKDIR], ALLOW))
    res = run_probe("mkdir", "/tmp/x", **{"linux.seccomp": sc, "root.readonly": False})
    assert res.returncode == 0, res.stderr


def test_seccomp_mode_is_filter(run_probe) -> None:
    res = run_probe("caps", check=True, **{"linux.seccomp": seccomp(ALLOW, rule(MKDIR, ERRNO))})
    assert helpers.parse_status(res.stdout)["Seccomp"] == "2", res.stdout


def test_log_flag(run_probe) -> None:
    sc = seccomp(ALLOW, rule(MKDIR, ERRNO), flags=["SECCOMP_FILTER_FLAG_LOG"])
    last, res = mkdir_errno(run_probe, sc)
    assert res.returncode == 1, res
    assert last == "errno=1", res.stderr


def test_unknown_syscall_name_is_skipped(run_probe) -> None:
    sc = seccomp(ALLOW, rule(["mkdir", "pyoci_no_such_syscall", "mkdirat"], ERRNO, errnoRet=77))
    last, res = mkdir_errno(run_probe, sc)
    assert res.returncode == 1, res
    assert last == "errno=77", res.stderr


# x86_64 numbers: the highest syscall PROBE_SYSCALLS names is close_range (436).
OPENAT2 = 437  # newer than anything the allow-list names
NEVER_A_SYSCALL = 1000
X86_ALL = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def syscall_errno(run_probe, nr: int, sc: dict[str, Any]) -> str:
    res = run_probe("syscall", str(nr), **{"linux.seccomp": sc})
    assert res.returncode == 1, res
    return res.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("default", [ERRNO, "SCMP_ACT_KILL_PROCESS"])
@pytest.mark.parametrize("arches", [["SCMP_ARCH_X86_64"], X86_ALL], ids=["x86_64", "x86-all"])
def test_syscalls_newer_than_the_profile_get_enosys(run_probe, default: str,
                                                    arches: list[str]) -> None:
    """runc's -ENOSYS stub: a syscall numbered above every one the profile names gets
    ENOSYS rather than the default action, so libc falls back (clone3 -> clone)."""
    # pyoci's exec step tries execveat first (EPERM under ERRNO makes it fall back).
    sc = seccomp(default, rule([*PROBE_SYSCALLS, "execveat"], ALLOW), architectures=arches)
    assert syscall_errno(run_probe, OPENAT2, sc) == "errno=38"
    assert syscall_errno(run_probe, NEVER_A_SYSCALL, sc) == "errno=38"


def test_known_unlisted_syscall_keeps_the_default_action(run_probe) -> None:
    """Below the highest named syscall the default action still applies (mkdir: EPERM)."""
    sc = seccomp(ERRNO, rule(PROBE_SYSCALLS, ALLOW), architectures=X86_ALL)
    assert syscall_errno(run_probe, 83, sc) == "errno=1"  # mkdir
    last, res = mkdir_errno(run_probe, sc)
    assert last == "errno=1", res.stderr


def test_default_errno_ret_and_new_syscalls(run_probe) -> None:
    """defaultErrnoRet covers the known syscalls; the newer ones still get ENOSYS."""
    sc = seccomp(ERRNO, rule(PROBE_SYSCALLS, ALLOW), defaultErrnoRet=95)
    assert syscall_errno(run_probe, 83, sc) == "errno=95"
    assert syscall_errno(run_probe, OPENAT2, sc) == "errno=38"


# ---- SCMP_ACT_NOTIFY with a listener in the test ----------------------------

IOCTL_SOURCE = r"""
#include <stdio.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
int main(void)
{
    printf("%lu %lu %zu %zu\n", (unsigned long)SECCOMP_IOCTL_NOTIF_RECV,
           (unsigned long)SECCOMP_IOCTL_NOTIF_SEND, sizeof(struct seccomp_notif),
           sizeof(struct seccomp_notif_resp));
    return 0;
}
"""
# struct seccomp_notif {u64 id; u32 pid; u32 flags; struct seccomp_data {int nr;
# u32 arch; u64 instruction_pointer; u64 args[6]}}
NOTIF = struct.Struct("=QIIiIQ6Q")
# struct seccomp_notif_resp {u64 id; s64 val; s32 error; u32 flags}
NOTIF_RESP = struct.Struct("=QqiI")
ANSWER_ERRNO = 42


@pytest.fixture(scope="module")
def notify_ioctls(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    """The ioctl numbers and struct sizes from the kernel headers, not from memory."""
    d = tmp_path_factory.mktemp("ioctl")
    (d / "ioctl.c").write_text(IOCTL_SOURCE)
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", d / "ioctl", d / "ioctl.c"], check=True)
    out = subprocess.run([d / "ioctl"], capture_output=True, text=True, check=True).stdout
    recv, send, notif_size, resp_size = map(int, out.split())
    assert (notif_size, resp_size) == (NOTIF.size, NOTIF_RESP.size)
    return recv, send


class Agent(threading.Thread):
    """Accept ``connections`` connections (one per container process: the init, then
    each exec), take the state + fd of each, answer notifications with -42."""

    def __init__(self, path: str, recv_ioctl: int, send_ioctl: int,
                 connections: int = 1) -> None:
        super().__init__(daemon=True)
        self.recv_ioctl, self.send_ioctl = recv_ioctl, send_ioctl
        self.connections = connections
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(connections)
        self.server.settimeout(60)
        self.state: dict[str, Any] | None = None
        self.states: list[dict[str, Any]] = []  # one per connection, in order
        self.fd_count = 0
        self.notified: list[tuple[int, int]] = []  # (syscall nr, pid)
        self.error: BaseException | None = None

    def run(self) -> None:
        answering: list[threading.Thread] = []
        try:
            for _ in range(self.connections):
                listener = self._take()
                t = threading.Thread(target=self._answer_and_close, args=(listener,),
                                     daemon=True)
                t.start()
                answering.append(t)
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.server.close()
            for t in answering:
                t.join(60)

    def _answer_and_close(self, listener: int) -> None:
        try:
            self._answer(listener)
        except BaseException as e:
            self.error = e
        finally:
            os.close(listener)

    def _take(self) -> int:
        conn, _ = self.server.accept()
        with conn:
            fds = array.array("i")
            data, anc, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            # One JSON document; don't wait for EOF, a runtime may keep the socket open.
            while (state := _complete_json(data)) is None:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    raise ValueError(f"incomplete state JSON: {data!r}")
                data += chunk
        self.fd_count = len(fds)
        self.state = self.state or state
        self.states.append(state)
        assert len(fds) == 1, fds
        return fds[0]

    def _answer(self, listener: int) -> None:
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        while True:
            events = poller.poll(60_000)
            if not events:
                raise TimeoutError("no notification and no hang-up within 60s")
            if not events[0][1] & select.POLLIN:
                return  # POLLHUP: every task using the filter has exited
            buf = bytearray(NOTIF.size)
            try:
                fcntl.ioctl(listener, self.recv_ioctl, buf)
            except OSError:
                continue  # the task died between poll and recv
            nid, pid, _flags, nr, *_ = NOTIF.unpack(buf)
            self.notified.append((nr, pid))
            resp = bytearray(NOTIF_RESP.pack(nid, 0, -ANSWER_ERRNO, 0))
            try:
                fcntl.ioctl(listener, self.send_ioctl, resp)
            except OSError:
                pass  # ENOENT: the task was killed meanwhile


def _complete_json(data: bytes) -> dict[str, Any] | None:
    try:
        return json.loads(data)
    except ValueError:
        return None


@pytest.fixture
def agent(notify_ioctls: tuple[int, int]) -> Iterator[tuple[str, Agent]]:
    d = tempfile.mkdtemp(prefix="pyoci-agent-")
    path = os.path.join(d, "agent.sock")
    a = Agent(path, *notify_ioctls)
    a.start()
    try:
        yield path, a
    finally:
        # Unblock accept() if the runtime never connected.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
            except OSError:
                pass
        a.join(30)
        shutil.rmtree(d, ignore_errors=True)


def test_notify_listener_answers(run_probe, agent: tuple[str, Agent]) -> None:
    path, a = agent
    sc = seccomp(ALLOW, rule(MKDIR, "SCMP_ACT_NOTIFY"), listenerPath=path,
                 listenerMetadata="pyoci-test-metadata")
    last, res = mkdir_errno(run_probe, sc)
    a.join(30)
    assert not a.is_alive(), "the agent is still waiting"
    assert a.error is None, repr(a.error)
    # errno=42 is the agent's answer: nothing else in the stack returns EL2HLT.
    assert res.returncode == 1, res
    assert last == f"errno={ANSWER_ERRNO}", res.stderr
    assert a.notified, "no notification reached the agent"
    st = a.state
    assert st is not None
    assert st["ociVersion"].startswith("1."), st
    assert st["fds"] == ["seccompFd"], st
    assert st["metadata"] == "pyoci-test-metadata", st
    # pid is the container process in the agent's (the host's) pid namespace:
    # the same pid the kernel reports for the notified syscall.
    assert isinstance(st["pid"], int) and st["pid"] > 1, st
    assert {pid for _, pid in a.notified} == {st["pid"]}, (st["pid"], a.notified)
    state = st["state"]
    assert state["pid"] == st["pid"], st
    assert state["status"] in ("creating", "created", "running"), st
    assert state["id"].startswith("t-"), st
    assert Path(state["bundle"]).is_dir(), st
    assert a.fd_count == 1


def test_notify_listener_gets_each_exec(make_bundle, pyoci_root: Path,
                                        notify_ioctls: tuple[int, int]) -> None:
    """exec into a container with a listenerPath: each exec'd process's own listener
    fd reaches the agent, with its pid and the container's state (as runc sends it)."""
    d = tempfile.mkdtemp(prefix="pyoci-agent-")
    path = os.path.join(d, "agent.sock")
    a = Agent(path, *notify_ioctls, connections=3)
    a.start()
    sc = seccomp(ALLOW, rule(MKDIR, "SCMP_ACT_NOTIFY"), listenerPath=path,
                 listenerMetadata="exec-metadata")
    bundle = make_bundle(["/probe", "sleep", "inf"],
                         **{"linux.seccomp": sc, "root.readonly": False})
    cid = helpers.unique_id()
    try:
        helpers.run_pyoci("create", "--bundle", bundle, cid, root=pyoci_root, check=True)
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        init = helpers.state(cid, pyoci_root)["pid"]
        res = helpers.run_pyoci("exec", cid, "/probe", "mkdir", "/tmp/x", root=pyoci_root)
        assert res.returncode == 1 and res.stderr.strip().splitlines()[-1] == \
            f"errno={ANSWER_ERRNO}", res
        res = helpers.run_pyoci("exec", cid, "/bin/true", root=pyoci_root)
        assert res.returncode == 0, res.stderr
    finally:
        helpers.run_pyoci("delete", "--force", cid, root=pyoci_root, timeout=30)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # unblock accept()
            try:
                s.connect(path)
            except OSError:
                pass
        a.join(60)
        shutil.rmtree(d, ignore_errors=True)
    assert not a.is_alive(), "the agent is still waiting"
    assert a.error is None, repr(a.error)
    assert len(a.states) == 3, a.states
    first, mkdir, true = a.states
    assert first["pid"] == init and first["state"]["pid"] == init, first
    for st in (mkdir, true):
        assert st["fds"] == ["seccompFd"] and st["metadata"] == "exec-metadata", st
        assert st["pid"] not in (init, 0), st
        assert st["state"]["id"] == cid and st["state"]["pid"] == init, st
        assert st["state"]["status"] == "running", st
        assert Path(st["state"]["bundle"]) == bundle, st
    assert mkdir["pid"] != true["pid"]
    # the exec'd mkdir was answered through its own listener fd
    assert {pid for _, pid in a.notified} == {mkdir["pid"]}, (mkdir["pid"], a.notified)


def test_notify_without_listener_fails_create(make_bundle, pyoci_root: Path,
                                              tmp_path: Path) -> None:
    """A listenerPath nobody listens on is a create-time error, not a hang."""
    sc = seccomp(ALLOW, rule(MKDIR, "SCMP_ACT_NOTIFY"),
                 listenerPath=str(tmp_path / "nobody.sock"))
    bundle = make_bundle(["/probe", "mkdir", "/tmp/x"], **{"linux.seccomp": sc})
    res = helpers.run_pyoci("create", "--bundle", bundle, helpers.unique_id(),
                            root=pyoci_root)
    assert res.returncode != 0, res
    assert "nobody.sock" in res.stderr, res.stderr


# ---- podman's default profile --------------------------------------------------

DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")


@pytest.fixture(scope="module")
def podman(rootfs_template: Path) -> Iterator[PodmanEnv]:
    with podman_env.podman_env(rootfs_template) as env:
        yield env


def test_podman_default_profile(podman: PodmanEnv) -> None:
    """containers/common format (not OCI): podman converts it to linux.seccomp."""
    assert DEFAULT_PROFILE.is_file()
    opt = f"seccomp={DEFAULT_PROFILE}"
    res = podman.run("--security-opt", opt, IMAGE, "/probe", "mkdir", "/tmp/x")
    assert res.returncode == 0, res.stderr
    res = podman.run("--security-opt", opt, IMAGE, "/probe", "caps")
    assert res.returncode == 0, res.stderr
    assert helpers.parse_status(res.stdout)["Seccomp"] == "2", res.stdout
