"""A private containerd with its CRI plugin on, and a small CRI client, for the pod tests.

Kubernetes reaches pyoci as kubelet → containerd's CRI plugin → the
``io.containerd.runc.v2`` shim → pyoci. This module stands in for kubelet.
The daemon is ``containerd_env``'s (own config, root, state and sockets in one
temp dir; the host's containerd and its config are never touched) with the CRI
plugin enabled and two runtime handlers:

- ``pyoci``: the README's ``[plugins."io.containerd.grpc.v1.cri".containerd.
  runtimes.pyoci]`` TOML, taken from README.md as written, with ``BinaryName``
  pointed at the runtime under test (``containerd_env.runtime_path()``, so
  ``PYOCI_TEST_RUNTIME`` applies) and a private ``Root`` added;
- ``runc``: the same shim with ``/usr/sbin/runc``, to show a test is sound.

``PYOCI_CRI_HANDLER`` picks the handler the pod tests use (default ``pyoci``).

Networking is CNI from Debian's containernetworking-plugins (/usr/lib/cni): a
bridge named for this session with host-local IPAM keeping its leases in the
temp dir; network namespaces are mounted under the CRI's state dir
(``netns_mounts_under_state_dir``), not /var/run/netns. The sandbox image is a
static ``pause`` (tests/cri/pause.c) built here, imported with ``ctr`` and named
by ``sandbox_image``: there is no registry to pull from.

The CRI client speaks gRPC with ``grpcio``; its stubs are generated at session
start from tests/cri/pyoci_cri.proto (only the messages and fields the tests
call) into the temp dir.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import containerd_env
import helpers
from containerd_env import IMAGE, ContainerdEnv, _toml_str

CRI_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin always uses
PAUSE_IMAGE = "docker.io/library/pyoci-pause:1"
HANDLER_ENV = "PYOCI_CRI_HANDLER"
HANDLERS = ("pyoci", "runc")
RUNC = Path("/usr/sbin/runc")
CNI_BIN_DIR = Path("/usr/lib/cni")
CRI_DIR = helpers.REPO_ROOT / "tests" / "cri"
PROTO = CRI_DIR / "pyoci_cri.proto"
PAUSE_SOURCE = CRI_DIR / "pause.c"
README = helpers.REPO_ROOT / "README.md"
# Pod cgroups go below this parent (cgroupfs paths, like kubelet's /kubepods).
POD_CGROUP_ROOT = "pyoci-cri"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# What containerd and the CNI plugins create outside the private dir, deepest first.
_HOST_LEFTOVERS = (Path("/run/containerd/s"), Path("/run/containerd/fifo"),
                   Path("/run/containerd"), Path("/var/lib/cni/results"), Path("/var/lib/cni"))


def handler() -> str:
    """The runtime handler the pod tests ask for: ``PYOCI_CRI_HANDLER`` or ``pyoci``."""
    name = os.environ.get(HANDLER_ENV, "pyoci")
    if name not in HANDLERS:
        raise RuntimeError(f"{HANDLER_ENV}={name!r}: expected one of {', '.join(HANDLERS)}")
    return name


# ---- the README ---------------------------------------------------------------

def readme_blocks(lang: str) -> list[str]:
    """The fenced ``lang`` code blocks of README.md, in order."""
    text = README.read_text()
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def readme_cri_config() -> str:
    """The README's CRI runtime TOML (the block naming ``containerd.runtimes``)."""
    blocks = [b for b in readme_blocks("toml") if "io.containerd.grpc.v1.cri" in b]
    if len(blocks) != 1:
        raise RuntimeError(f"README.md: expected one toml block for the CRI plugin, "
                           f"found {len(blocks)}")
    return blocks[0]


def readme_runtime_class() -> dict[str, str]:
    """The README's RuntimeClass object, as flat ``key: value`` pairs (nested keys dotted)."""
    blocks = [b for b in readme_blocks("yaml") if re.search(r"^kind: RuntimeClass$", b, re.M)]
    if len(blocks) != 1:
        raise RuntimeError(f"README.md: expected one RuntimeClass yaml block, "
                           f"found {len(blocks)}")
    out: dict[str, str] = {}
    parent = ""
    for line in blocks[0].splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(":")
        if line.startswith(" "):
            out[f"{parent}.{key}"] = value.strip()
        elif value.strip():
            out[key] = value.strip()
        else:
            parent = key
    return out


