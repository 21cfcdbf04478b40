"""The state store under ``--root`` and the status derived from the kernel."""
