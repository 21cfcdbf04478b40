"""The cgroup v2 lane: run pyoci's cgroup tests in a VM that has only cgroup2.

Also the rootless tests that need a cgroup v2 subtree delegated to the user
(``DEFAULT_TESTS``), with writable copies of /etc and /var/log for ``useradd``.

This host mixes v1 controllers with a nearly empty cgroup2 mount, so the v2
backend can't be exercised here.  The lane boots Debian's packaged kernel
(``linux-image-amd64``: /boot/vmlinuz-* plus /lib/modules) under QEMU with TCG,
from a busybox initramfs built here at test time.  The guest mounts the host's
root read-only over virtio-9p, puts tmpfs on the places that must be writable,
mounts ``cgroup2`` (alone) on /sys/fs/cgroup so every controller lives there,
moves the host tree onto / and chroots into it (as switch_root), loads the modules
CRIU needs, and runs pytest with the host's own Python and
this checkout.  The exit status comes back over the serial console as a
marker line; the guest then powers off.

Usable from pytest (tests/vm/test_v2_lane.py) or by hand::

    python3 tests/vm/vm_lane.py [pytest args...]
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "/bin/busybox"
# The modules the guest needs for the 9p root; modprobe -D adds their dependencies.
MODULES = ("virtio_pci", "9pnet_virtio", "9p")
# CRIU (tests/integration/test_checkpoint*.py) inspects sockets through the *_diag
# netlink families and locks the network with netfilter; Debian builds those as modules.
CRIU_MODULES = ("unix_diag", "inet_diag", "tcp_diag", "udp_diag", "netlink_diag", "af_packet_diag",
                "tun", "nf_tables", "nft_compat", "ip_tables", "iptable_filter",
                "xt_conntrack", "nf_conntrack", "nf_conntrack_netlink", "ip6_tables",
                "ip6table_filter", "veth")
RESULT_RE = re.compile(r"PYOCI-LANE-RESULT rc=(\d+)")
BEGIN_MARK = "PYOCI-LANE-BEGIN"
DEFAULT_TESTS = (
    "tests/integration/test_cgroups_v2.py",
    "tests/integration/test_cgroups_manager.py",
    "tests/integration/test_checkpoint.py",
    "tests/integration/test_checkpoint_podman.py",
    # Rootless in a delegated cgroup v2 subtree; and, on a pure v2 host, the rootless
    # tests whose cgroup outcome depends on the layout.
    *(f"tests/integration/test_rootless.py::{t}" for t in (
        "test_v2_empty_cgroups_path_goes_beside_the_users_session",
        "test_v2_memory_limit_oom_kills_in_the_delegated_subtree",
        "test_v2_no_cgroup_means_an_empty_read_only_sys_fs_cgroup",
        "test_limits_in_a_delegated_cgroup",
        "test_rootless_flag_runs_without_cgroup",
        "test_rootless_false_fails_on_the_cgroup",
        "test_limits_without_cgroup_permission_fail_clearly",
        "test_cgroups_path_without_permission_fails",
        "test_pause_and_update_without_cgroup_say_why",
    )),
    "tests/integration/test_rootless_podman.py::test_memory_limit_in_a_delegated_cgroup_v2",
    "tests/integration/test_rootless_podman.py::test_run_rm_echo",
)
# In the guest: the v2-only tests plus every (auto-marked) integration test
# in the files above, which then see a pure v2 host.
DEFAULT_MARK = "v2lane or integration"


class LaneError(RuntimeError):
    """The lane could not be built or booted (as opposed to tests failing in it)."""


def kernels() -> list[tuple[str, str]]:
    """(version, vmlinuz) pairs installed in /boot that have their modules, newest last."""
    out = []
    for path in sorted(glob.glob("/boot/vmlinuz-*")):
        ver = path.split("vmlinuz-", 1)[1]
        if os.path.isdir(f"/lib/modules/{ver}"):
            out.append((ver, path))
    return out


def find_kernel() -> tuple[str, str]:
    found = kernels()
    if not found:
        raise LaneError(
            "no kernel with modules in /boot and /lib/modules: "
            "apt-get install linux-image-amd64 (it only unpacks files here)"
        )
    return found[-1]


def boot_image(vmlinuz: str, version: str, work: Path) -> str:
    """An uncompressed ELF vmlinux when the kernel has a PVH entry, else ``vmlinuz``.

    QEMU boots an ELF kernel with a PVH note directly; a bzImage first has to
    decompress itself, which under TCG takes longer than the rest of the boot.
    """
    config = Path(f"/boot/config-{version}")
    if not config.exists() or "CONFIG_PVH=y" not in config.read_text():
        return vmlinuz
    data = Path(vmlinuz).read_bytes()
    payload = None
    for magic, unpack in (
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x1f\x8b\x08", "gzip"),
    ):
        off = data.find(magic)
        if off < 0:
            continue
        try:
            if unpack == "xz":
                import lzma

                payload = lzma.LZMADecompressor().decompress(data[off:])
            elif unpack == "gzip":
                import zlib

                payload = zlib.decompressobj(wbits=31).decompress(data[off:])
            elif shutil.which("zstd"):
                payload = subprocess.run(
                    ["zstd", "-dc"], input=data[off:], capture_output=True
                ).stdout
        except Exception:  # a false magic match: try the next format
            payload = None
        if payload and payload[:4] == b"\x7fELF":
            break
        payload = None
    if payload is None:
        return vmlinuz
    out = work / "vmlinux"
    out.write_bytes(payload)
    return str(out)


def module_files(version: str, names: tuple[str, ...] = MODULES + CRIU_MODULES) -> list[str]:
    """The .ko files to insmod, dependencies first, each once (modprobe --show-depends)."""
    res = subprocess.run(
        ["modprobe", "-a", "-S", version, "--show-depends", *names],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise LaneError(f"modprobe --show-depends {' '.join(names)}: {res.stderr.strip()}")
    files: list[str] = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "insmod" and parts[1] not in files:
            files.append(parts[1])
    return files


def _module_bytes(path: str) -> bytes:
    """A module's ELF image; compressed ones are unpacked (busybox insmod can't)."""
    data = Path(path).read_bytes()
    if path.endswith(".xz"):
        import lzma

        return lzma.decompress(data)
    if path.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return data


class Cpio:
    """A minimal "newc" cpio writer: enough for an initramfs."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        name_b = name.encode() + b"\0"
        # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(name_b), 0)
        self.ino += 1
        head = b"070701" + b"".join(b"%08x" % f for f in fields)
        self.chunks.append(head + name_b + b"\0" * (-(len(head) + len(name_b)) % 4))
        self.chunks.append(data + b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.chunks)


