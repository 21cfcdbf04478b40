"""Conversions from the OCI (cgroup v1 shaped) resource values to cgroup v2 files.

``linux.resources`` was designed around v1 knobs; on v2 the same intent has to
be expressed with different files and ranges.  The formulas follow crun's
documented table (crun.1 "CGROUP v1 to v2 conversion") so that a config gives
the same v2 values under pyoci as under crun and runc.  Pure functions, so
they are unit-tested without a cgroup filesystem.
"""

from __future__ import annotations

from pyoci.errors import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), linearly as crun does."""
    if shares <= 0:
        return 0
    shares = max(2, min(262144, shares))
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000).

    Only needed when the BFQ scheduler's io.bfq.weight, which keeps the v1
    range, is missing.
    """
    if weight <= 0:
        return 0
    weight = max(10, min(1000, weight))
    return 1 + ((weight - 10) * 9999) // 990


def cpu_max(quota: int | None, period: int | None) -> str | None:
    """The cpu.max line: "$QUOTA $PERIOD" with "max" for no quota.

    A period alone still has to name the quota, so it is written as "max".
    Returns None when neither is given (leave the file untouched).
    """
    if not quota and not period:
        return None
    text = str(quota) if quota is not None and quota > 0 else "max"
    if period:
        text += f" {period}"
    return text


def limit_text(value: int) -> str:
    """A v2 limit: negative means unlimited ("max")."""
    return "max" if value < 0 else str(value)


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """v1 memory+swap total to v2 swap-only: ``memory.swap.max = swap - limit``.

    Returns None to leave memory.swap.max alone, -1 for "max".  An unlimited
    memory limit with no swap given means "unlimited swap too", as on v1.
    """
    limit = limit or 0
    swap = swap or 0
    if limit == -1 and swap == 0:
        return -1
    if swap == 0:
        return None
    if swap == -1:
        return -1
    if limit <= 0:
        raise CgroupError(f"cgroup: memory swap {swap} requires a memory limit")
    if swap < limit:
        raise CgroupError(f"cgroup: memory+swap limit {swap} must be >= memory limit {limit}")
    return swap - limit


def pids_text(limit: int | None) -> str | None:
    """pids.max: a positive limit, "max" for negative, None (untouched) for 0/unset.

    0 stays "unset" because older runtime-spec versions used it as the Go zero
    value; runc never writes it, and pids.max=0 would forbid every fork.
    """
    if limit is None or limit == 0:
        return None
    return "max" if limit < 0 else str(limit)


def device_rule(rule: dict[str, Any]) -> str:
    """One ``linux.resources.devices`` entry as a v1 devices.allow/deny line."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise CgroupError(f"cgroup: invalid device rule type {kind!r}")
    major = rule.get("major")
    minor = rule.get("minor")
    access = rule.get("access") or "rwm"
    if not access or any(ch not in "rwm" for ch in access):
        raise CgroupError(f"cgroup: invalid device rule access {access!r}")
    maj = "*" if major is None or major < 0 else str(major)
    mnr = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {maj}:{mnr} {access}"


def v1_device_lines(rule: dict[str, Any]) -> list[str]:
    """The devices.allow/deny lines for one rule.

    The kernel reads only the first character of an "a" line and treats it
    as "everything", so a narrower "a" rule (some access bits, or a specific
    number) is spelled out as the same rule for char and block devices.
    """
    line = device_rule(rule)
    if not line.startswith("a "):
        return [line]
    if line == "a *:* rwm":
        return ["a"]
    return ["c" + line[1:], "b" + line[1:]]


# runc appends these to every container's device rules (libcontainer/specconv
# AllowedDevices), so images that expect the standard /dev nodes work under a
# default-deny policy.  Kept as data so the v2 eBPF program can reuse it.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},  # pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # net/tun
)
