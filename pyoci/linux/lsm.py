"""AppArmor and SELinux: applied when the host has them, a clear error when it doesn't.

A requested profile or label that can't be applied would silently weaken the
container, so, as with runc, it is an error rather than a warning.
"""

from __future__ import annotations

import os

from pyoci.errors import SpecError


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def check_available(process: dict, linux: dict, where: str = "config.json: process") -> None:
    if process.get("apparmorProfile") and not apparmor_enabled():
        raise SpecError(f"{where}.apparmorProfile: apparmor profile "
                        f"{process['apparmorProfile']!r} requested, but apparmor is not enabled "
                        "on this host")
    if process.get("selinuxLabel") and not selinux_enabled():
        raise SpecError(f"{where}.selinuxLabel: selinux label {process['selinuxLabel']!r} "
                        "requested, but selinux is not enabled on this host")
    if linux.get("mountLabel") and not selinux_enabled():
        raise SpecError(f"config.json: linux.mountLabel: selinux mount label "
                        f"{linux['mountLabel']!r} requested, but selinux is not enabled on this "
                        "host")


def open_exec_attrs(process: dict) -> list[tuple[int, bytes]]:
    """Open the /proc attr files for the labels the next execve applies.

    Opened while the host's /proc is still ours: a container image can't then
    slip a fake /proc under the write (CVE-2019-16884 class).
    """
    out = []
    profile = process.get("apparmorProfile")
    if profile:
        path = "/proc/self/attr/apparmor/exec"
        if not os.path.exists(path):
            path = "/proc/self/attr/exec"
        out.append((os.open(path, os.O_WRONLY | os.O_CLOEXEC), f"exec {profile}".encode()))
    label = process.get("selinuxLabel")
    if label:
        out.append((os.open("/proc/self/attr/exec", os.O_WRONLY | os.O_CLOEXEC), label.encode()))
    return out


def write_exec_attrs(attrs: list[tuple[int, bytes]]) -> None:
    for fd, value in attrs:
        os.write(fd, value)
        os.close(fd)
