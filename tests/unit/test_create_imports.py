"""What the create path imports: nothing it does not use, and everything the child needs
before pivot_root (after it, no module can be imported: the host's files are gone)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The modules create/run load on their way to the fork (cli and create excluded:
# they are the callers).
CREATE_PATH = ("pyoci.create", "pyoci.spec.plan", "pyoci.spec.load", "pyoci.spec.validate",
               "pyoci.spec.verdict", "pyoci.cgroups.hybrid", "pyoci.linux.cgroupfs",
               "pyoci.process.spawn")


def _fresh(code: str) -> list[str]:
    """Run ``code`` with -I -S, as the launcher does, and the dependencies on sys.path."""
    paths = [str(REPO), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    prelude = f"import sys\nsys.path[:0] = {paths!r}\n"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], check=True,
                         capture_output=True, text=True)
    return out.stdout.split()


def test_create_path_skips_unneeded_modules() -> None:
    unwanted = ("functools", "collections", "operator", "reprlib", "encodings.ascii",
                "termios", "struct", "pyoci.linux.terminal", "pyoci.hooks",
                "pyoci.linux.idmap", "jsonschema")
    code = (f"import {', '.join(CREATE_PATH)}\n"
            f"print(*[m for m in {unwanted!r} if m in sys.modules] or ['none'])\n")
    assert _fresh(code) == ["none"]


@pytest.mark.parametrize(("process", "hooks", "wanted"), [
    ({"terminal": True}, {}, ["pyoci.linux.terminal"]),
    ({}, {"createContainer": [{"path": "/bin/true"}]}, ["pyoci.hooks"]),
    ({}, {"startContainer": [{"path": "/bin/true"}]}, ["pyoci.hooks"]),
    ({}, {}, []),
])
def test_child_modules_are_imported_before_fork(process: dict, hooks: dict,
                                                wanted: list[str]) -> None:
    """Child() runs in the parent before the fork: it loads what this config needs."""
    code = (
        "from types import SimpleNamespace\n"
        "from pyoci.process.init import Child\n"
        f"plan = SimpleNamespace(process={process!r}, config={{'hooks': {hooks!r}}})\n"
        "Child(plan, None, -1, None, None, hooks_in_parent=False)\n"
        "found = [m for m in ('pyoci.linux.terminal', 'pyoci.hooks') if m in sys.modules]\n"
        "print(*found or ['none'])\n"
    )
    assert _fresh(code) == (wanted or ["none"])


def test_exec_path_loads_the_console_only_for_a_terminal() -> None:
    """exec's tenant module leaves termios/struct to a process with a terminal."""
    code = ("import pyoci.cli.exec, pyoci.process.tenant, pyoci.process.execplan\n"
            "found = [m for m in ('pyoci.linux.terminal', 'termios', 'struct', 'functools')"
            " if m in sys.modules]\n"
            "print(*found or ['none'])\n")
    assert _fresh(code) == ["none"]


# -- cloning straight into the pid namespace ----------------------------------------

CLONE_NEWPID, CLONE_NEWTIME, CLONE_NEWNET = 0x20000000, 0x00000080, 0x40000000


@pytest.mark.parametrize(("new_ns", "userns", "join", "want"), [
    (CLONE_NEWPID | CLONE_NEWNET, False, [], True),
    (CLONE_NEWNET, False, [], False),  # no pid namespace: nothing to clone into
    (CLONE_NEWPID | CLONE_NEWTIME, False, [], False),  # timens needs the second fork
    (CLONE_NEWPID, True, [], False),  # the user namespace must own it: it comes first
    (CLONE_NEWPID, False, [("network", "/proc/1/ns/net")], False),  # joins come first
])
def test_clone_into_pidns_only_when_nothing_comes_first(new_ns: int, userns: bool,
                                                        join: list, want: bool) -> None:
    from types import SimpleNamespace

    from pyoci.process.spawn import _clone_pidns

    plan = SimpleNamespace(new_ns=new_ns, new_userns=userns, join=join)
    assert _clone_pidns(plan) is want  # type: ignore[arg-type]
