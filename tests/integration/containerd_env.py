"""A private containerd for the tests: its own config, root, state and socket.

Nothing here touches a containerd the host may run. The daemon gets a
minimal config (version 2) whose ``root``, ``state``, gRPC and ttrpc sockets
and ``opt`` dir all live in one temp dir under /tmp (short: unix socket paths
are limited to 108 bytes), with the CRI plugin disabled. Snapshots use
``overlayfs``, or ``native`` when the temp dir is itself on overlayfs.

What the ``io.containerd.runc.v2`` shim of containerd 1.6 always puts outside
that dir: the runtime's state under ``/run/containerd/runc/<namespace>`` (its
default ``--root``) and its own sockets under ``/run/containerd/s``. Those are
removed after the session when they did not exist before it (the namespace's
runtime root with what the runtime keeps there besides containers, e.g.
pyoci's ``.cache``), as are the empty ``/<namespace>`` parent cgroups.
``ctr`` gets ``--fifo-dir`` in the temp dir: it leaves the FIFOs of a
detached exec behind in its default /run/containerd/fifo.

The image is an OCI image layout built here from the rootfs (index.json,
oci-layout, and blobs for the manifest, the config and one gzipped layer),
so no other tool's storage is involved.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import helpers

NAMESPACE = "pyoci-test"
IMAGE = "docker.io/library/pyoci-test:latest"
SNAPSHOT_FALLBACK = "native"
RUNC_ROOT_BASE = Path("/run/containerd/runc")
# What containerd 1.6 creates outside the private dir whatever the config says,
# deepest first: the runtime's root, the shims' sockets and ctr's FIFO dir.
_HOST_LEFTOVERS = (RUNC_ROOT_BASE / NAMESPACE, RUNC_ROOT_BASE, Path("/run/containerd/s"),
                   Path("/run/containerd/fifo"), Path("/run/containerd"))
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def runtime_path() -> Path:
    """The ``--runc-binary`` given to ctr.

    ``PYOCI_TEST_RUNTIME`` wins (``/usr/sbin/runc`` checks an expectation
    against runc). Otherwise the real ``pyoci`` console script of this
    Python, not a pyenv shim (a bash wrapper that needs PATH and pyenv's
    environment).
    """
    override = os.environ.get(helpers.RUNTIME_ENV)
    if override:
        return Path(override)
    return Path(sysconfig.get_path("scripts")) / "pyoci"


def runc_root() -> Path:
    """The ``--root`` the shim passes to the runtime for our namespace."""
    return RUNC_ROOT_BASE / NAMESPACE




def namespace_cgroups() -> list[Path]:
    """``/<namespace>``, the parent cgroup of ctr's default ``cgroupsPath`` (cgroupfs)."""
    return [p for p in (_CGROUP_ROOT / NAMESPACE, *_CGROUP_ROOT.glob(f"*/{NAMESPACE}"))
            if p.is_dir()]


def _toml_str(value: str | os.PathLike[str]) -> str:
    return json.dumps(os.fspath(value))


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


# ---- the image ------------------------------------------------------------------

