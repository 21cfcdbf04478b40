"""``python -m pyoci``."""


from pyoci.cli import entry

entry()
