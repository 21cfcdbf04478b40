"""Pods through containerd's CRI plugin: kubelet's path to pyoci (issue 16).

A private containerd 1.6 with the CRI plugin on (``cri_env``) runs pods with
the runtime handler ``PYOCI_CRI_HANDLER`` (default ``pyoci``, the README's
runtime table pointing at the runtime under test; ``runc`` is containerd's
usual runc, to show a test is sound). This module plays kubelet over gRPC.

What a pod exercises that ``ctr run`` doesn't: the sandbox (pause) container
holds the network, IPC and UTS namespaces and the app containers join them by
path; all of the pod's containers share its cgroup parent; containerd
bind-mounts /etc/hosts, /etc/resolv.conf, /etc/hostname and the sandbox's
/dev/shm into each container; ExecSync and the container logs go through the
shim; UpdateContainerResources runs the runtime's ``update``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import cri_env
import helpers
from cri_env import CriEnv

pytestmark = pytest.mark.integration

HANDLER = cri_env.handler()
TIMEOUT = 300  # per RPC: the machine is shared and the tests may run under load
MiB = 1024 * 1024


@pytest.fixture(scope="session")
def cri(rootfs_template: Path) -> Iterator[CriEnv]:
    """The session's private CRI containerd, with the test and pause images imported."""
    missing = [t for t in ("containerd", "ctr", "containerd-shim-runc-v2")
               if shutil.which(t) is None]
    missing += [os.fspath(p) for p in (cri_env.CNI_BIN_DIR / "bridge",
                                       cri_env.CNI_BIN_DIR / "host-local") if not p.exists()]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} "
                    "(apt-get install containerd containernetworking-plugins)", pytrace=False)
    try:
        import grpc_tools  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"{exc}: pip install grpcio-tools (the [test] extras)", pytrace=False)
    try:
        with cri_env.cri_env(rootfs_template) as env:
            yield env
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


class Pods:
    """Kubelet's side of a test: pods and containers made through the CRI."""

    def __init__(self, env: CriEnv) -> None:
        self.env = env
        self.client = env.client
        self.pb = env.client.pb  # type: ignore[union-attr]
        self.live: dict[str, Any] = {}
        self.lock = threading.Lock()

    def run(self, name: str = "pod", runtime_handler: str = HANDLER) -> tuple[str, Any]:
        config = cri_env.pod_config(self.env, name)
        sid = cri_env.run_pod(self.env, config, runtime_handler, timeout=TIMEOUT)
        with self.lock:
            self.live[sid] = config
        return sid, config

    def container(self, sid: str, pod: Any, name: str, command: list[str],
                  **kw: Any) -> str:
        config = cri_env.container_config(self.env, name, command, **kw)
        return cri_env.start_container(self.env, sid, pod, config, timeout=TIMEOUT)

    def remove(self, sid: str) -> None:
        """Stop and remove the pod; the runtime must have removed its containers' cgroups."""
        with self.lock:
            config = self.live.pop(sid)
        left = cri_env.remove_pod(self.env, sid, config, timeout=TIMEOUT)
        assert not left, f"cgroups left behind: {left}"

    # ---- queries ----------------------------------------------------------

    def remove_parent_cgroups(self, sid: str) -> None:
        """Forget a pod the test stopped and removed itself; remove its cgroup parent."""
        with self.lock:
            config = self.live.pop(sid)
        cri_env.remove_pod_cgroups(config)

    def exec(self, cid: str, *cmd: str) -> Any:
        return self.client.ExecSync(  # type: ignore[union-attr]
            self.pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=120),
            timeout=TIMEOUT)

    def out(self, cid: str, *cmd: str) -> str:
        """ExecSync's stdout, asserting exit code 0."""
        res = self.exec(cid, *cmd)
        assert res.exit_code == 0, (cmd, res)
        return res.stdout.decode()

    def status(self, cid: str) -> tuple[Any, dict[str, Any]]:
        resp = self.client.ContainerStatus(  # type: ignore[union-attr]
            self.pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=TIMEOUT)
        return resp.status, json.loads(resp.info.get("info", "{}"))

    def pod_status(self, sid: str) -> tuple[Any, dict[str, Any]]:
        resp = self.client.PodSandboxStatus(  # type: ignore[union-attr]
            self.pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True), timeout=TIMEOUT)
        return resp.status, json.loads(resp.info.get("info", "{}"))

    def wait_exited(self, cid: str, timeout: float = 60) -> Any:
        return helpers.wait_for(
            lambda: (st := self.status(cid)[0]).state == self.pb.CONTAINER_EXITED and st,
            timeout, interval=0.2, what=f"container {cid[:12]} to exit")


