"""config-linux.md and runtime-linux.md: namespaces, devices, sysctl, seccomp,
maskedPaths, readonlyPaths, rootfsPropagation, personality, user namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import rt

EPERM, EROFS = 1, 30


def ns_map(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def drop_ns(kind: str):
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != kind]
    return mutate


# ---- namespaces -------------------------------------------------------------------------

def test_new_pid_namespace(probe) -> None:
    """config-linux.md "Namespaces": "If a path is not specified, the runtime MUST create
    a new container namespace of the given type" - in a new pid namespace the process
    is pid 1."""
    assert probe("pid").stdout.strip() == "1"


def test_new_namespaces_differ_from_host(probe) -> None:
    """config-linux.md "Namespaces": a new namespace is created for every listed type
    (pid, network, ipc, uts, mount)."""
    inside = ns_map(probe("ns").stdout)
    for kind in ("pid", "net", "ipc", "uts", "mnt"):
        assert inside[kind] != os.readlink(f"/proc/self/ns/{kind}"), kind


def test_unlisted_namespace_inherited(probe) -> None:
    """config-linux.md "Namespaces": "If a namespace type is not specified in the
    namespaces array, the container MUST inherit the runtime namespace of that type"."""
    inside = ns_map(probe("ns", mutate=drop_ns("network")).stdout)
    assert inside["net"] == os.readlink("/proc/self/ns/net")


def test_namespace_path_joined(probe) -> None:
    """config-linux.md "Namespaces / path": "the runtime MUST place the container process
    in the namespace specified by path"."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        rt.wait_for(lambda: os.readlink(path) != os.readlink("/proc/self/ns/net"),
                    what="helper net namespace")
        want = os.readlink(path)

        def mutate(cfg: dict[str, Any]) -> None:
            drop_ns("network")(cfg)
            cfg["linux"]["namespaces"].append({"type": "network", "path": path})
        inside = ns_map(probe("ns", mutate=mutate).stdout)
        assert inside["net"] == want
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.deviation(crun="crun 1.8.1 accepts a duplicated namespace type (the later entry wins)")
def test_duplicate_namespace_is_error(container: rt.Factory) -> None:
    """config-linux.md "Namespaces": "If a namespaces field contains duplicated namespaces
    with same type, the runtime MUST generate an error"."""
    c = container(mutate=lambda cfg: cfg["linux"]["namespaces"].append({"type": "ipc"}))
    res = c.create(check=False)
    if res.returncode == 0:
        c.delete("--force")
    assert res.returncode != 0


def test_user_namespace_mappings(make_bundle, root) -> None:
    """config-linux.md "User namespace mappings": uidMappings/gidMappings are written to
    the new user namespace's uid_map/gid_map."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] not in ("cgroup", "sysfs")]
    bundle = make_bundle(["/probe", "cat", "/proc/self/uid_map", "/proc/self/gid_map"],
                         mutate=mutate)
    # The mapped root must be able to reach the rootfs: pytest's tmp dirs are 0700.
    public = Path(tempfile.mkdtemp(prefix="conf-userns-"))
    try:
        public.chmod(0o755)
        subprocess.run(["cp", "-a", str(bundle), str(public / "b")], check=True)
        res = rt.call(root, "run", "--bundle", str(public / "b"), rt.unique_id())
    finally:
        shutil.rmtree(public, ignore_errors=True)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows == [["0", "100000", "65536"]] * 2


# ---- devices ----------------------------------------------------------------------------

DEFAULT_DEVICES = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7",
                   "/dev/random": "1:8", "/dev/urandom": "1:9", "/dev/tty": "5:0"}


@pytest.mark.parametrize("path", sorted(DEFAULT_DEVICES))
def test_default_device(probe, path: str) -> None:
    """config-linux.md "Default Devices": "the runtime MUST supply" /dev/null, zero, full,
    random, urandom and tty as character devices with their standard numbers."""
    st = dict(w.split("=", 1) for w in probe("stat", path).stdout.split())
    assert st["type"] == "chr" and st["rdev"] == DEFAULT_DEVICES[path]


def test_default_ptmx_and_symlinks(probe) -> None:
    """config-linux.md "Default Devices" (/dev/ptmx "a bind-mount or symlink of the
    container's ptmx") and runtime-linux.md "Dev symbolic links": /dev/fd, stdin, stdout,
    stderr MUST be set up."""
    want = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
            "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"}
    for link, target in want.items():
        assert probe("readlink", link).stdout.strip() == target, link
    ptmx = probe("readlink", "/dev/ptmx")
    if ptmx.returncode == 0:
        assert ptmx.stdout.strip() in ("pts/ptmx", "/dev/pts/ptmx")
    else:  # a bind mount of pts/ptmx: a character device 5:2
        st = dict(w.split("=", 1) for w in probe("stat", "/dev/ptmx").stdout.split())
        assert st["type"] == "chr" and st["rdev"] == "5:2"


def test_linux_devices_created(probe) -> None:
    """config-linux.md "Devices": "the runtime MUST make available" each listed device
    with its type, major/minor, fileMode, uid and gid."""
    dev = {"path": "/dev/conformance", "type": "c", "major": 1, "minor": 3,
           "fileMode": 0o640, "uid": 12, "gid": 34}

    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["devices"] = [dev]
        cfg["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    st = dict(w.split("=", 1) for w in probe("stat", "/dev/conformance",
                                             mutate=mutate).stdout.split())
    assert st == {"type": "chr", "mode": "0640", "uid": "12", "gid": "34", "rdev": "1:3"}


# ---- sysctl, seccomp, masked/readonly paths, propagation, personality -------------------

def test_sysctl(probe) -> None:
    """config-linux.md "Sysctl": "allows kernel parameters to be modified at runtime for
    the container" - the value is visible in /proc/sys in the container."""
    res = probe("sysctl", "net.ipv4.ip_forward",
                **{"linux.sysctl": {"net.ipv4.ip_forward": "1"}})
    assert res.stdout.strip() == "1"


def test_seccomp_errno(probe) -> None:
    """config-linux.md "Seccomp": the filter is applied - a syscall with SCMP_ACT_ERRNO
    fails with EPERM (errnoRet defaults to EPERM), everything else is allowed."""
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    res = probe("mkdir", "/tmp/blocked", **{"linux.seccomp": seccomp,
                                            "root.readonly": False})
    assert res.returncode == 1 and res.stderr.strip() == f"errno={EPERM}"


def test_seccomp_mode_filter(probe) -> None:
    """config-linux.md "Seccomp": a seccomp filter is installed for the process
    (/proc/self/status Seccomp: 2)."""
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]}
    res = probe("caps", **{"linux.seccomp": seccomp})
    assert "Seccomp:\t2" in res.stdout


