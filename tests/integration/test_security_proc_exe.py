"""CVE-2019-5736 class: a container process must not reach the runtime's binary.

Every pyoci process is the host's Python interpreter (and its libpython), so
that is the file at risk. A static attacker (``/watch``) runs as the
container's init and loops over the container's ``/proc``: for every process
that is not one of the container's own binaries (the runtime entering via
``exec``, a second container's ``create`` sharing the pid namespace) it tries
``open(/proc/P/exe)`` for reading and for writing, ``open(/proc/P/mem)``,
reads ``/proc/P/environ`` and ``PTRACE_ATTACH``, and logs every success to a
bind-mounted host dir. See SECURITY.md, "/proc/self/exe".

The control (``test_detector_sees_a_dumpable_interpreter``) puts a *dumpable*
copy of the same interpreter into the container's pid namespace with
``nsenter`` and checks that the watcher does break into that one: the
detector works, so its silence in the other tests means something.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import create_helpers as ch
import helpers
import pytest

pytestmark = pytest.mark.integration

WATCH_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static FILE *out;
static char seen[1 << 22];

static int ours(const char *argv0)
{
    return !strncmp(argv0, "/watch", 6) || !strncmp(argv0, "/probe", 6);
}

static void cmdline_of(const char *pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        n = 0;
    buf[n] = 0;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i] || buf[i] == '\n')
            buf[i] = ' ';
}

static void attack(const char *pid)
{
    char path[64], cmd[200], again[200], hits[2048] = "";
    size_t h = 0;
    cmdline_of(pid, cmd, sizeof(cmd));
    if (!cmd[0] || ours(cmd))
        return;  /* a kernel thread, gone, or one of the container's own binaries */
    int n = atoi(pid);
    if (n > 0 && n < (int)sizeof(seen) && !seen[n]) {
        seen[n] = 1;
        fprintf(out, "seen %s %s\n", pid, cmd);
    }
#define HIT(...) do { if (h < sizeof(hits)) \
        h += snprintf(hits + h, sizeof(hits) - h, __VA_ARGS__); } while (0)
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%s/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* Identified by device and inode: the test compares with the interpreter. */
        if (fstat(fd, &st) == 0)
            fprintf(out, "exe-read %s %lu:%lu %s\n", pid, (unsigned long)st.st_dev,
                    (unsigned long)st.st_ino, cmd);
        close(fd);
    }
    fd = open(path, O_WRONLY | O_CLOEXEC);  /* no O_TRUNC: even success changes nothing */
    if (fd >= 0) {
        HIT("exe-write %s %s\n", pid, cmd);
        close(fd);
    }
    snprintf(path, sizeof(path), "/proc/%s/mem", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        HIT("mem %s %s\n", pid, cmd);
        close(fd);
    }
    snprintf(path, sizeof(path), "/proc/%s/environ", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char env[64];
        if (read(fd, env, sizeof(env)) > 0)
            HIT("environ %s %s\n", pid, cmd);
        close(fd);
    }
    /* SEIZE, not ATTACH: no SIGSTOP and no post-exec SIGTRAP left behind. */
    if (ptrace(PTRACE_SEIZE, n, 0, 0) == 0) {
        HIT("ptrace %s %s\n", pid, cmd);
        ptrace(PTRACE_INTERRUPT, n, 0, 0);
        waitpid(n, NULL, __WALL);
        ptrace(PTRACE_DETACH, n, 0, 0);
        kill(n, SIGCONT);
    }
    /* A process that exec'd meanwhile (the runtime becoming /probe) is dumpable
       again: a hit may belong to its successor, so only count it if the command
       line is still the one we aimed at. exe-read needs no such care: it is
       judged by the inode it opened. */
    cmdline_of(pid, again, sizeof(again));
    if (strcmp(again, cmd))
        fprintf(out, "raced %s\n", pid);
    else if (h)
        fputs(hits, out);
    fflush(out);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    out = fopen(argv[1], "a");
    if (!out)
        return 1;
    time_t end = time(NULL) + atoi(argv[2]);
    char self[32];
    snprintf(self, sizeof(self), "%d", getpid());
    fprintf(out, "ready %s\n", self);
    fflush(out);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        if (!d)
            return 1;
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] >= '1' && de->d_name[0] <= '9' && strcmp(de->d_name, self))
                attack(de->d_name);
        closedir(d);
    }
    fprintf(out, "done\n");
    fclose(out);
    return 0;
}
"""

