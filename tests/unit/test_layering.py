"""Which pyoci packages may import which, read from the source with ``ast``.

- The CLI (``pyoci/cli/``) parses flags, calls the API (pyoci.runtime) and prints:
  it imports nothing from ``pyoci.process``, ``pyoci.state`` or ``pyoci.cgroups``.
- ``pyoci.state`` and ``pyoci.cgroups`` don't import each other; both use the shared
  cgroup file helpers in ``pyoci.linux.cgroupfiles``.

Every import counts, at the top of a module or inside a function, including
``__import__("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "pyoci"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
        elif (isinstance(node, ast.Call) and isinstance(node.args[0] if node.args else None,
                                                        ast.Constant)
              and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"):
            out.append((node.lineno, str(node.args[0].value)))
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found: dict[str, str] = {}  # one per line: "from a import b" names a and a.b
    for path in sorted((PKG / package).rglob("*.py")):
        for line, mod in imported_modules(path):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                found.setdefault(f"{path.relative_to(PKG.parent)}:{line}", mod)
    return [f"{where}: {mod}" for where, mod in found.items()]


RULES = {
    "cli": ("pyoci.process", "pyoci.state", "pyoci.cgroups"),
    "state": ("pyoci.cgroups",),
    "cgroups": ("pyoci.state",),
}


@pytest.mark.parametrize("package", list(RULES))
def test_package_imports_only_downwards(package: str) -> None:
    bad = offenders(package, RULES[package])
    assert not bad, f"pyoci/{package} imports what it must not:\n  " + "\n  ".join(bad)


def test_the_parser_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: each form of import is found (so the rules can fail)."""
    mod = PKG / "cli" / "_layering_sample.py"
    mod.write_text(
        "import pyoci.state.store\n"
        "from pyoci.cgroups import from_state\n"
        "def f():\n"
        "    from ..process import spawn\n"
        "    __import__('pyoci.state.status')\n"
    )
    try:
        names = [m for _, m in imported_modules(mod)]
        assert len(offenders("cli", RULES["cli"])) == 4, offenders("cli", RULES["cli"])
    finally:
        mod.unlink()
    assert "pyoci.state.store" in names and "pyoci.cgroups.from_state" in names
    assert "pyoci.process.spawn" in names and "pyoci.state.status" in names
