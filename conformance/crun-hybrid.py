#!/usr/bin/python3 -I
"""Run crun 1.8.1 on this hybrid-cgroup host: a documented test variant, not a fix.

crun 1.8.1 refuses a hybrid host whose unified hierarchy has controllers
enabled ("cgroups in hybrid mode not supported, drop all controllers from
cgroupv2"; here hugetlb is enabled there and cannot be bound to v1: EBUSY), and
refuses any ``ociVersion`` that is not 1.0.x ("unknown version specified").
This wrapper runs crun in a private mount namespace with
/sys/fs/cgroup/unified unmounted (a pure cgroup v1 view), and for
``create``/``run`` rewrites the bundle's ``ociVersion`` to 1.0.2 first.
Set CRUN to use another binary (default /usr/bin/crun).
"""

import json
import os
import sys

CRUN = os.environ.get("CRUN", "/usr/bin/crun")
_TAKES_VALUE = {"--root", "--log", "--log-format", "--cgroup-manager", "-b", "--bundle",
                "--pid-file", "--console-socket", "--preserve-fds", "-f", "--config"}


def bundle_of(args: list[str]) -> str | None:
    """The bundle of a create/run command line (``.`` when not given)."""
    verb_seen = False
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--bundle=") or a.startswith("-b="):
            return a.split("=", 1)[1]
        if a in ("--bundle", "-b") and i + 1 < len(args):
            return args[i + 1]
        if a in ("create", "run") and not verb_seen:
            verb_seen = True
        elif a in _TAKES_VALUE:
            i += 1
        i += 1
    return "." if verb_seen else None


def main() -> None:
    args = sys.argv[1:]
    bundle = bundle_of(args)
    if bundle is not None:
        path = os.path.join(bundle, "config.json")
        try:
            with open(path) as f:
                cfg = json.load(f)
            if not str(cfg.get("ociVersion", "")).startswith("1.0"):
                cfg["ociVersion"] = "1.0.2"
                with open(path, "w") as f:
                    json.dump(cfg, f)
        except (OSError, ValueError):
            pass  # let crun report it
    os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "sh", "-c",
                          'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"',
                          CRUN, *args])


if __name__ == "__main__":
    main()