# Loaded into any dynamically linked program started in the container (through the
# container's own /etc/ld.so.preload): it reports which file /proc/self/exe is.
EVIL_SO_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void evil(void)
{
    FILE *out = fopen("/report/out", "a");
    if (!out)
        _exit(3);
    struct stat st;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0)
        fprintf(out, "selfexe %lu:%lu\n", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    else
        fprintf(out, "selfexe-denied\n");
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (fd >= 0 && open(path, O_WRONLY | O_CLOEXEC) >= 0)  /* no O_TRUNC */
        fprintf(out, "selfexe-write\n");
    fclose(out);
    _exit(0);
}
"""

HITS = ("exe-write", "mem", "environ", "ptrace")
TRAMPOLINE = "pyoci-exec-trampoline"  # argv[0] of the exec trampoline (native/trampoline)


def _compile(src: str, out: Path, *flags: str) -> Path:
    out.with_suffix(".c").write_text(src)
    cmd = ["gcc", *flags, "-O2", "-Wall", "-Werror", "-o", str(out), str(out.with_suffix(".c"))]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def watch_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(WATCH_C, tmp_path_factory.mktemp("watch") / "watch", "-static")


@pytest.fixture(scope="module")
def evil_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(EVIL_SO_C, tmp_path_factory.mktemp("evil") / "evil.so", "-shared", "-fPIC")


def _ident(path: str | os.PathLike[str]) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _libraries(binary: str) -> list[str]:
    """The shared objects ``binary`` loads, from ldd (absolute paths only)."""
    res = subprocess.run(["ldd", binary], capture_output=True, text=True)
    out = []
    for line in res.stdout.splitlines():
        words = [w for w in line.replace("=>", " ").split() if w.startswith("/")]
        if words:
            out.append(words[0])
    return out


class Watched:
    """A running container whose init is the watcher; the report is a host file."""

    def __init__(self, cid: str, pid: int, root: Path, report: Path) -> None:
        self.cid, self.pid, self.root, self.report = cid, pid, root, report

    def lines(self) -> list[list[str]]:
        return [ln.split(" ", 3) for ln in self.report.read_text().splitlines()]

    def hits(self) -> list[str]:
        return [" ".join(w) for w in self.lines() if w[0] in HITS]

    def exe_reads(self) -> dict[str, str]:
        """pid -> dev:ino of every /proc/P/exe the watcher could open."""
        return {w[1]: w[2] for w in self.lines() if w[0] == "exe-read"}

    def seen(self, needle: str) -> list[str]:
        return [w[1] for w in self.lines() if w[0] == "seen" and needle in " ".join(w[2:])]


@pytest.fixture
def watched(make_bundle: Any, pyoci_root: Path, watch_bin: Path,
            tmp_path: Path) -> Iterator[Callable[..., Watched]]:
    made: list[str] = []

    def start(seconds: int = 120, **overrides: Any) -> Watched:
        report = tmp_path / f"report{len(made)}"
        report.mkdir()
        mounts = helpers.bundle_config(["x"])["mounts"] + [
            {"destination": "/report", "type": "bind", "source": str(report),
             "options": ["rbind", "rw"]}]
        bundle = make_bundle(["/watch", "/report/out", str(seconds)], mounts=mounts, **overrides)
        shutil.copy2(watch_bin, bundle / "rootfs" / "watch")
        cid = helpers.unique_id()
        helpers.run_pyoci("run", "-d", "--bundle", bundle, cid, root=pyoci_root, check=True)
        made.append(cid)
        pid = helpers.state(cid, pyoci_root)["pid"]
        ch.read_when(report / "out", lambda t: "ready" in t, "watcher ready")
        return Watched(cid, pid, pyoci_root, report / "out")

    yield start
    for cid in made:
        ch.force_delete(cid, pyoci_root)


def _runtime_interpreter(w: Watched) -> str:
    """The binary the runtime really runs as, read while a foreground exec waits."""
    cmd = [*helpers.runtime_command(), "--root", str(w.root), "exec", w.cid,
           "/probe", "sleep", "3.21"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def sleeping() -> bool:
            return any(ch.cmdline(int(p)) == "/probe sleep 3.21 "
                       for p in os.listdir("/proc") if p.isdigit())
        helpers.wait_for(sleeping, what="exec'd /probe sleep")
        # By now every launcher (shell shim, env) has exec'd into the runtime itself.
        return os.path.realpath(f"/proc/{proc.pid}/exe")
    finally:
        proc.wait(timeout=30)


def test_runtime_not_accessible_during_exec(watched: Callable[..., Watched]) -> None:
    """50 foreground execs while the watcher loops: the runtime is seen, never opened."""
    w = watched()
    interp = _runtime_interpreter(w)
    files = [interp, *_libraries(interp)]
    before = {f: _sha256(f) for f in files}
    for _ in range(50):
        helpers.run_pyoci("exec", w.cid, "/probe", "exit", "0", root=w.root, check=True,
                          env={**os.environ, "PYOCI_SECRET_MARKER": "host-only"})
    seen = w.seen("exec")
    assert seen, f"the watcher never saw the runtime inside; report:\n{w.report.read_text()}"
    # After the C exec step the process runs pyoci's static trampoline from a sealed
    # memfd, already with the container's ids, capabilities and seccomp: it is the
    # container's own process, holding nothing of the host. Reading it is allowed;
    # writing its exe is not (the seal forbids it anyway).
    hits = [h for h in w.hits()
            if not (h.split(" ", 3)[2:3] == [TRAMPOLINE] and not h.startswith("exe-write"))]
    assert hits == [], "\n".join(hits)
    bad = {p: i for p, i in w.exe_reads().items() if i in {_ident(f) for f in files}}
    assert bad == {}, f"opened the host interpreter through /proc/P/exe: {bad}"
    assert {f: _sha256(f) for f in files} == before


def test_runtime_not_accessible_during_create(watched: Callable[..., Watched],
                                              make_bundle: Any, pyoci_root: Path) -> None:
    """A second container created into the watcher's pid namespace: its init is the
    runtime (Python, waiting on exec.fifo) for as long as it stays created."""
    w = watched()
    for _ in range(3):
        bundle = make_bundle(["/probe", "exit", "0"], mutate=lambda c: _join_pid(c, w.pid))
        with ch.created(bundle, pyoci_root) as cid:
            init = helpers.state(cid, pyoci_root)["pid"]
            helpers.wait_for(lambda: w.seen("create"), what="watcher to see the created init")
            time.sleep(0.5)  # thousands of attempts on the waiting init
            interp = os.path.realpath(f"/proc/{init}/exe")
    assert w.hits() == [], "\n".join(w.hits())
    bad = {p: i for p, i in w.exe_reads().items() if i == _ident(interp)}
    assert bad == {}, f"opened the host interpreter through /proc/P/exe: {bad}"


def _join_pid(cfg: dict[str, Any], pid: int) -> None:
    for ns in cfg["linux"]["namespaces"]:
        if ns["type"] == "pid":
            ns["path"] = f"/proc/{pid}/ns/pid"


def test_detector_sees_a_dumpable_interpreter(watched: Callable[..., Watched]) -> None:
    """Control: the same interpreter, but dumpable and without capabilities (so the
    container's capability set covers it), put into the pid namespace by nsenter.
    The watcher must break into it; otherwise the tests above prove nothing."""
    w = watched()
    interp = _runtime_interpreter(w)
    proc = subprocess.Popen(
        ["nsenter", "-t", str(w.pid), "-p", "--", "setpriv", "--bounding-set=-all",
         "--inh-caps=-all", interp, "-c", "import time; time.sleep(30)  # control"])
    try:
        helpers.wait_for(lambda: w.seen("# control"), what="watcher to see the control")
        pid = w.seen("# control")[0]
        helpers.wait_for(lambda: any(h.startswith(f"mem {pid} ") for h in w.hits()),
                         what="watcher to open the control's memory")
        kinds = {h.split()[0] for h in w.hits() if h.split()[1] == pid}
        assert {"mem", "environ", "ptrace"} <= kinds, w.report.read_text()
        assert w.exe_reads().get(pid) == _ident(interp), w.report.read_text()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("via", ["run", "exec"])
def test_proc_self_exe_entrypoint(via: str, make_bundle: Any, pyoci_root: Path,
                                  evil_so: Path, tmp_path: Path,
                                  watched: Callable[..., Watched]) -> None:
    """The published attack: the image's entrypoint is ``#!/proc/self/exe``, so the
    kernel runs whatever binary the runtime is, *inside the container*, with the
    container's credentials. Here that binary loads the image's libraries (an
    /etc/ld.so.preload the attacker controls), whose constructor then opens
    /proc/self/exe: it must not be the host's interpreter."""
    w = watched(seconds=60)
    interp = _runtime_interpreter(w)
    libs = _libraries(interp)
    before = {f: _sha256(f) for f in [interp, *libs]}
    report = tmp_path / f"evil-{via}"
    report.mkdir()

    def plant(rootfs: Path) -> None:
        for lib in libs:  # what a real image has anyway: a libc, a loader
            dst = rootfs / lib.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dst)
        shutil.copy2(evil_so, rootfs / "evil.so")
        (rootfs / "etc" / "ld.so.preload").write_text("/evil.so\n")
        (rootfs / "evil-sh").write_text("#!/proc/self/exe\n")
        (rootfs / "evil-sh").chmod(0o755)

    mounts = helpers.bundle_config(["x"])["mounts"] + [
        {"destination": "/report", "type": "bind", "source": str(report),
         "options": ["rbind", "rw"]}]
    if via == "run":
        bundle = make_bundle(["/evil-sh"], mounts=mounts)
        plant(bundle / "rootfs")
        helpers.run_pyoci("run", "--bundle", bundle, helpers.unique_id(), root=pyoci_root,
                          timeout=60)
    else:
        bundle = make_bundle(["/probe", "sleep", "inf"], mounts=mounts)
        plant(bundle / "rootfs")
        with ch.created(bundle, pyoci_root) as cid:
            helpers.run_pyoci("start", cid, root=pyoci_root, check=True)
            helpers.run_pyoci("exec", cid, "/evil-sh", root=pyoci_root, timeout=60)
    text = (report / "out").read_text() if (report / "out").exists() else ""
    assert "selfexe-write" not in text
    assert f"selfexe {_ident(interp)}" not in text, (
        f"the container ran the host interpreter {interp} as its own process and holds a "
        f"read-only fd to it (CVE-2019-5736: reopen it for writing once it is idle):\n{text}")
    assert {f: _sha256(f) for f in [interp, *libs]} == before