def handler_config(readme_toml: str, binary: Path, root: Path) -> tuple[str, str]:
    """(handler name, TOML) from the README's block: BinaryName → ``binary``, plus ``Root``."""
    names = re.findall(r'^\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.'
                       r'([A-Za-z0-9_-]+)\]$', readme_toml, re.M)
    if len(names) != 1:
        raise RuntimeError(f"README.md: expected one runtime table in the CRI block: {names}")
    toml, n = re.subn(r'^(\s*BinaryName\s*=\s*).*$', lambda m: m.group(1) + _toml_str(binary),
                      readme_toml, flags=re.M)
    if n != 1:
        raise RuntimeError("README.md: the CRI block has no BinaryName")
    # The options table is the block's last table: a private runtime root goes there.
    indent = re.search(r'^(\s*)BinaryName', toml, re.M).group(1)  # type: ignore[union-attr]
    return names[0], toml.rstrip("\n") + f"\n{indent}Root = {_toml_str(root)}\n"


# ---- the gRPC stubs -------------------------------------------------------------

def compile_proto(out_dir: Path) -> tuple[ModuleType, ModuleType]:
    """Generate the CRI messages and stubs from our .proto into ``out_dir`` and import them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{CRI_DIR}",
                          f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                          os.fspath(PROTO)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"protoc failed on {PROTO}:\n{res.stdout}{res.stderr}")
    if os.fspath(out_dir) not in sys.path:
        sys.path.insert(0, os.fspath(out_dir))
    return (importlib.import_module("pyoci_cri_pb2"),
            importlib.import_module("pyoci_cri_pb2_grpc"))


class CriClient:
    """The RuntimeService and ImageService of one containerd, over its unix socket.

    ``pb`` is the generated message module (``client.pb.PodSandboxConfig(...)``);
    every call takes a ``timeout`` (generous: the machine is shared).
    """

    def __init__(self, address: Path, pb: ModuleType, pb_grpc: ModuleType) -> None:
        import grpc

        self.pb = pb
        self.channel = grpc.insecure_channel(f"unix://{address}")
        self.runtime = pb_grpc.RuntimeServiceStub(self.channel)
        self.images = pb_grpc.ImageServiceStub(self.channel)

    def __getattr__(self, name: str) -> Any:
        """``client.RunPodSandbox(req, timeout=...)``: a RuntimeService RPC."""
        return getattr(self.runtime, name)

    def close(self) -> None:
        self.channel.close()


# ---- the daemon -----------------------------------------------------------------

def build_pause(out_dir: Path) -> Path:
    """A rootfs holding only the static ``/pause``."""
    rootfs = out_dir / "pause-rootfs"
    rootfs.mkdir(parents=True)
    cmd = [os.environ.get("CC", "gcc"), "-static", "-O2", "-Wall", "-Werror",
           "-o", os.fspath(rootfs / "pause"), os.fspath(PAUSE_SOURCE)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"cannot build pause: {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return rootfs


def _free_subnet() -> str:
    """A /24 in 10.231.0.0/16 that no route of the host's covers (sessions may overlap)."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    used = []
    for word in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", routes):
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    start = os.getpid() % 250
    for i in range(250):
        net = ipaddress.ip_network(f"10.231.{(start + i) % 250}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise RuntimeError("no free /24 in 10.231.0.0/16 for the CRI tests' bridge")


class CriEnv(ContainerdEnv):
    """A private containerd whose CRI plugin serves ``handler()`` pods on ``self.address``."""

    namespace = CRI_NAMESPACE

    def __init__(self, base: Path, runtime: Path) -> None:
        super().__init__(base, runtime)
        self.roots = {"pyoci": base / "rt-pyoci", "runc": base / "rt-runc"}
        self.cni_conf_dir = base / "net.d"
        self.ipam_dir = base / "ipam"
        self.logs = base / "logs"
        self.bridge = f"pyoci{os.getpid() % 100000}"
        self.subnet = _free_subnet()
        self.cri_state = self.state / "io.containerd.grpc.v1.cri"
        self.readme_handler, self.readme_toml = handler_config(
            readme_cri_config(), runtime, self.roots["pyoci"])
        self.client: CriClient | None = None
        self._preexisting_host = {p for p in _HOST_LEFTOVERS if p.exists()}

    # ---- setup ----------------------------------------------------------

    def write_config(self) -> None:
        cri = '[plugins."io.containerd.grpc.v1.cri"'
        self.config.write_text(
            "version = 2\n"
            f"root = {_toml_str(self.root)}\n"
            f"state = {_toml_str(self.state)}\n"
            'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", '
            '"io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", '
            '"io.containerd.internal.v1.tracing"]\n'
            "\n[grpc]\n"
            f"address = {_toml_str(self.address)}\n"
            "\n[ttrpc]\n"
            f"address = {_toml_str(self.base / 'c.sock.ttrpc')}\n"
            "\n[debug]\n"
            'level = "info"\n'
            "\n[metrics]\n"
            'address = ""\n'
            '\n[plugins."io.containerd.internal.v1.opt"]\n'
            f"path = {_toml_str(self.base / 'opt')}\n"
            f"\n{cri}]\n"
            f"sandbox_image = {_toml_str(PAUSE_IMAGE)}\n"
            'stream_server_address = "127.0.0.1"\n'
            'stream_server_port = "0"\n'
            "netns_mounts_under_state_dir = true\n"
            "enable_selinux = false\n"
            # The sandbox asks for oom_score_adj -998; a nested host may refuse to lower it.
            "restrict_oom_score_adj = true\n"
            f"\n{cri}.containerd]\n"
            f"snapshotter = {_toml_str(self.snapshotter)}\n"
            'default_runtime_name = "runc"\n'
            f"\n{cri}.containerd.runtimes.runc]\n"
            'runtime_type = "io.containerd.runc.v2"\n'
            f"{cri}.containerd.runtimes.runc.options]\n"
            f"BinaryName = {_toml_str(RUNC)}\n"
            f"Root = {_toml_str(self.roots['runc'])}\n"
            "\n# From README.md (BinaryName and Root set by the tests):\n"
            f"{self.readme_toml}"
            f"\n{cri}.cni]\n"
            f"bin_dir = {_toml_str(CNI_BIN_DIR)}\n"
            f"conf_dir = {_toml_str(self.cni_conf_dir)}\n"
            "max_conf_num = 1\n"
        )
        self.cni_conf_dir.mkdir()
        conflist = {
            "cniVersion": "0.4.0",
            "name": "pyoci-cri",
            "plugins": [{
                "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                         "dataDir": os.fspath(self.ipam_dir)},
            }],
        }
        (self.cni_conf_dir / "10-pyoci-cri.conflist").write_text(json.dumps(conflist, indent=1))

    def start(self, timeout: float = 60) -> None:
        super().start(timeout)
        pb, pb_grpc = compile_proto(self.base / "gen")
        self.client = CriClient(self.address, pb, pb_grpc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.Version(pb.VersionRequest(), timeout=10)
                return
            except Exception as exc:  # grpc.RpcError until the CRI plugin serves
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"the CRI plugin did not answer within {timeout}s: "
                                       f"{exc}\n{self.log()}") from None
                time.sleep(0.2)

    def import_images(self, rootfs: Path) -> None:
        """The test image and the pause image, into k8s.io; wait until the CRI sees both."""
        for name, tree, entry in ((IMAGE, rootfs, None),
                                  (PAUSE_IMAGE, build_pause(self.base), ["/pause"])):
            archive = containerd_env.build_oci_archive(tree, self.base / "image.tar", name,
                                                       entrypoint=entry)
            try:
                self.ctr("images", "import", "--snapshotter", self.snapshotter, archive,
                         check=True, timeout=120)
            finally:
                archive.unlink()
        assert self.client is not None
        pb = self.client.pb
        for name in (IMAGE, PAUSE_IMAGE):
            helpers.wait_for(lambda n=name: self.client.images.ImageStatus(  # type: ignore[union-attr]
                pb.ImageStatusRequest(image=pb.ImageSpec(image=n)), timeout=30).image.id,
                timeout=30, what=f"the CRI to list {name}")

    # ---- using it -------------------------------------------------------

    def runtime_root(self) -> Path:
        """The ``--root`` the shim passes to pyoci: the handler's ``Root`` + the namespace."""
        return self.roots["pyoci"] / CRI_NAMESPACE

    def state_dirs(self) -> set[str]:
        """Container ids in both handlers' runtime roots."""
        roots = [root / CRI_NAMESPACE for root in self.roots.values()]
        return {p.name for root in roots if root.is_dir()
                for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}

    def sandboxes(self) -> list[str]:
        assert self.client is not None
        resp = self.client.ListPodSandbox(self.client.pb.ListPodSandboxRequest(), timeout=60)
        return [s.id for s in resp.items]

    def netns_mounts(self) -> list[str]:
        return helpers.mounts_under(self.cri_state / "netns")

    # ---- teardown -------------------------------------------------------

    def cleanup_pods(self) -> list[str]:
        """Stop and remove every sandbox (and so its containers); return what was left."""
        problems = []
        if self.client is None or self.proc is None or self.proc.poll() is not None:
            return problems
        pb = self.client.pb
        for sid in self.sandboxes():
            problems.append(f"pod sandbox {sid} left behind")
            with contextlib.suppress(Exception):
                self.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid),
                                           timeout=120)
                self.client.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid),
                                             timeout=120)
        return problems

    def teardown_cri(self) -> list[str]:
        """Pods, images, the daemon, shims, runtime state, mounts, bridge, cgroups, dirs."""
        problems = self.cleanup_pods()
        if self.client is not None:
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            problems += self.cleanup_containers()
        problems += self.stop()
        problems += self._kill_shims()
        for handler_name, root in self.roots.items():
            binary = RUNC if handler_name == "runc" else self.runtime
            root = root / CRI_NAMESPACE
            for cid in sorted(p.name for p in root.glob("*") if not p.name.startswith(".")):
                problems.append(f"{root / cid} left behind")
                subprocess.run([os.fspath(binary), "--root", os.fspath(root), "delete",
                                "--force", cid], capture_output=True, timeout=60, check=False)
        for target in sorted(helpers.mounts_under(self.base), key=len, reverse=True):
            problems.append(f"mount {target} left behind")
            subprocess.run(["umount", "-l", target], check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        for parent in sorted(pod_cgroup_dirs(""), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                parent.rmdir()
        shutil.rmtree(self.base, ignore_errors=True)
        for path in _HOST_LEFTOVERS:
            if path not in self._preexisting_host:
                with contextlib.suppress(OSError):
                    path.rmdir()
        return problems


def pod_cgroup_dirs(rel: str) -> list[Path]:
    """``/sys/fs/cgroup[/<controller>]/pyoci-cri/<rel>`` that exist, deepest dirs last."""
    sub = f"{POD_CGROUP_ROOT}/{rel}".rstrip("/")
    found = []
    for top in (_CGROUP_ROOT / sub, *(d / sub for d in _CGROUP_ROOT.iterdir() if d.is_dir())):
        if top.is_dir():
            found += [top, *(p for p in top.rglob("*") if p.is_dir())]
    return found


@contextlib.contextmanager
def cri_env(rootfs: Path) -> Iterator[CriEnv]:
    """Start a private CRI containerd with the test and pause images; tear it all down after."""
    base = Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))
    env = CriEnv(base, containerd_env.runtime_path())
    try:
        env.write_config()
        env.start()
        env.import_images(rootfs)
        yield env
    finally:
        problems = env.teardown_cri()
        if problems:
            print("CRI containerd teardown:", *problems, sep="\n  ")


