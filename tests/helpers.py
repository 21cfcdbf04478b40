"""Plain helpers shared by the test suites (fixtures live in conftest.py).

They speak runc's command line, not pyoci's Python API, so the same tests can
be pointed at another runtime: set ``PYOCI_TEST_RUNTIME=/usr/sbin/runc`` to
check that a test's expectation is what runc does, before blaming pyoci.

Tests import this module as ``helpers`` (pytest puts ``tests/`` on sys.path
because ``tests/conftest.py`` has no package around it).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBE_SOURCE = REPO_ROOT / "tests" / "probe" / "probe.c"
RUNTIME_ENV = "PYOCI_TEST_RUNTIME"


class _Delete:
    """Sentinel type: an override with this value removes the key."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()


class RuntimeCommandError(subprocess.CalledProcessError):
    """A failed runtime command whose message shows stderr.

    CalledProcessError's own message omits the output, which is the one thing
    needed to see why a container didn't start.
    """

    def __str__(self) -> str:
        return (f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


def unique_id() -> str:
    """A fresh container id, short enough for socket paths under ``--root``."""
    return f"t-{uuid.uuid4().hex[:12]}"


def runtime_command() -> list[str]:
    """The argv prefix that starts the runtime under test.

    ``PYOCI_TEST_RUNTIME`` wins (runc or crun for comparison, or a pyoci in
    another place); then the installed ``pyoci`` console script; then the
    package run from this checkout.
    """
    override = os.environ.get(RUNTIME_ENV)
    if override:
        return [override]
    script = shutil.which("pyoci")
    if script:
        return [script]
    return [sys.executable, "-m", "pyoci"]


def _runtime_env(cmd: Sequence[str], env: Mapping[str, str] | None) -> dict[str, str]:
    """Build the child's environment; ``-m pyoci`` needs the checkout on the path."""
    out = dict(os.environ if env is None else env)
    if list(cmd[1:2]) == ["-m"]:
        parts = [str(REPO_ROOT), *filter(None, out.get("PYTHONPATH", "").split(":"))]
        out["PYTHONPATH"] = ":".join(parts)
    return out


def _open_out(target: Path | None, stack: list[IO[Any]]) -> IO[Any]:
    f: IO[Any] = (open(target, "ab+") if target is not None
                  else tempfile.TemporaryFile())
    stack.append(f)
    return f


def _read_back(f: IO[Any], start: int) -> str:
    f.flush()
    f.seek(start)
    return f.read().decode(errors="replace")


def run_pyoci(
    *args: str | os.PathLike[str],
    root: str | os.PathLike[str],
    input: str | bytes | None = None,
    timeout: float = 60,
    check: bool = False,
    env: Mapping[str, str] | None = None,
    stdout: Path | None = None,
    stderr: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``<runtime> --root ROOT ARGS...`` and return its exit status and output.

    Output goes through files, never pipes: after ``create`` the container
    keeps the runtime's stdout/stderr open, so reading a pipe to EOF would
    block until the container exits. Pass ``stdout``/``stderr`` paths to keep
    what the container writes after the runtime returns (``create`` then
    ``start``); the returned text is what was written by the time the runtime
    exited. stdin is ``input``, or /dev/null so a container never reads the
    test runner's terminal.
    """
    cmd = [*runtime_command(), "--root", os.fspath(root), *map(os.fspath, args)]
    opened: list[IO[Any]] = []
    try:
        out = _open_out(stdout, opened)
        err = _open_out(stderr, opened)
        out_start, err_start = out.seek(0, os.SEEK_END), err.seek(0, os.SEEK_END)
        stdin: Any = subprocess.DEVNULL
        if input is not None:
            stdin = tempfile.TemporaryFile()
            opened.append(stdin)
            stdin.write(input.encode() if isinstance(input, str) else input)
            stdin.seek(0)
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err,
                                env=_runtime_env(cmd, env))
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(
                cmd, timeout, _read_back(out, out_start), _read_back(err, err_start)
            ) from None
        result = subprocess.CompletedProcess(
            cmd, rc, _read_back(out, out_start), _read_back(err, err_start)
        )
    finally:
        for f in opened:
            f.close()
    if check and result.returncode != 0:
        raise RuntimeCommandError(result.returncode, cmd, result.stdout, result.stderr)
    return result


def state(cid: str, root: str | os.PathLike[str]) -> dict[str, Any]:
    """The container's state JSON; raises with the runtime's stderr on failure."""
    return json.loads(run_pyoci("state", cid, root=root, check=True).stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy and return that value, or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_status(cid: str, root: str | os.PathLike[str], status: str,
                    timeout: float = 10) -> dict[str, Any]:
    """Wait until ``state`` reports ``status`` (e.g. "stopped" after the process exits)."""
    def check() -> dict[str, Any] | None:
        st = state(cid, root)
        return st if st.get("status") == status else None
    return wait_for(check, timeout, what=f"{cid} to be {status}")


def deep_update(target: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``target`` in place and return it.

    Dicts merge recursively; lists and scalars replace; ``DELETE`` removes a
    key. A dotted key such as ``"process.cwd"`` addresses a nested field, so a
    test can change one leaf without restating its siblings.
    """
    for key, value in updates.items():
        node = target
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(leaf, None)
        elif isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            deep_update(node[leaf], value)
        else:
            node[leaf] = copy.deepcopy(value)
    return target


def bundle_config(args: Sequence[str], overrides: Mapping[str, Any] | None = None,
                  mutate: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """runc's default config with no terminal, ``args``, then the test's changes.

    ``mutate`` runs last and may edit in place or return a replacement.
    """
    from pyoci.spec.default import default_config

    cfg = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    deep_update(cfg, overrides or {})
    if mutate is not None:
        replaced = mutate(cfg)
        if replaced is not None:
            cfg = replaced
    return cfg


def write_bundle(dest: Path, template_rootfs: Path, config: Mapping[str, Any]) -> Path:
    """Create ``dest`` with a private copy of the rootfs and ``config.json``.

    A real copy, not hardlinks: a test with a writable rootfs must not be able
    to change the template that later tests start from.
    """
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(template_rootfs), str(dest / "rootfs")], check=True)
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return dest


def build_probe(out_dir: Path) -> Path:
    """Compile probe.c statically into ``out_dir``; raise with gcc's output if it fails."""
    cc = os.environ.get("CC", "gcc")
    out = out_dir / "probe"
    cmd = [cc, "-static", "-O2", "-Wall", "-Werror", "-o", str(out), str(PROBE_SOURCE)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise RuntimeError(f"cannot build the probe: {cc} not found ({exc})") from exc
    if res.returncode != 0:
        raise RuntimeError(
            f"cannot build the probe: {' '.join(cmd)} exited {res.returncode}\n"
            f"{res.stdout}{res.stderr}"
        )
    return out


# ---- parsing probe output ----------------------------------------------------

def parse_kv(text: str) -> dict[str, str]:
    """Parse ``a=1 b=2`` words (probe id, stat, forkbomb) into a dict."""
    return dict(w.split("=", 1) for w in text.split() if "=" in w)


def parse_status(text: str) -> dict[str, str]:
    """Parse ``Name:\\tvalue`` lines (probe caps, signals, status)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_pairs(text: str) -> dict[str, str]:
    """Parse ``key value`` lines (probe fds, ns) into a dict keyed by the first word."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            out[key] = value
    return out


class Mount(NamedTuple):
    """One line of ``probe mounts``."""

    target: str
    fstype: str
    options: frozenset[str]
    super_options: frozenset[str]
    propagation: str


def parse_mounts(text: str) -> list[Mount]:
    """Parse ``probe mounts`` into Mount tuples, in mount order."""
    mounts = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5:
            mounts.append(Mount(f[0], f[1], frozenset(f[2].split(",")),
                                frozenset(f[3].split(",")), f[4]))
    return mounts


def cap_set(hex_mask: str) -> set[int]:
    """Capability numbers in a ``CapEff``-style hex mask."""
    mask = int(hex_mask, 16)
    return {bit for bit in range(64) if mask >> bit & 1}


def fs_type(path: str | os.PathLike[str]) -> str:
    """The filesystem type of the mount that holds ``path``."""
    best, fstype = "", ""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4]
            dash = fields.index("-")
            inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best):
                best, fstype = mnt, fields[dash + 1]
    return fstype


