"""config.json: loading, validation, defaults and the resolved plan."""


def __getattr__(name: str) -> object:
    """``pyoci.spec.default(rootless=False)``: the default config (see pyoci/spec/default.py)."""
    if name == "default":
        import sys

        __import__("pyoci.spec.default")
        return sys.modules["pyoci.spec.default"]
    raise AttributeError(f"module 'pyoci.spec' has no attribute {name!r}")