# ---- pods ---------------------------------------------------------------------

def pod_config(env: CriEnv, name: str, **linux: Any) -> Any:
    """A PodSandboxConfig like kubelet's: own cgroup parent, DNS, log dir, pod-wide net/IPC.

    The PID namespace is per container (kubelet's default for a v1 pod).
    """
    pb = env.client.pb  # type: ignore[union-attr]
    uid = uuid.uuid4().hex
    log_dir = env.logs / uid
    log_dir.mkdir(parents=True)
    ns = pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="pyoci-test"),
        hostname=name,
        log_directory=os.fspath(log_dir),
        dns_config=pb.DNSConfig(servers=["10.231.255.10"], searches=["pyoci.test"],
                                options=["ndots:2"]),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"/{POD_CGROUP_ROOT}/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns), **linux))


def run_pod(env: CriEnv, config: Any, runtime_handler: str, timeout: float = 180) -> str:
    pb = env.client.pb  # type: ignore[union-attr]
    return env.client.RunPodSandbox(  # type: ignore[union-attr]
        pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler),
        timeout=timeout).pod_sandbox_id


def container_config(env: CriEnv, name: str, command: list[str], **kw: Any) -> Any:
    """A ContainerConfig of the test image (busybox + /probe) logging to ``<name>.log``."""
    pb = env.client.pb  # type: ignore[union-attr]
    ns = pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
    resources = kw.pop("resources", None)
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=IMAGE),
        command=command, log_path=f"{name}.log",
        linux=pb.LinuxContainerConfig(
            resources=resources,
            security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)), **kw)


