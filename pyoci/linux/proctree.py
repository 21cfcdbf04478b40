"""A container's processes found without a cgroup: by pid namespace, or by descent.

A rootless container may run with no cgroup of its own (no permission to make
one). ``ps`` and ``kill --all`` then find its processes in ``/proc``: with a
pid namespace of its own, every process whose ``ns/pid`` is the init's; without
one, the init and its descendants.
"""

from __future__ import annotations

import os


def _ppid(pid: str) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[1])


def container_pids(init_pid: int, own_pidns: bool) -> list[int]:
    """The container's host pids, the init first; empty when the init is gone."""
    try:
        ident = os.stat(f"/proc/{init_pid}/ns/pid") if own_pidns else None
    except PermissionError:
        # Not yet started: the init is still the runtime's non-dumpable process, whose
        # namespaces only root may look at, and nothing else can have joined them yet.
        return [init_pid] if os.path.exists(f"/proc/{init_pid}") else []
    except OSError:
        return []
    numbers = [d for d in os.listdir("/proc") if d.isdigit()]
    if ident is not None:
        found = []
        for d in numbers:
            try:
                st = os.stat(f"/proc/{d}/ns/pid")
            except OSError:
                continue  # gone, or not ours to look at: not in our container either
            if (st.st_ino, st.st_dev) == (ident.st_ino, ident.st_dev):
                found.append(int(d))
        return sorted(found, key=lambda p: p != init_pid)
    children: dict[int, list[int]] = {}
    for d in numbers:
        try:
            children.setdefault(_ppid(d), []).append(int(d))
        except (OSError, ValueError):
            continue
    if not os.path.exists(f"/proc/{init_pid}"):
        return []
    out, todo = [], [init_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out
