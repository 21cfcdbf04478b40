"""pyoci: an OCI runtime-spec compliant, runc-compatible container runtime."""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"
