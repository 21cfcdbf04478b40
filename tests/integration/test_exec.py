"""exec: every runc exec flag, checked from inside the container with the probe.

Each test starts a real container (``/probe sleep inf``) and runs new processes
in it; what the process sees is compared with what the container's init has,
read from the host under ``/proc/<init>``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pexpect
import pytest

pytestmark = pytest.mark.integration

NAMESPACES = ("pid", "net", "ipc", "uts", "mnt", "cgroup")
CAP_KILL, CAP_SYS_ADMIN, CAP_CHOWN = 5, 21, 0
STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


class Running:
    """A started container: its id and the host pid of its init."""

    def __init__(self, cid: str, pid: int, root: Path) -> None:
        self.cid, self.pid, self.root = cid, pid, root

    def exec(self, *argv: str | os.PathLike[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """``exec [flags...] ID args...``: ``argv`` is split at the literal ``ID``."""
        args = [self.cid if a == "ID" else a for a in argv]
        return helpers.run_pyoci("exec", *args, root=self.root, **kw)

    def exec_ok(self, *argv: str | os.PathLike[str], **kw: Any) -> str:
        return self.exec(*argv, check=True, **kw).stdout


StartContainer = Callable[..., Running]


@pytest.fixture
def start_container(make_bundle: Any, pyoci_root: Path) -> Iterator[StartContainer]:
    """Factory: a running ``/probe sleep inf`` container, force-deleted afterwards."""
    made: list[str] = []

    def start(*, bundle: Path | None = None, **kw: Any) -> Running:
        bundle = bundle or make_bundle(["/probe", "sleep", "inf"], **kw)
        cid, _ = ch.create(bundle, pyoci_root)
        made.append(cid)
        helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
        return Running(cid, helpers.state(cid, pyoci_root)["pid"], pyoci_root)

    yield start
    for cid in made:
        ch.force_delete(cid, pyoci_root)


@pytest.fixture
def running(start_container: StartContainer) -> Running:
    return start_container()


def host_status(pid: int) -> dict[str, str]:
    return helpers.parse_status(Path(f"/proc/{pid}/status").read_text())


def env_of(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        out.setdefault(name, []).append(value)
    return out


def detached(c: Running, tmp_path: Path, *argv: str) -> int:
    """``exec -d --pid-file P [argv]``; returns the pid read back from the file."""
    pid_file = tmp_path / f"exec-{helpers.unique_id()}.pid"
    c.exec("-d", "--pid-file", pid_file, *argv, check=True)
    text = pid_file.read_text()
    assert text.isdigit(), repr(text)  # decimal, no newline
    return int(text)


# ---- the command: inline args, --process ------------------------------------

def test_inline_args(running: Running) -> None:
    res = running.exec("ID", "/probe", "echo", "a b", "--not-a-flag", "-e")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "a b --not-a-flag -e\n"


def _process_json(tmp_path: Path, args: list[str]) -> Path:
    path = tmp_path / f"process-{helpers.unique_id()}.json"
    path.write_text(json.dumps({
        "terminal": False,
        "args": args,
        "env": ["PATH=/usr/bin:/bin", "FROM_FILE=yes"],
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [5]},
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                         "ambient": ["CAP_KILL"]},
        "noNewPrivileges": True,
    }))
    return path


def test_process_file(start_container: StartContainer, tmp_path: Path) -> None:
    c = start_container(**{"process.noNewPrivileges": False})

    def run(*args: str) -> str:
        return c.exec_ok("--process", _process_json(tmp_path, ["/probe", *args]), "ID")

    assert run("id") == "uid=1000 gid=1001 groups=5\n"
    assert run("cwd") == "/tmp\n"
    env = env_of(run("env"))
    assert env["FROM_FILE"] == ["yes"] and env["PATH"] == ["/usr/bin:/bin"], env
    assert "TERM" not in env, env  # the file's env replaces the container's
    caps = helpers.parse_status(run("caps"))
    assert helpers.cap_set(caps["CapBnd"]) == {CAP_CHOWN, CAP_KILL}, caps
    assert helpers.cap_set(caps["CapEff"]) == {CAP_KILL}, caps
    assert helpers.cap_set(caps["CapAmb"]) == {CAP_KILL}, caps
    assert caps["NoNewPrivs"] == "1", caps


def test_process_file_short_flag(running: Running, tmp_path: Path) -> None:
    out = running.exec_ok("-p", _process_json(tmp_path, ["/probe", "echo", "short"]), "ID")
    assert out == "short\n"


# ---- detach and pid-file ----------------------------------------------------

def test_detach_pid_file(running: Running, tmp_path: Path) -> None:
    pid = detached(running, tmp_path, "ID", "/probe", "sleep", "inf")
    assert not ch.gone(pid)
    assert ch.cmdline(pid).startswith("/probe sleep inf")
    assert ch.ns_inode(pid, "pid") == ch.ns_inode(running.pid, "pid")
    # Two pid levels: the host's and the container's; the container sees its own pid.
    nspid = host_status(pid)["NSpid"].split()
    assert len(nspid) == 2 and nspid[0] == str(pid), nspid
    inside = {line.split()[0] for line in running.exec_ok("ID", "/probe", "ps").splitlines()}
    assert nspid[1] in inside, (nspid, inside)
    assert "1" in inside  # the init, as the container sees it


def test_foreground_parent_is_outside_the_container(running: Running) -> None:
    # As with runc: the process is not a child of the container's init.
    assert running.exec_ok("ID", "/probe", "ppid") == "0\n"


# ---- cwd, env, user ---------------------------------------------------------

def test_cwd(running: Running) -> None:
    assert running.exec_ok("--cwd", "/tmp", "ID", "/probe", "cwd") == "/tmp\n"
    assert running.exec_ok("--cwd=/etc", "ID", "/probe", "cwd") == "/etc\n"
    assert running.exec_ok("ID", "/probe", "cwd") == "/\n"  # process.cwd of config.json


def test_env_short_repeated(running: Running) -> None:
    env = env_of(running.exec_ok("-e", "A=1", "-e", "TERM=dumb", "ID", "/probe", "env"))
    assert env["A"] == ["1"], env
    assert env["TERM"] == ["dumb"], env  # overrides the config's TERM=xterm, once
    assert env["PATH"] == ["/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_env_long_forms_mixed(running: Running) -> None:
    env = env_of(running.exec_ok("--env", "B=2", "--env=C=x=y", "--env", "PATH=/bin",
                                 "ID", "/probe", "env"))
    assert env["B"] == ["2"] and env["C"] == ["x=y"], env
    assert env["PATH"] == ["/bin"], env
    assert env["TERM"] == ["xterm"], env


def test_user(running: Running) -> None:
    assert running.exec_ok("-u", "1000", "ID", "/probe", "id") == "uid=1000 gid=0 groups=\n"
    assert (running.exec_ok("--user", "1000:1001", "ID", "/probe", "id")
            == "uid=1000 gid=1001 groups=\n")
    assert (running.exec_ok("--user=1000:1001", "ID", "/probe", "euid")
            == "euid=1000 egid=1001\n")


def test_additional_gids(running: Running) -> None:
    out = running.exec_ok("-u", "1000:1001", "-g", "5", "-g", "6", "ID", "/probe", "id")
    assert out == "uid=1000 gid=1001 groups=5,6\n"
    out = running.exec_ok("--additional-gids", "7", "ID", "/probe", "id")
    assert out == "uid=0 gid=0 groups=7\n"


# ---- caps, no_new_privs -----------------------------------------------------

def test_cap_adds_to_the_sets(running: Running) -> None:
    before = helpers.parse_status(running.exec_ok("ID", "/probe", "caps"))
    assert CAP_SYS_ADMIN not in helpers.cap_set(before["CapEff"]), before
    after = helpers.parse_status(running.exec_ok("--cap", "CAP_SYS_ADMIN", "--cap", "CAP_CHOWN",
                                                 "ID", "/probe", "caps"))
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert helpers.cap_set(after[key]) == (helpers.cap_set(before[key])
                                               | {CAP_SYS_ADMIN, CAP_CHOWN}), (key, after)
    # runc (urfave/cli) refuses mixing -c and --cap in one command, so only one form here.
    short = helpers.parse_status(running.exec_ok("-c", "CAP_CHOWN", "ID", "/probe", "caps"))
    assert helpers.cap_set(short["CapEff"]) == helpers.cap_set(before["CapEff"]) | {CAP_CHOWN}


def test_no_new_privs(start_container: StartContainer) -> None:
    c = start_container(**{"process.noNewPrivileges": False})
    assert helpers.parse_status(c.exec_ok("ID", "/probe", "caps"))["NoNewPrivs"] == "0"
    with_flag = c.exec_ok("--no-new-privs", "ID", "/probe", "caps")
    assert helpers.parse_status(with_flag)["NoNewPrivs"] == "1"


# ---- fds --------------------------------------------------------------------

def _exec_with_fd3(c: Running, extra: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``exec`` with fd 3 open on ``extra`` in the runtime (and not close-on-exec)."""
    cmd = [*helpers.runtime_command(), "--root", str(c.root), "exec",
           *(c.cid if a == "ID" else a for a in argv)]
    return subprocess.run(["/bin/sh", "-c", 'exec "$@" 3<"$0"', str(extra), *cmd],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def test_preserve_fds(running: Running, tmp_path: Path) -> None:
    extra = tmp_path / "extra-fd"
    extra.write_text("from the host")
    res = _exec_with_fd3(running, extra, "--preserve-fds", "1", "ID", "/probe", "fds")
    assert res.returncode == 0, res.stderr
    fds = helpers.parse_pairs(res.stdout)
    assert set(fds) == {"0", "1", "2", "3"}, fds
    assert fds["3"] == str(extra)
    res = _exec_with_fd3(running, extra, "--preserve-fds", "1", "ID", "/probe", "cat",
                         "/proc/self/fd/3")
    assert (res.returncode, res.stdout) == (0, "from the host"), res.stderr
    res = _exec_with_fd3(running, extra, "ID", "/probe", "fds")
    assert res.returncode == 0, res.stderr
    assert set(helpers.parse_pairs(res.stdout)) == {"0", "1", "2"}, res.stdout


def test_fd_hygiene_and_cwd_inside(running: Running, tmp_path: Path) -> None:
    fds = helpers.parse_pairs(running.exec_ok("ID", "/probe", "fds"))
    assert set(fds) == {"0", "1", "2"}, fds
    pid = detached(running, tmp_path, "--cwd", "/etc", "ID", "/probe", "sleep", "inf")
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
    # Its root and cwd are the container's, not the host's.
    root, init_root = os.stat(f"/proc/{pid}/root"), os.stat(f"/proc/{running.pid}/root")
    assert (root.st_dev, root.st_ino) == (init_root.st_dev, init_root.st_ino)
    assert (root.st_dev, root.st_ino) != (os.stat("/").st_dev, os.stat("/").st_ino)
    cwd, etc = os.stat(f"/proc/{pid}/cwd"), os.stat(f"/proc/{running.pid}/root/etc")
    assert (cwd.st_dev, cwd.st_ino) == (etc.st_dev, etc.st_ino)


# ---- LSM flags on a host without AppArmor or SELinux ------------------------

def test_apparmor_without_apparmor_fails(running: Running) -> None:
    res = running.exec("--apparmor", "some-profile", "ID", "/probe", "id")
    assert res.returncode == 255, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == ""
    assert "apparmor" in res.stderr.lower(), res.stderr


def test_process_label_without_selinux_fails(running: Running) -> None:
    res = running.exec("--process-label", "system_u:system_r:container_t:s0",
                       "ID", "/probe", "id")
    assert res.returncode == 255, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == ""
    assert "selinux" in res.stderr.lower(), res.stderr


# ---- namespaces and cgroups -------------------------------------------------

def test_joins_every_namespace(running: Running) -> None:
    inside = helpers.parse_pairs(running.exec_ok("ID", "/probe", "ns"))
    for name in NAMESPACES:
        assert inside[name] == ch.ns_inode(running.pid, name), name
        assert inside[name] != ch.host_ns(name), name


def test_joins_uts_and_mount_namespace_contents(start_container: StartContainer) -> None:
    c = start_container(hostname="exec-uts")
    assert c.exec_ok("ID", "/probe", "hostname") == "exec-uts\n"
    # The container's mount table, not the host's: /proc is the container's own.
    mounts = helpers.parse_mounts(c.exec_ok("ID", "/probe", "mounts"))
    assert mounts[0].target == "/", mounts
    assert [m for m in mounts if m.target == "/proc" and m.fstype == "proc"], mounts


def test_user_namespace(start_container: StartContainer, open_dir: Path,
                        rootfs_template: Path, tmp_path: Path) -> None:
    def userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cfg = helpers.bundle_config(["/probe", "sleep", "inf"], mutate=userns)
    c = start_container(bundle=helpers.write_bundle(open_dir / "bundle",
                                                    rootfs_template, cfg))
    inside = helpers.parse_pairs(c.exec_ok("ID", "/probe", "ns"))
    for name in (*NAMESPACES, "user"):
        assert inside[name] == ch.ns_inode(c.pid, name), name
    assert inside["user"] != ch.host_ns("user")
    assert c.exec_ok("ID", "/probe", "id").startswith("uid=0 gid=0 ")
    pid = detached(c, tmp_path, "ID", "/probe", "sleep", "inf")
    status = host_status(pid)
    assert status["Uid"].split() == ["100000"] * 4, status["Uid"]
    assert status["Gid"].split() == ["100000"] * 4, status["Gid"]
    assert ch.ns_inode(pid, "user") == ch.ns_inode(c.pid, "user")


def test_joins_the_container_cgroup(running: Running, tmp_path: Path) -> None:
    cg = ch.memory_cgroup(running.pid)
    assert cg != ch.memory_cgroup(os.getpid()) and cg.name == running.cid, cg
    pid = detached(running, tmp_path, "ID", "/probe", "sleep", "inf")
    assert str(pid) in (cg / "cgroup.procs").read_text().split()
    # Every hierarchy, not just memory.
    assert (Path(f"/proc/{pid}/cgroup").read_text()
            == Path(f"/proc/{running.pid}/cgroup").read_text())


# ---- the container's security settings apply by default ---------------------

def test_container_caps_nnp_and_seccomp_apply(start_container: StartContainer) -> None:
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 99}]}
    c = start_container(**{"linux.seccomp": seccomp,
                           "process.capabilities": {k: ["CAP_KILL"] for k in
                                                    ("bounding", "effective", "permitted")}})
    res = c.exec("ID", "/probe", "mkdir", "/tmp/x")
    assert (res.returncode, res.stderr) == (1, "errno=99\n"), res
    inside = helpers.parse_status(c.exec_ok("ID", "/probe", "caps"))
    init = host_status(c.pid)
    for key in STATUS_KEYS:
        assert inside[key] == init[key], (key, inside, init)
    assert helpers.cap_set(inside["CapEff"]) == {CAP_KILL}, inside
    assert (inside["NoNewPrivs"], inside["Seccomp"]) == ("1", "2"), inside


