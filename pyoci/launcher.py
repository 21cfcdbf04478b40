"""A start-up-lean ``pyoci`` launcher: ``python -m pyoci.launcher install [PATH]``.

The console script pip writes runs the interpreter with ``site``, which scans
every ``.pth`` file and imports whatever they name (and its wrapper imports
``re``): on some hosts that is several times what ``pyoci state`` costs. The
launcher starts the same interpreter with ``-I -S`` and puts the directories
pyoci and its dependencies were installed in on ``sys.path`` itself: pyoci's
own first, the dependencies' after the standard library, so that the lean
commands' one standard-library import (``_json``) doesn't list site-packages
on the way. It replaces the console script in place (by default), so callers
keep the path.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -IS
# pyoci launcher, written by `python -m pyoci.launcher install`: no site, no .pth scan.
import sys
sys.path[:0] = {first!r}
sys.path += {last!r}
from pyoci.cli import entry
entry()
"""


def launcher_text() -> str:
    import pyoci

    here = os.path.dirname(os.path.dirname(os.path.realpath(pyoci.__file__)))
    last: list[str] = []
    for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib")):
        if p and p != here and p not in last:
            last.append(p)
    return TEMPLATE.format(python=os.path.realpath(sys.executable), first=[here], last=last)


def install(path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(launcher_text())
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] != "install":
        sys.stderr.write("usage: python -m pyoci.launcher install [PATH]\n")
        return 2
    path = argv[1] if len(argv) == 2 else os.path.join(sysconfig.get_path("scripts"), "pyoci")
    install(path)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