def mounts_under(base: str | os.PathLike[str]) -> list[str]:
    """Mount points below ``base`` (what a teardown must unmount)."""
    prefix = os.path.realpath(base).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    return [t for t in targets if t.startswith(prefix)]


def read_until(fd: int, needle: bytes) -> bytes:
    """Read a pty master until ``needle`` shows up (or the slave side is gone)."""
    import select

    buf = b""

    def more() -> bool:
        nonlocal buf
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buf += os.read(fd, 4096)
            except OSError:  # EIO: the slave side is gone
                return True
        return needle in buf
    wait_for(more, what=f"{needle!r} on the pty master")
    return buf


def podman_seccomp_to_oci(path: str | os.PathLike[str], caps: set[str],
                          arch: str = "amd64") -> dict[str, Any]:
    """Resolve a containers/common profile into the OCI linux.seccomp podman would emit.

    The file on disk is not OCI: it has archMap and per-rule includes/excludes
    on arches and capabilities, which podman evaluates before writing config.json.
    """
    d = json.loads(Path(path).read_text())
    out: dict[str, Any] = {"defaultAction": d["defaultAction"], "syscalls": []}
    if d.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = d["defaultErrnoRet"]
    for m in d.get("archMap") or []:
        if m["architecture"] == "SCMP_ARCH_X86_64":
            out["architectures"] = [m["architecture"], *m["subArchitectures"]]
    for s in d["syscalls"]:
        inc, exc = s.get("includes") or {}, s.get("excludes") or {}
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        rule: dict[str, Any] = {"names": s["names"], "action": s["action"]}
        if s.get("args"):
            rule["args"] = s["args"]
        if s.get("errnoRet") is not None:
            rule["errnoRet"] = s["errnoRet"]
        out["syscalls"].append(rule)
    return out