# ---- exit statuses and refusals ---------------------------------------------

def test_exit_status_is_the_process_s(running: Running) -> None:
    assert running.exec("ID", "/probe", "exit", "7").returncode == 7
    assert running.exec("ID", "/probe", "exit", "0").returncode == 0
    assert running.exec("ID", "/bin/sh", "-c", "kill -9 $$").returncode == 137


def test_missing_executable(running: Running) -> None:
    res = running.exec("ID", "no-such-program")
    assert res.returncode == 255, res
    assert "executable file not found in $PATH" in res.stderr, res.stderr
    res = running.exec("ID", "/no/such/program")
    assert res.returncode == 255, res
    assert "no such file or directory" in res.stderr, res.stderr


def test_exec_into_stopped_container(start_container: StartContainer) -> None:
    c = start_container(**{"process.args": ["/probe", "exit", "0"]})
    helpers.wait_for_status(c.cid, c.root, "stopped")
    res = c.exec("ID", "/probe", "id")
    assert res.returncode == 255, res
    assert "cannot exec in a stopped container" in res.stderr, res.stderr
    assert res.stdout == ""


def test_exec_into_missing_container(pyoci_root: Path) -> None:
    res = helpers.run_pyoci("exec", "no-such-ctr", "/probe", "id", root=pyoci_root)
    assert res.returncode == 255, res
    assert "container does not exist" in res.stderr, res.stderr


