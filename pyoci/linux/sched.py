"""The rest of the process: personality, scheduler, I/O priority, CPU affinity and
NUMA memory policy (config.md "Linux process" and config-linux.md)."""

from __future__ import annotations

import os

from pyoci._native import check, ffi, lib

PERSONALITY = {"LINUX": 0x0000, "LINUX32": 0x0008}
POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
            "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_WHO_PROCESS = 1
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}


def parse_list(text: str) -> set[int]:
    """A kernel cpu/node list such as ``0-3,7``."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def set_personality(p: dict) -> None:
    check(lib.pyoci_personality(PERSONALITY[p["domain"]]), "personality")


def set_scheduler(s: dict) -> None:
    flags = 0
    for name in s.get("flags") or []:
        flags |= SCHED_FLAGS[name]
    try:
        check(lib.pyoci_sched_setattr(
            0, POLICIES[s["policy"]], flags, s.get("nice", 0), s.get("priority", 0),
            s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0)))
    except OSError as e:
        raise OSError(e.errno, f"process.scheduler: sched_setattr {s['policy']}: "
                      f"{os.strerror(e.errno or 0).lower()}") from None


def set_io_priority(io: dict) -> None:
    value = (IOPRIO_CLASSES[io["class"]] << 13) | io.get("priority", 0)
    try:
        check(lib.pyoci_ioprio_set(IOPRIO_WHO_PROCESS, 0, value))
    except OSError as e:
        raise OSError(e.errno, f"process.ioPriority: ioprio_set: "
                      f"{os.strerror(e.errno or 0).lower()}") from None


def set_affinity(pid: int, cpus: str, which: str) -> None:
    try:
        os.sched_setaffinity(pid, parse_list(cpus))
    except OSError as e:
        raise OSError(e.errno, f"process.execCPUAffinity.{which}: {cpus}: "
                      f"{os.strerror(e.errno or 0).lower()}") from None


def set_memory_policy(mp: dict) -> None:
    mode = MPOL_MODES[mp["mode"]]
    for name in mp.get("flags") or []:
        mode |= MPOL_FLAGS[name]
    nodes = parse_list(mp.get("nodes") or "")
    bits = 64
    maxnode = max(nodes, default=-1) + 2
    words = (maxnode + bits - 1) // bits or 1
    mask = ffi.new("unsigned long[]", words)
    for n in nodes:
        mask[n // bits] |= 1 << (n % bits)
    try:
        check(lib.pyoci_set_mempolicy(mode, mask if nodes else ffi.NULL,
                                      maxnode if nodes else 0))
    except OSError as e:
        raise OSError(e.errno, f"linux.memoryPolicy: set_mempolicy {mp['mode']}: "
                      f"{os.strerror(e.errno or 0).lower()}") from None