def test_masked_paths(probe) -> None:
    """config-linux.md "Masked Paths": "The runtime MUST mask these paths so they cannot
    be read by the container" - a masked file reads empty, a masked directory lists
    empty."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["linux"]["maskedPaths"] = ["/etc/hostname", "/bin"]
    res = probe("cat", "/etc/hostname", mutate=mutate)
    assert res.returncode == 0 and res.stdout == ""
    res = probe("ls", "/bin", mutate=mutate)
    assert res.returncode == 0 and res.stdout == ""


def test_readonly_paths(probe) -> None:
    """config-linux.md "Readonly Paths": "The runtime MUST set these paths as readonly
    inside the container"."""
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["root"]["readonly"] = False
        cfg["linux"]["readonlyPaths"] = ["/tmp"]
    res = probe("touch", "/tmp/x", mutate=mutate)
    assert res.returncode == 1 and res.stderr.strip() == f"errno={EROFS}"


RUNC_SHARED = "runc 1.1.5 leaves / private in the container for rootfsPropagation=shared"


@pytest.mark.parametrize("mode,expect", [
    ("private", "private"),
    pytest.param("shared", "shared:", marks=pytest.mark.deviation(runc=RUNC_SHARED)),
    ("slave", "not-shared"),
    pytest.param("unbindable", "unbindable",
                 marks=pytest.mark.deviation(runc="runc 1.1.5 fails create with "
                                                  "rootfsPropagation=unbindable"))])
def test_rootfs_propagation(probe, mode: str, expect: str) -> None:
    """config-linux.md "Rootfs Mount Propagation": "sets the rootfs's mount propagation"
    (shared, slave, private) - the propagation of / in the container's mountinfo. A slave
    shows master:N only if the host mount was shared, so "slave" checks that / does not
    propagate back (not shared)."""
    res = probe("mounts", **{"linux.rootfsPropagation": mode})
    root = [m.split() for m in res.stdout.splitlines() if m.split()[0] == "/"]
    assert root, res.stdout + res.stderr
    prop = root[-1][4]
    if expect == "private":
        assert not any(t in prop for t in ("shared:", "master:")), prop
    elif expect == "unbindable":
        assert "unbindable" in prop, prop
    elif expect == "not-shared":
        assert "shared:" not in prop, prop
    else:
        assert expect in prop, prop


@pytest.mark.deviation(runc="runc 1.1.5 ignores linux.personality (support arrived in 1.2)")
def test_personality(probe) -> None:
    """config-linux.md "Personality": "sets the Linux execution personality" - LINUX32
    is 0x0008 in personality(2)."""
    res = probe("personality", **{"linux.personality": {"domain": "LINUX32"}})
    assert res.stdout.strip() == "0x8"


def test_mount_destination_created(probe) -> None:
    """config.md "Mounts / destination": "Destination of mount point: path inside
    container" - a destination missing from the rootfs is created by the runtime."""
    extra = {"destination": "/not/there/yet", "type": "tmpfs", "source": "tmpfs"}
    res = probe("stat", "/not/there/yet", mutate=lambda c: c["mounts"].append(extra))
    assert res.returncode == 0 and "type=dir" in res.stdout