def test_paused_container_refuses_exec(running: Running) -> None:
    helpers.run_pyoci("pause", running.cid, root=running.root, check=True)
    try:
        res = running.exec("ID", "/probe", "echo", "x")
        assert res.returncode == 255, res
        assert "cannot exec in a paused container" in res.stderr, res.stderr
        assert res.stdout == ""
    finally:
        helpers.run_pyoci("resume", running.cid, root=running.root, check=True)
    assert running.exec_ok("ID", "/probe", "echo", "resumed") == "resumed\n"


# ---- terminals --------------------------------------------------------------

def _spawn(root: Path, *args: str) -> pexpect.spawn:
    cmd = [*helpers.runtime_command(), "--root", str(root), *args]
    return pexpect.spawn(cmd[0], cmd[1:], timeout=30, encoding="utf-8")


def _finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, (child.exitstatus, child.signalstatus)
    return child.exitstatus


def test_tty_foreground_probe(running: Running) -> None:
    child = _spawn(running.root, "exec", "-t", running.cid, "/probe", "tty")
    child.expect(r"(/dev/pts/\d+|not a tty)")
    assert child.match.group(1).startswith("/dev/pts/"), child.match.group(1)
    assert _finish(child) == 0


def test_tty_foreground_interactive_shell(running: Running) -> None:
    child = _spawn(running.root, "exec", "--tty", running.cid, "/bin/sh")
    child.expect("# ")  # the prompt: the runtime's console proxy is up
    child.sendline("echo hi-$((1+1))")
    child.expect("hi-2")
    child.sendline("exit 3")
    assert _finish(child) == 3


