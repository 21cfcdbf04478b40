"""linux.netDevices: move host interfaces into the container's network namespace.

Moving a link drops its addresses, so they are read first and added again
inside, under the new name. Runs in the parent, with iproute2.
"""

from __future__ import annotations

import subprocess
from typing import Any

from pyoci.errors import PyociError


def _ip(*args: str, netns_pid: int | None = None) -> str:
    cmd = ["ip", *args]
    if netns_pid is not None:
        cmd = ["nsenter", "-t", str(netns_pid), "-n", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise PyociError(f"linux.netDevices: {' '.join(args)}: {res.stderr.strip().lower()}")
    return res.stdout


def move(devices: dict[str, Any], pid: int) -> None:
    import json

    for host_name, spec in devices.items():
        new = (spec or {}).get("name") or host_name
        info = json.loads(_ip("-j", "addr", "show", "dev", host_name) or "[]")
        if not info:
            raise PyociError(f"linux.netDevices.{host_name}: no such network interface")
        was_up = "UP" in (info[0].get("flags") or [])
        # link-local IPv6 addresses are made afresh by the kernel inside
        addrs = [a for a in info[0].get("addr_info") or [] if a.get("scope") != "link"]
        _ip("link", "set", "dev", host_name, "netns", str(pid), "name", new)
        for a in addrs:
            args = ["addr", "add", f"{a['local']}/{a['prefixlen']}", "dev", new]
            if a.get("broadcast"):
                args += ["broadcast", a["broadcast"]]
            _ip(*args, netns_pid=pid)
        if was_up:
            _ip("link", "set", "dev", new, "up", netns_pid=pid)
