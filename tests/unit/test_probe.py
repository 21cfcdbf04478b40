"""The probe run directly on the host, where the right answers are known.

Integration tests trust the probe's report of what a container sees, so its
output format and correctness are pinned here, against the host's own view.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import helpers
import pytest

from pyoci.demo import is_static_elf


def probe(probe_path: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(probe_path), *args], capture_output=True, text=True,
                          timeout=30, **kw)  # type: ignore[call-overload]


def ok(probe_path: Path, *args: str, **kw: object) -> str:
    res = probe(probe_path, *args, **kw)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_is_static(probe_path: Path) -> None:
    assert is_static_elf(probe_path)


def test_id(probe_path: Path) -> None:
    groups = ",".join(str(g) for g in os.getgroups())
    assert ok(probe_path, "id") == f"uid={os.getuid()} gid={os.getgid()} groups={groups}\n"
    assert helpers.parse_kv(ok(probe_path, "euid")) == {"euid": str(os.geteuid()),
                                                       "egid": str(os.getegid())}


def test_umask(probe_path: Path) -> None:
    res = probe(probe_path, "umask", preexec_fn=lambda: os.umask(0o027))
    assert res.stdout == "0027\n"


def test_pid_ppid(probe_path: Path) -> None:
    p = subprocess.Popen([str(probe_path), "pid"], stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=30)
    assert out == f"{p.pid}\n"
    assert ok(probe_path, "ppid") == f"{os.getpid()}\n"


def test_ps_lists_itself_sorted(probe_path: Path) -> None:
    lines = [line.split(" ", 1) for line in ok(probe_path, "ps").splitlines()]
    pids = [int(pid) for pid, _ in lines]
    assert pids == sorted(pids)
    assert ["1"] == [pid for pid, _ in lines][:1]
    assert any(comm == "probe" for _, comm in lines)


def test_uname(probe_path: Path) -> None:
    assert ok(probe_path, "hostname") == os.uname().nodename + "\n"
    assert ok(probe_path, "domainname").strip() == Path(
        "/proc/sys/kernel/domainname").read_text().strip()


def test_files(probe_path: Path, tmp_path: Path) -> None:
    (tmp_path / "b").write_text("bee\n")
    (tmp_path / "a").write_text("ay\n")
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    (tmp_path / "l").symlink_to("a")
    os.mkfifo(tmp_path / "f", 0o600)
    assert ok(probe_path, "ls", str(tmp_path)) == "a\nb\nd\nf\nl\n"
    assert ok(probe_path, "cat", str(tmp_path / "a"), str(tmp_path / "b")) == "ay\nbee\n"
    assert ok(probe_path, "readlink", str(tmp_path / "l")) == "a\n"
    st = helpers.parse_kv(ok(probe_path, "stat", str(tmp_path / "d")))
    assert st == {"type": "dir", "mode": "0750", "uid": str(os.getuid()),
                  "gid": str(os.getgid()), "rdev": "0:0"}
    assert helpers.parse_kv(ok(probe_path, "stat", str(tmp_path / "l")))["type"] == "link"
    assert helpers.parse_kv(ok(probe_path, "stat", str(tmp_path / "f")))["type"] == "fifo"
    assert helpers.parse_kv(ok(probe_path, "stat", str(tmp_path / "a")))["type"] == "file"
    null = helpers.parse_kv(ok(probe_path, "stat", "/dev/null"))
    assert (null["type"], null["mode"], null["rdev"]) == ("chr", "0666", "1:3")

    missing = probe(probe_path, "cat", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert "errno=2" in missing.stderr and missing.stderr.count("\n") == 1


def test_mutations(probe_path: Path, tmp_path: Path) -> None:
    ok(probe_path, "mkdir", str(tmp_path / "new"))
    assert (tmp_path / "new").is_dir()
    ok(probe_path, "write", str(tmp_path / "w"), "hello")
    assert (tmp_path / "w").read_text() == "hello"
    ok(probe_path, "touch", str(tmp_path / "t"))
    assert (tmp_path / "t").exists()
    for args in (("mkdir", str(tmp_path / "x" / "y")), ("write", str(tmp_path / "x/y"), "z"),
                 ("touch", str(tmp_path / "x/y"))):
        res = probe(probe_path, *args)
        assert (res.returncode, res.stderr) == (1, "errno=2\n")
    res = probe(probe_path, "mkdir", str(tmp_path / "new"))
    assert (res.returncode, res.stderr) == (1, "errno=17\n")


def test_mounts(probe_path: Path) -> None:
    mounts = helpers.parse_mounts(ok(probe_path, "mounts"))
    proc = [m for m in mounts if m.target == "/proc"]
    assert proc and proc[0].fstype == "proc"
    assert all(m.target.startswith("/") for m in mounts)
    assert all(m.propagation for m in mounts)


def test_fds(probe_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "held"
    target.write_text("")
    with target.open() as held:
        num = held.fileno()
        res = probe(probe_path, "fds", pass_fds=(num,))
    fds = helpers.parse_pairs(res.stdout)
    assert set(fds) == {"0", "1", "2", str(num)}
    assert fds["0"] == "/dev/null"
    assert fds["1"].startswith("pipe:[")
    assert fds[str(num)] == str(target)


def test_ns_matches_host(probe_path: Path) -> None:
    ns = helpers.parse_pairs(ok(probe_path, "ns"))
    for name in ("pid", "mnt", "net", "uts", "ipc"):
        assert ns[name] == os.readlink(f"/proc/self/ns/{name}")
    assert list(ns) == sorted(ns)


def test_caps_and_status(probe_path: Path) -> None:
    caps = helpers.parse_status(ok(probe_path, "caps"))
    assert set(caps) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                         "Seccomp"}
    mine = helpers.parse_status(Path("/proc/self/status").read_text())
    assert caps["CapBnd"] == mine["CapBnd"]
    assert helpers.cap_set("0000000000000005") == {0, 2}
    status = helpers.parse_status(ok(probe_path, "status"))
    assert status["Name"] == "probe"


def test_signals(probe_path: Path) -> None:
    def ignore_usr1() -> None:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    res = probe(probe_path, "signals", preexec_fn=ignore_usr1)
    sig = helpers.parse_status(res.stdout)
    assert set(sig) == {"SigIgn", "SigBlk"}
    assert signal.SIGUSR1 - 1 in helpers.cap_set(sig["SigIgn"])


def test_env_cwd(probe_path: Path, tmp_path: Path) -> None:
    assert ok(probe_path, "env", env={"A": "1", "B": "two words"}) == "A=1\nB=two words\n"
    assert ok(probe_path, "cwd", cwd=tmp_path) == f"{tmp_path}\n"


def test_rlimit(probe_path: Path) -> None:
    def fmt(v: int) -> str:
        return "unlimited" if v == resource.RLIM_INFINITY else str(v)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ok(probe_path, "rlimit", "NOFILE") == f"{fmt(soft)} {fmt(hard)}\n"
    assert ok(probe_path, "rlimit", "RLIMIT_NOFILE") == f"{fmt(soft)} {fmt(hard)}\n"
    core = ok(probe_path, "rlimit", "core", preexec_fn=lambda: resource.setrlimit(
        resource.RLIMIT_CORE, (0, resource.RLIM_INFINITY)))
    assert core == "0 unlimited\n"
    assert probe(probe_path, "rlimit", "BOGUS").returncode == 1


def test_process_control(probe_path: Path) -> None:
    assert probe(probe_path, "exit", "7").returncode == 7
    assert probe(probe_path, "sleep", "0.05").returncode == 0
    sleeper = subprocess.Popen([str(probe_path), "sleep", "30"])
    try:
        ok(probe_path, "kill", str(sleeper.pid), "SIGTERM")
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
    finally:
        sleeper.kill()
    res = probe(probe_path, "kill", str(sleeper.pid), "TERM")
    assert (res.returncode, res.stderr) == (1, "errno=3\n")


def test_trap(probe_path: Path) -> None:
    p = subprocess.Popen([str(probe_path), "trap", "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGUSR1)
        assert p.stdout.read() == f"signal {int(signal.SIGUSR1)}\n"
        assert p.wait(timeout=10) == 0
    finally:
        p.kill()
        p.wait()
    assert probe(probe_path, "trap", "0.1").returncode == 1


def test_misc(probe_path: Path) -> None:
    assert ok(probe_path, "tty") == "not a tty\n"
    assert ok(probe_path, "echo", "a", "b c") == "a b c\n"
    assert ok(probe_path, "sysctl", "kernel.ostype") == "Linux\n"
    assert ok(probe_path, "sysctl", "kernel/ostype") == "Linux\n"
    assert ok(probe_path, "oom").strip() == Path("/proc/self/oom_score_adj").read_text().strip()
    assert int(ok(probe_path, "nice")) == os.getpriority(os.PRIO_PROCESS, 0)
    assert helpers.parse_kv(ok(probe_path, "sched"))["policy"] == "0"
    assert ok(probe_path, "affinity").strip()
    assert ok(probe_path, "personality").startswith("0x")


def test_hog_and_forkbomb(probe_path: Path) -> None:
    assert ok(probe_path, "hog", "8") == "hog=8\n"
    assert helpers.parse_kv(ok(probe_path, "forkbomb", "5")) == {"forked": "5", "errno": "0"}


@pytest.mark.parametrize("args", [[], ["bogus"], ["cat"], ["sleep", "soon"]])
def test_usage_errors(probe_path: Path, args: list[str]) -> None:
    res = probe(probe_path, *args)
    assert res.returncode == 2
    assert res.stdout == "" and res.stderr.startswith("probe: ")


def test_syscall(probe_path: Path) -> None:
    ok = subprocess.run([str(probe_path), "syscall", "39"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == f"ret={ok.stdout[4:-1]}\n", ok
    bad = subprocess.run([str(probe_path), "syscall", "1000"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip() == "errno=38", bad