def start_container(env: CriEnv, sid: str, pod: Any, config: Any,
                    timeout: float = 180) -> str:
    """CreateContainer then StartContainer; the container's id."""
    client = env.client
    pb = client.pb  # type: ignore[union-attr]
    cid = client.CreateContainer(  # type: ignore[union-attr]
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=config, sandbox_config=pod),
        timeout=timeout).container_id
    client.StartContainer(pb.StartContainerRequest(container_id=cid),  # type: ignore[union-attr]
                          timeout=timeout)
    return cid


def remove_pod(env: CriEnv, sid: str, pod: Any, timeout: float = 180) -> list[Path]:
    """StopPodSandbox, RemovePodSandbox, then the pod's cgroup parent (kubelet's job).

    Returns the cgroups the runtime left below the pod's parent (they are removed too).
    """
    pb = env.client.pb  # type: ignore[union-attr]
    env.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid),  # type: ignore[union-attr]
                              timeout=timeout)
    env.client.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid),  # type: ignore[union-attr]
                                timeout=timeout)
    return remove_pod_cgroups(pod)


def remove_pod_cgroups(pod: Any) -> list[Path]:
    """Remove the pod's cgroup parent in every hierarchy; return the dirs found below it."""
    rel = pod.linux.cgroup_parent.removeprefix(f"/{POD_CGROUP_ROOT}/")
    dirs = pod_cgroup_dirs(rel)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    return [d for d in dirs if d.parent.name == f"pod{pod.metadata.uid}"]
