"""Build a runnable demo bundle from the host's static busybox.

A runtime can't be tried without a rootfs, and pulling an image needs tools
pyoci doesn't depend on. Debian's ``busybox-static`` is a single binary with no
loader or libc to copy, so a usable rootfs is one file plus applet symlinks.
The test suite builds its container rootfs the same way (with the probe added),
so the README demo and the integration tests exercise the same image.

Usage: ``python -m pyoci.demo [DIR]`` (default ``./demo``), then
``cd DIR && sudo pyoci run demo``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from pyoci.errors import PyociError
from pyoci.spec.default import default_config

BUSYBOX = Path("/bin/busybox")

_PT_INTERP = 3
_DIRS = ("bin", "proc", "sys", "dev", "tmp", "root", "etc", "var", "run")
_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
_HOSTNAME = "pyoci\n"

# Headings make the output readable by a person and splittable by a test.
DEMO_SCRIPT = (
    'echo "== hostname"; hostname; '
    'echo "== pid"; echo "pid $$"; '
    'echo "== mounts"; mount; '
    'echo "== id"; id'
)


class DemoError(PyociError):
    """The demo rootfs can't be built on this host (usually: no static busybox)."""


def is_static_elf(path: Path) -> bool:
    """Tell whether ``path`` is an ELF binary with no program interpreter.

    A dynamically linked busybox would need the host's loader and libc inside
    the rootfs; parsing the program headers answers that without ``file(1)``.
    """
    with path.open("rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            return False
        is64 = ident[4] == 2
        endian = "<" if ident[5] == 1 else ">"
        if is64:
            hdr = f.read(48)
            phoff, = struct.unpack_from(endian + "Q", hdr, 16)
            phentsize, phnum = struct.unpack_from(endian + "HH", hdr, 38)
        else:
            hdr = f.read(36)
            phoff, = struct.unpack_from(endian + "I", hdr, 12)
            phentsize, phnum = struct.unpack_from(endian + "HH", hdr, 26)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(endian + "I", f.read(4))
            if p_type == _PT_INTERP:
                return False
    return True


def _check_busybox(busybox: Path) -> None:
    """Fail early with the package name, since every later error would be cryptic."""
    if not busybox.is_file():
        raise DemoError(f"{busybox}: no such file or directory (install busybox-static)")
    if not is_static_elf(busybox):
        raise DemoError(f"{busybox} is not statically linked (install busybox-static)")


def _applets(busybox: Path) -> list[str]:
    """Ask busybox which applets it has, so the symlinks match this build."""
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return [a for a in out.stdout.split() if a and "/" not in a and a != "busybox"]


def _copy_into(root: Path, inside: str, source: Path) -> None:
    """Copy ``source`` to ``inside`` (an absolute path in the rootfs), keeping its mode."""
    target = root / inside.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    shutil.copy2(source, target)


def build_rootfs(
    dest: Path, extra: dict[str, Path] | None = None, busybox: Path | None = None
) -> Path:
    """Populate ``dest`` as a minimal busybox rootfs and return it.

    ``extra`` maps absolute paths inside the rootfs to host files to copy there
    (the tests add ``{"/probe": probe_binary}``). Existing content is
    overwritten, not removed, so rebuilding into the same directory is cheap.
    ``busybox`` defaults to the host's ``/bin/busybox``.
    """
    busybox = Path(busybox or BUSYBOX)
    _check_busybox(busybox)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in _DIRS:
        (dest / name).mkdir(exist_ok=True)
    # chmod after mkdir: the umask would otherwise strip the sticky/world bits.
    os.chmod(dest / "tmp", 0o1777)
    os.chmod(dest / "root", 0o700)

    _copy_into(dest, "/bin/busybox", busybox)
    bindir = dest / "bin"
    for applet in _applets(busybox):
        link = bindir / applet
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("busybox")

    etc = dest / "etc"
    (etc / "passwd").write_text(_PASSWD)
    (etc / "group").write_text(_GROUP)
    (etc / "hostname").write_text(_HOSTNAME)

    for inside, source in (extra or {}).items():
        _copy_into(dest, inside, Path(source))
    return dest


def demo_config(args: list[str] | None = None) -> dict:
    """runc's default config, without a terminal so it works from scripts and CI."""
    cfg = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args) if args else ["/bin/sh", "-c", DEMO_SCRIPT]
    return cfg


def build_bundle(dest: Path, args: list[str] | None = None) -> Path:
    """Write ``dest/rootfs`` and ``dest/config.json`` and return ``dest``.

    Without ``args`` the container prints its hostname, its pid (1, in its own
    pid namespace), its mounts and its ids: a quick look at what isolation did.
    """
    dest = Path(dest)
    build_rootfs(dest / "rootfs")
    (dest / "config.json").write_text(json.dumps(demo_config(args), indent=2) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m pyoci.demo [DIR]``: build the bundle and print where it is."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print("usage: python -m pyoci.demo [DIR]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        bundle = build_bundle(Path(argv[0] if argv else "demo"))
    except (DemoError, OSError, subprocess.CalledProcessError) as exc:
        print(f"pyoci.demo: error: {exc}", file=sys.stderr)
        return 1
    print(bundle.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
