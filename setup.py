"""setuptools shim: cffi_modules can only be declared here, not in pyproject.toml.

It also builds ``pyoci/_native/trampoline``, the static exec trampoline (see
native/trampoline/trampoline.c), next to the cffi extension.
"""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

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


setup(cffi_modules=["native/build.py:ffibuilder"], cmdclass={"build_ext": BuildExtWithTrampoline})