# The start of every lane's pid 1: busybox, the kernel filesystems, the modules the
# guest needs, and the host's root over 9p at $H (read-only).
INIT_PROLOGUE = r"""/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do
    insmod "/modules/$m" || echo "lane: insmod $m failed"
done
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /host
do
    i=$((i+1)); [ $i -ge 50 ] && { echo "lane: cannot mount the 9p root"; poweroff -f; }
    sleep 0.1
done
H=/host
"""

INIT = r"""#!/bin/busybox sh
# pid 1 of the v2 lane guest (generated by tests/vm/vm_lane.py)
""" + INIT_PROLOGUE + r"""mount -t proc proc $H/proc
mount -t sysfs sysfs $H/sys
mount -t cgroup2 -o nsdelegate cgroup2 $H/sys/fs/cgroup
mount -t devtmpfs devtmpfs $H/dev
mkdir -p $H/dev/pts $H/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $H/dev/pts
mount -t tmpfs tmpfs $H/dev/shm
ln -sf /proc/self/fd $H/dev/fd
ln -sf /proc/self/fd/0 $H/dev/stdin
ln -sf /proc/self/fd/1 $H/dev/stdout
ln -sf /proc/self/fd/2 $H/dev/stderr
# The checkout may itself live under one of the writable dirs (CI clones anywhere):
# keep it visible through the tmpfs that is about to cover it.
REPO=@REPO@
case "$REPO" in /tmp/*|/run/*|/var/tmp/*)
    mkdir -p /keep && mount --bind "$H$REPO" /keep ;;
esac
for d in /tmp /run /var/tmp; do
    mount -t tmpfs -o mode=1777 tmpfs $H$d
done
if [ -d /keep ]; then
    mkdir -p "$H$REPO" && mount --bind /keep "$H$REPO"
fi
# The rootless tests add a user (useradd writes /etc and /var/log): writable copies.
for d in /etc /var/log; do
    mkdir -p "/rw$d" && mount -t tmpfs -o mode=755 tmpfs "/rw$d"
    cp -a "$H$d/." "/rw$d/" && mount --bind "/rw$d" "$H$d"
done
# udev would make the tun device anyone's; rootless podman's slirp4netns opens it.
[ -e $H/dev/net/tun ] && chmod 666 $H/dev/net/tun
ip link set lo up  # CRIU dumps and locks the network namespace it runs in
echo "lane: booted in $(cut -d' ' -f1 /proc/uptime)s"
echo "lane: cgroup2 controllers: $(cat $H/sys/fs/cgroup/cgroup.controllers)"
echo PYOCI-LANE-BEGIN
cp /lane.sh $H/run/pyoci-lane.sh
# switch_root's move, not a bare chroot: CRIU refuses a task whose root is not its
# mount namespace's root. This shell keeps the initramfs as its own root.
(cd $H && mount --move . / && exec chroot . /bin/sh /run/pyoci-lane.sh)
rc=$?
echo "PYOCI-LANE-RESULT rc=$rc"
sync
poweroff -f
"""


