"""Capability names, the five sets as bit masks, and what this host can grant.

The spec makes an unknown capability a warning, not a failure, and says a
runtime SHOULD NOT fail when a capability can't be granted (this sandbox's
bounding set lacks CAP_SYS_RESOURCE): such names are warned about and left out.
"""

from __future__ import annotations

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
BITS = {name: i for i, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def current_bounding() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << 64) - 1


def masks(caps: dict[str, list[str]], last_cap: int) -> tuple[dict[str, int], list[str]]:
    """Turn the config's name lists into masks; return (masks, warnings).

    One warning per capability name, at its first place: a name usually sits in
    three to five sets, and the operator needs to hear about it once. The
    wording of the unknown/unsupported ones is validation's, so ``create`` can
    drop the copy it already has from there.
    """
    warnings: list[str] = []
    warned: set[str] = set()
    grantable = current_bounding()
    out: dict[str, int] = {}
    for kind in SETS:
        mask = 0
        for i, name in enumerate(caps.get(kind) or []):
            bit = BITS.get(name)
            if bit is None or bit > last_cap or not grantable & (1 << bit):
                if name not in warned:
                    warned.add(name)
                    why = _why(name, bit, last_cap)
                    warnings.append(f"process.capabilities.{kind}[{i}]: {why}")
                continue
            mask |= 1 << bit
        out[kind] = mask
    # The kernel raises an ambient capability only if it is both permitted and
    # inheritable; runc drops the others without a word, and so do we (runc's own
    # default config lists ambient capabilities but no inheritable ones).
    out["ambient"] &= out["permitted"] & out["inheritable"]
    return out, warnings


def _why(name: str, bit: int | None, last_cap: int) -> str:
    if bit is None:
        return f"unknown capability {name}, ignored"
    if bit > last_cap:
        return f"capability {name} is not supported by this kernel, ignored"
    return f"{name} is not in the runtime's bounding set and cannot be granted, left out"