def test_tty_foreground_typeahead(running: Running) -> None:
    # Typed before the shell is ready: it must not be discarded (runc keeps it).
    child = _spawn(running.root, "exec", "-t", running.cid, "/bin/sh")
    child.sendline("echo hi-$((1+1))")
    child.sendline("exit 3")
    child.expect("hi-2")
    assert _finish(child) == 3




def test_console_socket_detached(running: Running, tmp_path: Path,
                                 console_listener: tuple[str, socket.socket]) -> None:
    path, sock = console_listener
    pid = detached(running, tmp_path, "-t", "--console-socket", path, "ID",
                   "/bin/sh", "-c", "/probe tty; read line; echo got-$line")
    master = ch.receive_console(sock)
    try:
        first = helpers.read_until(master, b"\n")
        assert re.match(rb"/dev/pts/\d+\r?\n", first), first
        os.write(master, b"hello\n")
        assert b"got-hello" in helpers.read_until(master, b"got-hello")
    finally:
        os.close(master)
    helpers.wait_for(lambda: ch.gone(pid), what="the exec'd shell to exit")


def test_tty_owned_by_the_process_user(running: Running, tmp_path: Path,
                                       console_listener: tuple[str, socket.socket]) -> None:
    """exec -t -u 1000: the pty is the user's (uid 1000, group still tty), as runc."""
    path, sock = console_listener
    pid = detached(running, tmp_path, "-t", "--console-socket", path, "-u", "1000:1000",
                   "ID", "/bin/sh", "-c", "/probe stat $(/probe tty); read line")
    master = ch.receive_console(sock)
    try:
        out = helpers.read_until(master, b"rdev=").decode()
        os.write(master, b"done\n")
    finally:
        os.close(master)
    assert "type=chr mode=0620 uid=1000 gid=5 " in out, out
    helpers.wait_for(lambda: ch.gone(pid), what="the exec'd shell to exit")
    child = _spawn(running.root, "exec", "-t", "-u", "1000", running.cid,
                   "/bin/sh", "-c", "/probe stat $(/probe tty)")
    child.expect(r"uid=(\d+) gid=(\d+)")
    assert child.match.group(1, 2) == ("1000", "5"), child.match.group(0)
    assert _finish(child) == 0