def lane_script(python: str, pytest_args: list[str], lane_var: str = "PYOCI_V2_LANE") -> str:
    """What runs inside the guest: pytest over this checkout with the host's Python."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        lane_var: "1",
        "TERM": "dumb",
    }
    # A worktree's runtime (.bin/pyoci) or runc, as on the host; unset, the tests
    # find the installed ``pyoci``, which may be another checkout's.
    if os.environ.get("PYOCI_TEST_RUNTIME"):
        env["PYOCI_TEST_RUNTIME"] = os.environ["PYOCI_TEST_RUNTIME"]
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    cmd = " ".join(
        shlex.quote(a) for a in [python, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]
    )
    return f"cd {shlex.quote(str(REPO_ROOT))} || exit 97\n{exports}{cmd}\n"


def build_initramfs(dest: Path, version: str, python: str, pytest_args: list[str]) -> Path:
    """Write the initramfs (uncompressed cpio: it is small and the kernel skips gunzip)."""
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "host", "modules", "run"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
    cpio.file("init", INIT.replace("@REPO@", shlex.quote(str(REPO_ROOT))).encode(), 0o755)
    order = []
    for path in module_files(version):
        name = os.path.basename(path).split(".ko", 1)[0] + ".ko"
        cpio.file(f"modules/{name}", _module_bytes(path))
        order.append(name)
    cpio.file("modules.list", ("\n".join(order) + "\n").encode())
    cpio.file("lane.sh", lane_script(python, pytest_args).encode(), 0o755)
    dest.write_bytes(cpio.bytes())
    return dest


def qemu_command(
    kernel: str, initrd: Path, memory: str = "2G", smp: int = 2, append: str = ""
) -> list[str]:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise LaneError("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
    return [
        qemu,
        "-accel", "tcg",  # /dev/kvm exists on this host but hangs
        "-m", memory,
        "-smp", str(smp),
        "-nographic",
        "-no-reboot",
        "-nic", "none",
        "-kernel", kernel,
        "-initrd", str(initrd),
        "-append",
        "console=ttyS0 quiet loglevel=3 panic=-1 tsc=reliable mitigations=off " + append,
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]  # fmt: skip


class LaneResult:
    """What the guest reported: pytest's exit status, its output, and timings."""

    def __init__(self, rc: int | None, output: str, boot_s: float | None, total_s: float):
        self.rc = rc
        self.output = output
        self.boot_s = boot_s
        self.total_s = total_s

    @property
    def tests_output(self) -> str:
        """Only pytest's part of the console (after the begin marker)."""
        return self.output.split(BEGIN_MARK, 1)[-1]


def run_lane(
    pytest_args: list[str] | None = None,
    timeout: float = 360,
    workdir: Path | None = None,
    echo: bool = False,
) -> LaneResult:
    """Build the initramfs, boot the guest, and return what it reported."""
    if os.geteuid() != 0:
        raise LaneError("the v2 lane exports / over 9p as root: run it as root")
    if not os.path.exists(BUSYBOX):
        raise LaneError(f"{BUSYBOX} not found: apt-get install busybox-static")
    version, kernel = find_kernel()
    args = list(pytest_args or ["-q", "--durations=8", "-m", DEFAULT_MARK, *DEFAULT_TESTS])
    python = os.path.realpath(sys.executable)
    own_tmp = workdir is None
    work = Path(workdir or tempfile.mkdtemp(prefix="pyoci-vm-"))
    try:
        initrd = build_initramfs(work / "initramfs.cpio", version, python, args)
        cmd = qemu_command(boot_image(kernel, version, work), initrd)
        return boot(cmd, work / "console.log", timeout, echo, "the v2 lane")
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def boot(cmd: list[str], log: Path, timeout: float, echo: bool, name: str) -> LaneResult:
    """Run qemu until it exits, keeping the console in ``log``; parse the result marker."""
    start = time.monotonic()
    boot_s = None
    rc = None
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        try:
            deadline = start + timeout
            os.set_blocking(proc.stdout.fileno(), False)
            buf = b""
            while True:
                chunk = proc.stdout.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                    buf += chunk
                    if echo:
                        sys.stdout.write(chunk.decode(errors="replace"))
                        sys.stdout.flush()
                    if boot_s is None and BEGIN_MARK.encode() in buf:
                        boot_s = time.monotonic() - start
                elif proc.poll() is not None:
                    break
                else:
                    time.sleep(0.05)
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise LaneError(
                        f"{name} did not finish within {timeout:.0f}s; console:\n"
                        + buf.decode(errors="replace")[-6000:]
                    )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total = time.monotonic() - start
    text = log.read_bytes().decode(errors="replace").replace("\r\n", "\n")
    m = RESULT_RE.search(text)
    if m:
        rc = int(m.group(1))
    return LaneResult(rc, text, boot_s, total)


def main(argv: list[str]) -> int:
    res = run_lane(argv or None, echo=True)
    print(f"\nlane: boot {res.boot_s}s, total {res.total_s:.1f}s, pytest rc={res.rc}")
    return 1 if res.rc is None else res.rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
