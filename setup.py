"""setuptools shim: cffi_modules can only be declared here, not in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["native/build.py:ffibuilder"])
