"""config.md "Process": args, env, cwd, user, rlimits, capabilities, noNewPrivileges,
oomScoreAdj, terminal."""

from __future__ import annotations

import array
import os
import socket
import threading
from pathlib import Path

import pytest
import rt

CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6,
            "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_AUDIT_WRITE": 29}


def status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def test_args(probe) -> None:
    """config.md "Process / args": "with similar semantics to IEEE Std 1003.1-2008 execvp's
    argv" - the arguments arrive unchanged, spaces included."""
    res = probe("echo", "a b", "", "c")
    assert res.stdout == "a b  c\n"


def test_env_exact(probe) -> None:
    """config.md "Process / env": "with the same semantics as IEEE Std 1003.1-2008's
    environ" - the listed variables, unchanged (runtimes may add HOME, as runc does)."""
    env = ["PATH=/bin", "CONFORMANCE=1", "EMPTY="]
    res = probe("env", **{"process.env": env})
    got = [e for e in res.stdout.splitlines() if not e.startswith("HOME=")]
    assert sorted(got) == sorted(env)


def test_cwd(probe) -> None:
    """config.md "Process / cwd": "the working directory that will be set for the
    executable"."""
    res = probe("cwd", **{"process.cwd": "/tmp"})
    assert res.stdout.strip() == "/tmp"


def test_user_uid_gid_additional(probe) -> None:
    """config.md "POSIX process / user": uid, gid and additionalGids "MUST" be set in the
    process (with similar semantics to setuid/setgid/setgroups)."""
    res = probe("id", **{"process.user": {"uid": 1000, "gid": 1001,
                                          "additionalGids": [5, 1002]}})
    assert res.returncode == 0, res.stderr
    ids = dict(w.split("=", 1) for w in res.stdout.split())
    assert ids["uid"] == "1000" and ids["gid"] == "1001"
    assert set(ids["groups"].split(",")) >= {"5", "1002"}


def test_user_umask(probe) -> None:
    """config.md "POSIX process / user / umask": "the umask of the user" - applied to
    the process."""
    res = probe("umask", **{"process.user.umask": 0o027})
    assert res.stdout.strip() == "0027"


def test_rlimits_applied(probe) -> None:
    """config.md "POSIX process / rlimits": "the runtime MUST ... set the resource limits"
    - getrlimit(2) in the container returns the configured soft and hard values."""
    res = probe("rlimit", "NOFILE",
                **{"process.rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768}]})
    assert res.stdout.split() == ["512", "768"]


def test_rlimits_unknown_type_is_error(container: rt.Factory) -> None:
    """config.md "POSIX process / rlimits / type": "the runtime MUST generate an error for
    any values which cannot be mapped to a relevant kernel interface"."""
    c = container(**{"process.rlimits": [{"type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1}]})
    assert c.create(check=False).returncode != 0


def test_capabilities_sets(probe) -> None:
    """config.md "Linux process / capabilities": the bounding, effective, permitted,
    inheritable and ambient sets of the process are the listed ones."""
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    mask = f"{sum(1 << CAP_BITS[c] for c in caps):016x}"
    res = probe("caps", **{"process.capabilities": {
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps,
        "ambient": caps}})
    st = status(res.stdout)
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert st[key] == mask, (key, st[key], mask)


def test_capabilities_empty_effective(probe) -> None:
    """config.md "Linux process / capabilities / effective": an empty list leaves the
    process without effective capabilities (for a non-root user: execve as uid 0 would
    recompute the effective set from the bounding set, as the kernel documents)."""
    res = probe("caps", **{"process.user": {"uid": 1000, "gid": 1000},
                           "process.capabilities": {
        "bounding": ["CAP_KILL"], "effective": [], "permitted": ["CAP_KILL"],
        "inheritable": [], "ambient": []}})
    assert status(res.stdout)["CapEff"] == "0" * 16


def test_no_new_privileges_true(probe) -> None:
    """config.md "Linux process / noNewPrivileges": "setting noNewPrivileges to true
    prevents the process from gaining additional privileges" (PR_SET_NO_NEW_PRIVS)."""
    res = probe("caps", **{"process.noNewPrivileges": True})
    assert status(res.stdout)["NoNewPrivs"] == "1"


def test_no_new_privileges_false(probe) -> None:
    """config.md "Linux process / noNewPrivileges": false leaves the flag clear."""
    res = probe("caps", **{"process.noNewPrivileges": False})
    assert status(res.stdout)["NoNewPrivs"] == "0"


def test_oom_score_adj(probe) -> None:
    """config.md "Linux process / oomScoreAdj": "adjusts the oom-killer score in
    [pid]/oom_score_adj for the process's [pid]"."""
    res = probe("oom", **{"process.oomScoreAdj": 123})
    assert res.stdout.strip() == "123"


def test_exec_missing_binary_is_error(container: rt.Factory) -> None:
    """runtime.md "Operations / create" and config.md "Process / args": if args[0] can't
    be run the runtime MUST generate an error (at create or start) and the program does
    not run."""
    c = container(["/no/such/binary"])
    res = c.create(check=False)
    if res.returncode == 0:
        assert c.start(check=False).returncode != 0
        c.delete("--force")


def _serve_console(sock_path: Path, got: dict) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    srv.settimeout(30)

    def accept() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        got["name"], got["fds"] = msg, list(fds)
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    got["thread"] = t
    return srv


def test_terminal_console_socket(container: rt.Factory, tmp_path: Path) -> None:
    """config.md "Process / terminal": "terminal (bool, OPTIONAL) specifies whether a
    terminal is attached to the process"; runtime.md leaves the transport to the
    runtime, runc's --console-socket passes the pty master by SCM_RIGHTS. Optional:
    skipped if the runtime has no --console-socket."""
    c = container(["/probe", "tty"], **{"process.terminal": True})
    sock = tmp_path / "console.sock"
    got: dict = {}
    srv = _serve_console(sock, got)
    try:
        res = c.call("create", "--bundle", str(c.bundle), "--console-socket", str(sock), c.id)
        if res.returncode != 0 and "console-socket" in res.stderr and "flag" in res.stderr:
            pytest.skip("runtime has no --console-socket")
        assert res.returncode == 0, res.stderr
        got["thread"].join(10)
        assert got.get("fds"), "no pty master fd received"
        master = got["fds"][0]
        c.start()
        c.wait_status("stopped")
        out = b""
        os.set_blocking(master, False)
        try:
            while chunk := os.read(master, 4096):
                out += chunk
        except OSError:
            pass
        for fd in got["fds"]:
            os.close(fd)
        assert b"/dev/pts/" in out or b"/dev/console" in out, out
        c.delete()
    finally:
        srv.close()


def test_terminal_without_socket_is_error(container: rt.Factory) -> None:
    """config.md "Process / terminal" with a detached create: the runtime cannot attach a
    terminal without a console socket and MUST generate an error (runtime.md create:
    "If the runtime cannot create the container as specified ... MUST generate an
    error")."""
    c = container(**{"process.terminal": True})
    res = c.create(check=False)
    if res.returncode == 0:
        c.delete("--force")
    assert res.returncode != 0


