"""POSIX rlimits by their spec names."""

from __future__ import annotations

import resource

RESOURCES = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_INFINITY = (1 << 64) - 1


def apply(rlimits: list[dict]) -> None:
    for i, rl in enumerate(rlimits):
        soft = resource.RLIM_INFINITY if rl["soft"] >= _INFINITY else rl["soft"]
        hard = resource.RLIM_INFINITY if rl["hard"] >= _INFINITY else rl["hard"]
        try:
            resource.setrlimit(RESOURCES[rl["type"]], (soft, hard))
        except (OSError, ValueError) as e:
            cur = resource.getrlimit(RESOURCES[rl["type"]])
            raise OSError(
                getattr(e, "errno", 1) or 1,
                f"process.rlimits[{i}]: cannot set {rl['type']} to {rl['soft']}:{rl['hard']}"
                f" (the runtime's own hard limit is {cur[1]})",
            ) from None
