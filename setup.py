"""setuptools shim: cffi_modules can only be declared here, not in pyproject.toml.

It also builds ``pyoci/_native/trampoline``, the static exec trampoline (see
native/trampoline/trampoline.c), next to the cffi extension, and writes the
``pyoci`` script itself (:class:`LeanScript`).
"""

import os
import subprocess
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext
from distutils.command.build_scripts import build_scripts  # after setuptools: its copy

# The `pyoci` command. pip's console-script wrapper runs the interpreter with
# `site` (every .pth file, and `re` for the wrapper itself): twice what `pyoci state`
# costs. This one starts the interpreter that runs the install with -I -S and
# finds pyoci itself, at the path from the scripts directory to site-packages
# that this interpreter's install scheme gives (the same for a venv and for a
# system install). A layout that differs (pip --prefix, --target) falls back to
# `site`: slower, still correct.
SCRIPT = """#!{python} -IS
# pyoci's command, written by pyoci's setup.py: no site, no .pth scan (see setup.py).
import sys
_here = sys.argv[0].rpartition("/")[0] or "."
sys.path[:0] = [_here + {purelib!r}]
sys.path += [_here + p for p in {more!r}] + {site!r}
try:
    from pyoci.cli import entry
except ImportError:
    import site
    site.main()
    from pyoci.cli import entry
entry()
"""


def _relative(path: str, start: str) -> str:
    return "/" + os.path.relpath(path, start)


class LeanScript(build_scripts):
    """Write scripts/pyoci with this interpreter's absolute path in its #! line.

    Not ``#!python``: pip rewrites that line when it installs a wheel and drops
    its options, and ``-IS`` is the point.
    """

    def run(self) -> None:
        # The placeholder in `scripts` only makes setuptools run this step.
        paths = sysconfig.get_paths()
        scripts = paths["scripts"]
        purelib = _relative(paths["purelib"], scripts)
        more = [p for p in (_relative(paths["platlib"], scripts),) if p != purelib]
        # The interpreter's own site directories last (absolute), for dependencies
        # installed there rather than next to pyoci (a distribution's python3-cffi).
        import site

        own = [p for p in site.getsitepackages() if os.path.isdir(p)]
        os.makedirs(self.build_dir, exist_ok=True)
        out = os.path.join(self.build_dir, "pyoci")
        with open(out, "w") as f:
            f.write(SCRIPT.format(python=sys.executable, purelib=purelib, more=more, site=own))
        os.chmod(out, 0o755)

SOURCE = os.path.join("native", "trampoline", "trampoline.c")


class BuildExtWithTrampoline(build_ext):
    def run(self) -> None:
        super().run()
        base = "." if self.inplace else self.build_lib
        out = os.path.join(base, "pyoci", "_native", "trampoline")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cc = os.environ.get("CC", "gcc")
        common = ["-static", "-Os", "-s", "-Wall", "-o", out, SOURCE]
        try:
            subprocess.check_call([cc, "-nostdlib", "-fno-stack-protector", "-fno-pie",
                                   "-no-pie", "-Wl,--build-id=none", *common])
        except subprocess.CalledProcessError:
            subprocess.check_call([cc, "-DPYOCI_TRAMPOLINE_LIBC", *common])


setup(
    cffi_modules=["native/build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithTrampoline, "build_scripts": LeanScript},
    scripts=["native/pyoci-script"],  # a placeholder: LeanScript writes the real one
)