def test_tty_owned_by_the_process_user_in_a_user_namespace(
        start_container: StartContainer, open_dir: Path, rootfs_template: Path,
        tmp_path: Path, console_listener: tuple[str, socket.socket]) -> None:
    """The same in a user namespace: the exec'd process becomes the namespace's root
    before it makes the pty (as runc), so the pty can be given to uid 1000."""
    def userns(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cfg = helpers.bundle_config(["/probe", "sleep", "inf"], mutate=userns)
    c = start_container(bundle=helpers.write_bundle(open_dir / "bundle", rootfs_template, cfg))
    path, sock = console_listener
    pid = detached(c, tmp_path, "-t", "--console-socket", path, "-u", "1000:1000",
                   "ID", "/bin/sh", "-c", "/probe stat $(/probe tty); read line")
    master = ch.receive_console(sock)
    try:
        out = helpers.read_until(master, b"rdev=").decode()
        os.write(master, b"done\n")
    finally:
        os.close(master)
    assert "type=chr mode=0620 uid=1000 gid=5 " in out, out
    helpers.wait_for(lambda: ch.gone(pid), what="the exec'd shell to exit")


# ---- the container-level half of the plan is worked out once -----------------

_LEAN_LAUNCH = ("import sys; sys.path[:0] = {paths!r}; sys.argv = ['pyoci', *sys.argv[1:]]; "
                "from pyoci.cli import main; sys.exit(main())")


def _exec_imports(c: Running, *argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run this checkout's ``exec`` under ``-X importtime``; return it and what it imported."""
    import sysconfig

    paths = [str(helpers.REPO_ROOT)]
    paths += [p for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))
              if p not in paths]
    cmd = [sys.executable, "-I", "-S", "-X", "importtime", "-c",
           _LEAN_LAUNCH.format(paths=paths), "--root", str(c.root), "exec",
           *[c.cid if a == "ID" else a for a in argv]]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    mods = {line.split("|")[2].strip() for line in res.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}
    return res, mods