@pytest.fixture
def pods(cri: CriEnv) -> Iterator[Pods]:
    """``Pods`` for one test; afterwards no sandbox, runtime state or netns may be left."""
    p = Pods(cri)
    yield p
    problems = []
    for sid in list(p.live):
        problems.append(f"pod {sid[:12]} not removed by the test")
        try:
            p.remove(sid)
        except Exception as exc:
            problems.append(f"removing pod {sid[:12]}: {exc}")
    problems += cri.cleanup_pods()
    problems += [f"runtime state {cid[:12]} left behind" for cid in sorted(cri.state_dirs())]
    problems += [f"netns mount {m} left behind" for m in cri.netns_mounts()]
    if problems:
        pytest.fail("; ".join(problems) + "\n" + cri.log(30), pytrace=False)


def ns_ids(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("net", "ipc", "uts", "pid")}


def cgroup_of(pid: int, controller: str = "memory") -> str:
    """The process's cgroup path in ``controller``'s v1 hierarchy (or the unified one)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path
    return next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))


def memory_limit(pid: int) -> int:
    v1 = Path("/sys/fs/cgroup/memory") / cgroup_of(pid).lstrip("/") / "memory.limit_in_bytes"
    if v1.exists():
        return int(v1.read_text())
    raw = (Path("/sys/fs/cgroup") / cgroup_of(pid).lstrip("/") / "memory.max").read_text()
    return int(raw)


def mount_points(mountinfo: str) -> set[str]:
    return {line.split()[4] for line in mountinfo.splitlines()}


# ---- one pod, two containers ------------------------------------------------------


def test_containers_share_the_pods_namespaces_and_files(pods) -> None:
    sid, pod = pods.run("shared-pod")
    server = pods.container(sid, pod, "server", [
        "sh", "-c", "mkdir -p /www && echo pong > /www/index.html && "
                    "exec httpd -f -p 127.0.0.1:8080 -h /www"])
    client = pods.container(sid, pod, "client", ["/probe", "sleep", "1000"])

    # Network: the client reaches the server's loopback-only listener.
    def fetch() -> str | None:
        res = pods.exec(client, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html")
        return res.stdout.decode() if res.exit_code == 0 else None
    assert helpers.wait_for(fetch, timeout=60, interval=0.3, what="the server") == "pong\n"

    # Namespaces, by inode: net, IPC and UTS are the sandbox's; PID is per container.
    pause_pid = pods.pod_status(sid)[1]["pid"]
    pids = {"pause": pause_pid, "server": pods.status(server)[1]["pid"],
            "client": pods.status(client)[1]["pid"]}
    ns = {name: ns_ids(pid) for name, pid in pids.items()}
    for kind in ("net", "ipc", "uts"):
        assert ns["server"][kind] == ns["client"][kind] == ns["pause"][kind], (kind, ns)
    assert len({ns[n]["pid"] for n in ns}) == 3, ns
    assert ns["pause"]["net"] != os.readlink("/proc/self/ns/net")
    # ...which CNI set up: the pod's IP is on the containers' eth0.
    pod_ip = pods.pod_status(sid)[0].network.ip
    assert f"inet {pod_ip}/" in pods.out(client, "ip", "-4", "addr", "show", "eth0")

    # UTS: the pod's hostname, in both containers.
    assert pods.out(server, "hostname") == pods.out(client, "hostname") == "shared-pod\n"

    # IPC + /dev/shm: the sandbox's shm, seen by both.
    pods.out(server, "sh", "-c", "echo from-server > /dev/shm/marker")
    assert pods.out(client, "cat", "/dev/shm/marker") == "from-server\n"

    # containerd's bind mounts: /etc/hosts, /etc/resolv.conf, /etc/hostname, /dev/shm.
    mounts = mount_points(pods.out(client, "cat", "/proc/self/mountinfo"))
    assert {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/dev/shm"} <= mounts, mounts
    resolv = pods.out(client, "cat", "/etc/resolv.conf")
    assert "nameserver 10.231.255.10" in resolv and "search pyoci.test" in resolv, resolv
    assert pods.out(client, "cat", "/etc/hostname") == "shared-pod\n"
    assert "localhost" in pods.out(client, "cat", "/etc/hosts")

    # The pod's cgroup parent holds every container of the pod.
    parent = pod.linux.cgroup_parent
    assert cgroup_of(pause_pid) == f"{parent}/{sid}"
    assert cgroup_of(pids["server"]) == f"{parent}/{server}"
    assert cgroup_of(pids["client"]) == f"{parent}/{client}"
    pods.remove(sid)


def test_exec_sync_returns_stdout_stderr_and_exit_code(pods) -> None:
    sid, pod = pods.run()
    cid = pods.container(sid, pod, "app", ["/probe", "sleep", "1000"])
    res = pods.exec(cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (res.stdout, res.stderr, res.exit_code) == (b"out\n", b"err\n", 7)
    # The exec joins the container's namespaces (its PID namespace is its own).
    res = pods.exec(cid, "readlink", "/proc/self/ns/pid")
    pid_ns = ns_ids(pods.status(cid)[1]["pid"])["pid"]
    assert (res.stdout.decode(), res.stderr, res.exit_code) == (pid_ns + "\n", b"", 0)
    # A failed exec is an RPC error carrying the runtime's message, as with runc.
    with pytest.raises(grpc.RpcError) as err:
        pods.exec(cid, "/no/such/binary")
    assert ('exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
            in err.value.details()), err.value.details()
    pods.remove(sid)


def test_container_logs_reach_the_cri_log_path(pods) -> None:
    sid, pod = pods.run()
    cid = pods.container(sid, pod, "logger", [
        "sh", "-c", "echo to-stdout; echo to-stderr >&2; printf 'no-newline'"])
    status = pods.wait_exited(cid)
    log = Path(status.log_path)
    assert log == Path(pod.log_directory) / "logger.log"
    # CRI log format: <RFC3339Nano time> <stream> <P|F> <text>; P marks a partial line.
    lines = helpers.wait_for(lambda: len(log.read_text().splitlines()) >= 3 and
                             log.read_text().splitlines(), timeout=30, what="3 log lines")
    entries = set()
    for line in lines:
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) "
                         r"(.*)", line)
        assert m, line
        entries.add(m.groups()[1:])
    assert entries == {("stdout", "F", "to-stdout"), ("stderr", "F", "to-stderr"),
                       ("stdout", "P", "no-newline")}, lines
    pods.remove(sid)


def test_update_container_resources_changes_the_memory_limit(pods) -> None:
    pb = pods.pb
    sid, pod = pods.run()
    cid = pods.container(sid, pod, "app", ["/probe", "sleep", "1000"],
                         resources=pb.LinuxContainerResources(memory_limit_in_bytes=64 * MiB))
    pid = pods.status(cid)[1]["pid"]
    assert memory_limit(pid) == 64 * MiB
    pods.client.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=96 * MiB)),
        timeout=TIMEOUT)
    assert memory_limit(pid) == 96 * MiB
    # containerd keeps the new limit in the container's spec too.
    spec = pods.status(cid)[1]["runtimeSpec"]
    assert spec["linux"]["resources"]["memory"]["limit"] == 96 * MiB
    pods.remove(sid)


def test_container_and_pod_sandbox_status(pods) -> None:
    import ipaddress

    pb = pods.pb
    sid, pod = pods.run("status-pod")
    status, info = pods.pod_status(sid)
    assert status.state == pb.SANDBOX_READY
    assert status.runtime_handler == HANDLER
    assert status.metadata.name == "status-pod" and status.metadata.uid == pod.metadata.uid
    assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(pods.env.subnet)
    assert info["runtimeHandler"] == HANDLER and info["processStatus"] == "running"

    cid = pods.container(sid, pod, "app", ["/probe", "sleep", "1000"])
    st, cinfo = pods.status(cid)
    assert st.state == pb.CONTAINER_RUNNING
    assert st.metadata.name == "app" and st.image.image == cri_env.IMAGE
    assert st.started_at >= st.created_at > 0 and st.finished_at == 0
    assert Path(f"/proc/{cinfo['pid']}").exists()

    pods.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=TIMEOUT)
    assert pods.pod_status(sid)[0].state == pb.SANDBOX_NOTREADY
    st = pods.status(cid)[0]
    assert st.state == pb.CONTAINER_EXITED
    assert st.finished_at >= st.started_at
    assert st.exit_code == 137  # StopPodSandbox kills the app: SIGKILL after 0 s grace
    pods.remove(sid)


def test_remove_pod_sandbox_leaves_nothing(pods) -> None:
    env = pods.env
    sid, pod = pods.run()
    cid = pods.container(sid, pod, "app", ["/probe", "sleep", "1000"])
    _, info = pods.pod_status(sid)
    pids = [info["pid"], pods.status(cid)[1]["pid"]]
    netns = next(n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"]
                 if n["type"] == "network")
    ip = pods.pod_status(sid)[0].network.ip
    uid = pod.metadata.uid
    cgroups = cri_env.pod_cgroup_dirs(f"pod{uid}")

    def mounts() -> list[str]:
        return [m for m in helpers.mounts_under(env.base) if sid in m or cid in m]

    def shims() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"containerd-shim-runc-v2") and sid.encode() in argv:
                found.append(int(proc.name))
        return found

    # Everything below exists while the pod runs...
    assert {sid, cid} <= env.state_dirs()
    assert netns in env.netns_mounts()
    assert any(p.name == sid for p in cgroups) and any(p.name == cid for p in cgroups)
    assert len(mounts()) >= 3  # two rootfs overlays, the sandbox's /dev/shm
    assert (env.ipam_dir / "pyoci-cri" / ip).exists()
    assert shims()

    pb = pods.pb
    pods.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=TIMEOUT)
    pods.client.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid),
                                 timeout=TIMEOUT)
    # ...and nothing of it once the pod is removed (the pod's parent cgroup is kubelet's).
    assert [p for p in cri_env.pod_cgroup_dirs(f"pod{uid}") if p.name in (sid, cid)] == []
    pods.remove_parent_cgroups(sid)
    assert cri_env.pod_cgroup_dirs(f"pod{uid}") == []
    helpers.wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
                     timeout=30, what=f"processes {pids} to be gone")
    assert not ({sid, cid} & env.state_dirs())
    assert netns not in env.netns_mounts() and not Path(netns).exists()
    assert mounts() == []
    assert not (env.ipam_dir / "pyoci-cri" / ip).exists()
    helpers.wait_for(lambda: not shims(), timeout=30, what="the pod's shim to exit")
    assert sid not in env.sandboxes()
    containers = pods.client.ListContainers(pods.pb.ListContainersRequest(), timeout=TIMEOUT)
    assert cid not in {c.id for c in containers.containers}
    assert not (env.cri_state / "sandboxes" / sid).exists()
    assert not (env.bundle(sid).exists() or env.bundle(cid).exists())


def test_container_exit_code_is_reported(pods) -> None:
    sid, pod = pods.run()
    cid = pods.container(sid, pod, "failing", ["sh", "-c", "exit 3"])
    status = pods.wait_exited(cid)
    assert (status.exit_code, status.reason) == (3, "Error")
    ok = pods.container(sid, pod, "succeeding", ["/probe", "exit", "0"])
    status = pods.wait_exited(ok)
    assert (status.exit_code, status.reason) == (0, "Completed")
    pods.remove(sid)


def test_ten_pods_concurrently(pods) -> None:
    """Ten pods created, used and removed at once, each from its own thread (like kubelet)."""
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            sid, pod = pods.run(f"pod-{i}")
            cid = pods.container(sid, pod, "app", ["/probe", "sleep", "1000"])
            host = pods.out(cid, "hostname")
            assert host == f"pod-{i}\n", host
            pods.remove(sid)
        except Exception as exc:
            errors.append(f"pod-{i}: {exc!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=2 * TIMEOUT)
    assert not any(t.is_alive() for t in threads), "threads still running"
    assert not errors, "\n".join(errors) + f"\n(after {time.monotonic() - start:.1f}s)"
    assert pods.env.sandboxes() == []


# ---- the README's config ------------------------------------------------------------


def test_readme_runtime_class_and_containerd_config(pods) -> None:
    """The README's RuntimeClass names the README's runtime table, and pods run through it.

    The session's containerd config holds the README's TOML block as written,
    with BinaryName set to the runtime under test and a private Root added
    (``cri_env.handler_config``); this test runs a pod with the RuntimeClass's
    handler and checks that it went through that table's runtime.
    """
    rc = cri_env.readme_runtime_class()
    assert rc["apiVersion"] == "node.k8s.io/v1" and rc["kind"] == "RuntimeClass"
    assert rc["handler"] == pods.env.readme_handler == "pyoci"
    readme_lines = [line for line in cri_env.readme_cri_config().splitlines()
                    if "BinaryName" not in line]
    config = pods.env.config.read_text()
    assert all(line in config.splitlines() for line in readme_lines)

    sid, pod = pods.run(rc["metadata.name"], runtime_handler=rc["handler"])
    cid = pods.container(sid, pod, "app", ["/probe", "sleep", "1000"])
    info = pods.pod_status(sid)[1]
    assert info["runtimeOptions"]["binary_name"] == os.fspath(pods.env.runtime)
    runtime_root = pods.env.runtime_root()
    assert (runtime_root / sid).is_dir() and (runtime_root / cid).is_dir()
    assert pods.out(cid, "/probe", "echo", "hi") == "hi\n"
    pods.remove(sid)