def _blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_oci_archive(rootfs: Path, dest: Path, name: str = IMAGE,
                      entrypoint: list[str] | None = None) -> Path:
    """Write an OCI image layout tar at ``dest`` holding ``rootfs`` as one layer.

    The manifest's descriptor in index.json carries the platform (ctr imports
    only the host's platform) and ``io.containerd.image.name`` (the name ctr
    gives the image). ``entrypoint`` sets the config's Entrypoint (and empties Cmd).
    """
    work = Path(tempfile.mkdtemp(prefix="oci-", dir=dest.parent))
    try:
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layer_tar = work / "layer.tar"
        subprocess.run(["tar", "-C", os.fspath(rootfs), "--numeric-owner", "-cf",
                        os.fspath(layer_tar), "."], check=True)
        raw = layer_tar.read_bytes()
        layer_tar.unlink()
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                 **_blob(blobs, gzip.compress(raw, compresslevel=1, mtime=0))}
        arch = _GOARCH.get(platform.machine(), platform.machine())
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/bin/sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "pyoci tests"}],
        }
        if entrypoint is not None:
            config["config"].update(Entrypoint=entrypoint, Cmd=[])
        config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **_blob(blobs, json.dumps(config).encode())}
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer]}
        manifest_desc = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(blobs, json.dumps(manifest).encode()),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
        }
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest_desc]}
        (work / "index.json").write_text(json.dumps(index))
        (work / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        with tarfile.open(dest, "w") as tar:
            for entry in ("oci-layout", "index.json", "blobs"):
                tar.add(work / entry, arcname=entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


# ---- the daemon -----------------------------------------------------------------

class ContainerdEnv:
    """One private containerd, shared by a test session.

    ``ctr(*args)`` runs ``ctr --address SOCK --namespace pyoci-test ARGS``.
    """

    namespace = NAMESPACE  # the CRI's subclass uses k8s.io

    def __init__(self, base: Path, runtime: Path) -> None:
        self.base = base
        self.runtime = runtime
        self.address = base / "c.sock"
        self.root = base / "root"
        self.state = base / "state"
        self.config = base / "config.toml"
        self.log_path = base / "containerd.log"
        self.snapshotter = (SNAPSHOT_FALLBACK if helpers.fs_type(base) in ("overlay", "aufs")
                            else "overlayfs")
        self.proc: subprocess.Popen[bytes] | None = None
        self._preexisting = {p for p in _HOST_LEFTOVERS if p.exists()}
        self._had_cgroups = bool(namespace_cgroups())

    # ---- setup ----------------------------------------------------------

    def write_config(self) -> None:
        self.config.write_text(
            "version = 2\n"
            f"root = {_toml_str(self.root)}\n"
            f"state = {_toml_str(self.state)}\n"
            'disabled_plugins = ["io.containerd.grpc.v1.cri", '
            '"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", '
            '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", '
            '"io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]\n'
            "\n[grpc]\n"
            f"address = {_toml_str(self.address)}\n"
            "\n[ttrpc]\n"
            f"address = {_toml_str(self.base / 'c.sock.ttrpc')}\n"
            "\n[debug]\n"
            'level = "debug"\n'
            "\n[metrics]\n"
            'address = ""\n'
            '\n[plugins."io.containerd.internal.v1.opt"]\n'
            f"path = {_toml_str(self.base / 'opt')}\n"
        )

    def start(self, timeout: float = 30) -> None:
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["containerd", "--config", os.fspath(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited {self.proc.returncode}:\n{self.log()}")
            res = self.ctr("version", timeout=10, namespace=False)
            if res.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"containerd did not answer within {timeout}s: "
                                   f"{res.stderr.strip()}\n{self.log()}")
            time.sleep(0.1)

    def import_image(self, rootfs: Path) -> None:
        archive = build_oci_archive(rootfs, self.base / "image.tar")
        try:
            self.ctr("images", "import", "--snapshotter", self.snapshotter, archive,
                     check=True, timeout=120)
        finally:
            archive.unlink()

    # ---- using it -------------------------------------------------------

    def log(self, tail: int = 60) -> str:
        """The last ``tail`` lines of containerd's own log (shim errors land here too)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def ctr_argv(self, *args: str | os.PathLike[str], namespace: bool = True) -> list[str]:
        """``ctr --address SOCK --namespace NS ARGS``.

        ``run`` and ``task exec`` also get ``--fifo-dir`` in our dir: ctr
        leaves the FIFOs of a detached exec in its default /run/containerd/fifo.
        """
        argv = [os.fspath(a) for a in args]
        if argv[:1] == ["run"] or argv[:2] == ["task", "exec"]:
            at = 1 if argv[0] == "run" else 2
            argv[at:at] = ["--fifo-dir", os.fspath(self.base / "fifo")]
        cmd = ["ctr", "--address", os.fspath(self.address)]
        if namespace:
            cmd += ["--namespace", self.namespace]
        return cmd + argv

    def ctr(self, *args: str | os.PathLike[str], timeout: float = 60, check: bool = False,
            namespace: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this daemon; output goes through files, not pipes.

        The shim of a detached task outlives ctr and must not be able to keep
        a pipe of ours open. stdin is /dev/null: ``ctr run`` copies its stdin
        to the task but doesn't close the task's stdin at EOF.
        """
        cmd = self.ctr_argv(*args, namespace=namespace)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    cwd=self.base)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(cmd, timeout, _read(out), _read(err)) from None
            result = subprocess.CompletedProcess(cmd, rc, _read(out), _read(err))
        if check and result.returncode != 0:
            raise helpers.RuntimeCommandError(result.returncode, cmd, result.stdout,
                                              result.stderr)
        return result

    def ctr_background(self, *args: str | os.PathLike[str], out: Path, err: Path,
                       ) -> subprocess.Popen[bytes]:
        """Start ``ctr ARGS`` (e.g. a foreground ``run``) without waiting for it."""
        with open(out, "wb") as o, open(err, "wb") as e:
            return subprocess.Popen(self.ctr_argv(*args), stdin=subprocess.DEVNULL,
                                    stdout=o, stderr=e, cwd=self.base)

    def bundle(self, cid: str) -> Path:
        """The task's bundle dir, where the shim keeps ``log.json`` and ``init.pid``."""
        return self.state / "io.containerd.runtime.v2.task" / self.namespace / cid

    def tasks(self) -> dict[str, tuple[int, str]]:
        """``ctr task ls`` as {id: (pid, status)}."""
        out = self.ctr("task", "ls", check=True).stdout.splitlines()
        tasks = {}
        for line in out[1:]:
            fields = line.split()
            if len(fields) >= 3:
                tasks[fields[0]] = (int(fields[1]), fields[2])
        return tasks

    def containers(self) -> list[str]:
        return self.ctr("container", "ls", "--quiet", check=True).stdout.split()

    def runtime_root(self) -> Path:
        """The ``--root`` the shim passes to the runtime."""
        return runc_root()

    def state_dirs(self) -> set[str]:
        """Container ids in the runtime's state root for our namespace."""
        root = self.runtime_root()
        if not root.is_dir():
            return set()
        return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}

    # ---- teardown -------------------------------------------------------

    def cleanup_containers(self) -> list[str]:
        """Kill and delete every task and container; return what had to be removed."""
        problems = []
        for cid in self.tasks():
            problems.append(f"task {cid} left behind")
            self.ctr("task", "kill", "--signal", "SIGKILL", cid, timeout=30)
            with contextlib.suppress(AssertionError):
                helpers.wait_for(lambda c=cid: self.tasks().get(c, (0, "STOPPED"))[1]
                                 == "STOPPED", timeout=10, what=f"{cid} to stop")
            self.ctr("task", "delete", "--force", cid, timeout=30)
        for cid in self.containers():
            problems.append(f"container {cid} left behind")
            self.ctr("container", "delete", cid, timeout=30)
        return problems

    def stop(self, timeout: float = 20) -> list[str]:
        problems: list[str] = []
        if self.proc is None or self.proc.poll() is not None:
            return problems
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"containerd ignored SIGTERM for {timeout}s")
            self.proc.kill()
            self.proc.wait()
        return problems

    def _kill_shims(self) -> list[str]:
        """SIGKILL shims started by this daemon (their argv names our socket)."""
        problems = []
        marker = os.fspath(self.address).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
                problems.append(f"shim pid {proc.name} still running")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
        return problems

    def teardown(self, state_before: set[str]) -> list[str]:
        """Remove containers and the image, stop the daemon, clean mounts and dirs."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            problems += self.cleanup_containers()
            self.ctr("images", "rm", IMAGE, timeout=60)
        problems += self.stop()
        problems += self._kill_shims()
        leaked = self.state_dirs() - state_before
        for cid in sorted(leaked):
            problems.append(f"{self.runtime_root() / cid} left behind")
            helpers.run_pyoci("delete", "--force", cid, root=self.runtime_root(), timeout=30)
        for target in sorted(helpers.mounts_under(self.base), key=len, reverse=True):
            # containerd unmounts its own on the way out; anything here leaked.
            problems.append(f"mount {target} left behind")
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        if runc_root() not in self._preexisting and not self.state_dirs():
            shutil.rmtree(runc_root(), ignore_errors=True)
        for path in _HOST_LEFTOVERS:
            if path not in self._preexisting:
                with contextlib.suppress(OSError):
                    path.rmdir()
        if not self._had_cgroups:
            # The empty parents the runtime made for ``/<namespace>/<id>``.
            for parent in namespace_cgroups():
                with contextlib.suppress(OSError):
                    parent.rmdir()
        return problems


@contextlib.contextmanager
def containerd_env(rootfs: Path) -> Iterator[ContainerdEnv]:
    """Start a private containerd with the test image; tear everything down after."""
    base = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
    env = ContainerdEnv(base, runtime_path())
    before = env.state_dirs()
    try:
        env.write_config()
        env.start()
        env.import_image(rootfs)
        yield env
    finally:
        problems = env.teardown(before)
        if problems:
            # Visible in the session's output; the per-test checks fail the tests.
            print("containerd teardown:", *problems, sep="\n  ")
