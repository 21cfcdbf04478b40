"""The lean verbs stay lean: which modules ``state``, ``start``, ``kill``,
``delete`` and ``--version`` import.

Each case runs pyoci in a fresh interpreter under ``-X importtime`` against a
container id that does not exist, in an empty ``--root``. The command fails
with "container does not exist", but only after the verb's whole import path
has run, which is what is checked here.

The interpreter runs with ``-I -S``: ``site`` (and any ``.pth`` file the host
installs, such as an editable-install finder) imports modules of its own,
which would hide pyoci's imports of the same modules. ``sys.path`` is set up
by hand instead: the directory holding the ``pyoci`` package, then
site-packages (for the compiled ``_cffi_backend``, should a verb need it).

A second set of cases runs the success path against a stopped container's
state record written into ``--root`` by hand: ``state`` prints it, ``delete``
removes it and its (stand-in, empty) cgroup directories.

Only *which* modules are imported is asserted, never how long they take.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

FORBIDDEN = (
    "jsonschema",
    "json",
    "re",
    "enum",
    "argparse",
    "subprocess",
    "socket",
    "pyoci.spec.schema",
    "pyoci.spec.validate",
    "pyoci.process.init",
    "pyoci.linux.seccomp",
    "cffi",
)

# Loaded before the first line runs, so free; anything else costs the lean verbs
# a measurable share of the interpreter's start (see pyoci/cli/__init__.py).
LEAN_FORBIDDEN = (
    *FORBIDDEN,
    "os", "posixpath", "_collections_abc", "__future__", "typing", "_json", "pyoci.jsonio",
    "select", "pyoci.cgroups", "pyoci.faults", "pyoci.hooks",
)

CASES = {
    "state": ["state", "no-such-container"],
    "start": ["start", "no-such-container"],
    "kill": ["kill", "no-such-container", "KILL"],
    "delete": ["delete", "no-such-container"],
    "version": ["--version"],
}

_LAUNCH = (
    "import sys; sys.path[:0] = {paths!r}; sys.argv = ['pyoci', *sys.argv[1:]]; "
    "from pyoci.cli import main; sys.exit(main())"
)


def _sys_path() -> list[str]:
    spec = importlib.util.find_spec("pyoci")
    assert spec is not None and spec.submodule_search_locations
    pkg_parent = str(Path(next(iter(spec.submodule_search_locations))).parent)
    paths = [pkg_parent]
    for key in ("purelib", "platlib"):
        p = sysconfig.get_path(key)
        if p not in paths:
            paths.append(p)
    return paths


def parse_importtime(stderr: str) -> list[tuple[int, str]]:
    """``(depth, module)`` for each ``import time:`` line, in output order.

    importtime prints a module after everything it imported, one level of
    two-space indentation deeper per level of nesting.
    """
    out = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|", 2)
        if len(fields) != 3 or fields[0].strip().endswith("self [us]"):
            continue
        name = fields[2].rstrip()
        stripped = name.lstrip(" ")
        out.append(((len(name) - len(stripped)) // 2, stripped))
    return out


def import_chain(entries: list[tuple[int, str]], index: int) -> list[str]:
    """The module at ``index`` and, outward, the modules that imported it."""
    depth, name = entries[index]
    chain = [name]
    for d, n in entries[index + 1 :]:
        if d < depth:
            chain.append(n)
            depth = d
            if d == 0:
                break
    return chain


def run_importtime(args: list[str], root: Path) -> tuple[subprocess.CompletedProcess, list]:
    code = _LAUNCH.format(paths=_sys_path())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", code, "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return proc, parse_importtime(proc.stderr)


@pytest.mark.parametrize("case", list(CASES))
def test_lean_verbs_import_no_heavy_modules(case: str, tmp_path: Path) -> None:
    proc, entries = run_importtime(CASES[case], tmp_path / "root")
    assert entries, f"no importtime output:\n{proc.stderr}"
    names = {n for _, n in entries}
    assert "pyoci.cli" in names, proc.stderr
    if case == "version":
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("pyoci version ")
    else:
        assert proc.returncode != 0
        assert "container does not exist" in proc.stderr
    offenders = _offenders(entries, LEAN_FORBIDDEN)
    assert not offenders, f"pyoci {' '.join(CASES[case])} imports:\n  " + "\n  ".join(offenders)


def _offenders(entries: list[tuple[int, str]], forbidden: tuple[str, ...]) -> list[str]:
    return [" <- ".join(import_chain(entries, i))
            for i, (_, name) in enumerate(entries) if name in forbidden]


def _stopped_container(root: Path, cgroup_dir: Path) -> str:
    """A state record as create leaves it, for a container whose init has exited."""
    from pyoci.state.store import Store

    cgroup_dir.mkdir(parents=True)
    store = Store(str(root))
    store.claim("c1")
    store.save("c1", {
        "ociVersion": "1.3.0", "id": "c1", "pid": 0, "pid_start": 0, "status": "created",
        "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z", "owner": "",
        "annotations": {"k": "v"}, "hooks": {},
        "cgroup": {"mode": "v1", "path": "/pyoci/c1", "created": [str(cgroup_dir)],
                   "paths": {"pids": str(cgroup_dir), "freezer": str(cgroup_dir)}},
    })
    return "c1"


@pytest.mark.parametrize("verb", ["state", "kill", "delete"])
def test_lean_verbs_success_path_imports(verb: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    cgroup_dir = tmp_path / "cgroup" / "c1"
    cid = _stopped_container(root, cgroup_dir)
    args = {"state": ["state", cid], "kill": ["kill", cid, "KILL"], "delete": ["delete", cid]}
    proc, entries = run_importtime(args[verb], root)
    if verb == "state":
        assert proc.returncode == 0, proc.stderr
        assert '"status": "stopped"' in proc.stdout and '"k": "v"' in proc.stdout
    elif verb == "kill":
        assert proc.returncode == 1 and "container not running" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert not (root / cid).exists() and not cgroup_dir.exists()
    forbidden = LEAN_FORBIDDEN if verb == "delete" else (*LEAN_FORBIDDEN, "fcntl")
    offenders = _offenders(entries, forbidden)
    assert not offenders, f"pyoci {verb} imports:\n  " + "\n  ".join(offenders)


def test_parse_importtime_nesting() -> None:
    sample = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:        10 |         10 |       enum\n"
        "import time:        10 |         20 |     re\n"
        "import time:        10 |         30 |   typing\n"
        "import time:        10 |         40 | pyoci.cli\n"
        "import time:        10 |         10 | pyoci.container\n"
    )
    entries = parse_importtime(sample)
    assert entries == [
        (3, "enum"),
        (2, "re"),
        (1, "typing"),
        (0, "pyoci.cli"),
        (0, "pyoci.container"),
    ]
    assert import_chain(entries, 0) == ["enum", "re", "typing", "pyoci.cli"]
    assert import_chain(entries, 4) == ["pyoci.container"]
