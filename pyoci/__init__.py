"""pyoci: an OCI runtime-spec compliant, runc-compatible container runtime."""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"

__all__ = ["SPEC_VERSION", "Container", "Runtime", "__version__"]


def __getattr__(name: str) -> object:
    """``pyoci.Runtime`` and ``pyoci.Container``, loaded on first use: ``import pyoci``
    stays free for the lean verbs, which never need them through here."""
    if name in ("Runtime", "Container"):
        from pyoci import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'pyoci' has no attribute {name!r}")