@pytest.mark.skipif(bool(os.environ.get(helpers.RUNTIME_ENV)), reason="pyoci internals")
def test_exec_record_is_built_once_and_reused(start_container: StartContainer) -> None:
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 99}]}
    c = start_container(**{"linux.seccomp": seccomp})
    record = c.root / c.cid / "exec.marshal"
    assert not record.exists()
    res, first = _exec_imports(c, "ID", "/probe", "mkdir", "/tmp/x")
    assert (res.returncode, res.stdout) == (1, ""), res
    assert record.exists()
    assert "pyoci.spec.plan" in first and "pyoci.linux.seccomp" in first
    made = record.stat().st_ino
    res, again = _exec_imports(c, "ID", "/probe", "mkdir", "/tmp/x")
    # The probe's stderr is ours, shared with -X importtime's lines: look for its line.
    assert res.returncode == 1 and "errno=99\n" in res.stderr.splitlines(keepends=True), res
    assert record.stat().st_ino == made
    # Nor what exec doesn't need: another verb's module, or the console without a tty.
    for heavy in ("pyoci.linux.seccomp", "pyoci.spec.validate", "pyoci.spec.schema",
                  "pyoci.cgroups", "jsonschema", "pyoci.cli.run", "pyoci.cli.create",
                  "pyoci.linux.terminal", "termios"):
        assert heavy not in again, heavy
    inside = helpers.parse_status(c.exec_ok("ID", "/probe", "caps"))
    assert inside["Seccomp"] == "2", inside


@pytest.mark.skipif(bool(os.environ.get(helpers.RUNTIME_ENV)), reason="pyoci internals")
def test_exec_record_follows_a_rewritten_config(running: Running) -> None:
    running.exec_ok("ID", "/probe", "cwd")
    record = running.root / running.cid / "exec.marshal"
    config = running.root / running.cid / "config.json"
    before = record.read_bytes()
    # What `update` does: a new config.json renamed into place.
    data = json.loads(config.read_text())
    data["process"]["cwd"] = "/etc"
    tmp = config.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(config)
    assert running.exec_ok("ID", "/probe", "cwd") == "/etc\n"
    assert record.read_bytes() != before
    record.write_bytes(b"not marshal")  # a damaged record is rebuilt, never trusted
    assert running.exec_ok("ID", "/probe", "cwd") == "/etc\n"
    assert record.read_bytes() != b"not marshal"


@pytest.mark.parametrize(("flags", "message"), [
    (["--cwd", "tmp"], 'process.json: cwd: must be an absolute path, got "tmp"'),
    (["--user", "-1"], "process.json: user.uid: -1 is below the minimum 0"),
    (["--additional-gids", "4294967296"], "additionalGids"),
])
def test_flag_values_are_validated(running: Running, flags: list[str], message: str) -> None:
    res = running.exec(*flags, "ID", "/probe", "cwd")
    assert res.returncode == 255, res
    assert message in res.stderr, res.stderr

