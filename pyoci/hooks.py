"""Lifecycle hooks (config.md "POSIX-platform Hooks").

Each hook gets the container state on stdin; ``timeout`` is in seconds. A
failing hook is an error, except poststop, which only warns (spec 1.3.0).

The spec leaves a hook's working directory open; pyoci's are runc's, so that a
relative path never lands in the host's ``/``: the bundle for the hooks in the
runtime namespace, the container's root for createContainer (in the container's
mount namespace, before pivot_root), process.cwd for startContainer.
"""

from __future__ import annotations

import os

from pyoci import jsonio
from pyoci.errors import HookError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any


def run(hooks: list[dict[str, Any]], kind: str, state: dict[str, Any],
        first_index: int = 0, cwd: str | None = "/") -> None:
    """Run ``hooks`` in order in ``cwd`` (None: the caller's own working directory)."""
    if not hooks:
        return
    import subprocess

    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks, first_index):
        path = hook["path"]
        args = hook.get("args") or [path]
        env = hook.get("env")
        timeout = hook.get("timeout")
        try:
            proc = subprocess.Popen(
                args, executable=path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=_env(env), close_fds=True, cwd=cwd,
            )
        except OSError as e:
            raise HookError(
                f"{kind} hook #{i} {path}: {(e.strerror or str(e)).lower()}"
            ) from None
        try:
            out, err = proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise HookError(f"{kind} hook #{i} {path}: timed out after {timeout}s") from None
        except BrokenPipeError:
            out, err = b"", b""
            proc.wait()
        if proc.returncode != 0:
            detail = (err or out).decode(errors="replace").strip().splitlines()
            why = f": {detail[-1]}" if detail else ""
            status = (f"exit status {proc.returncode}" if proc.returncode > 0
                      else f"killed by signal {-proc.returncode}")
            raise HookError(f"{kind} hook #{i} {path} failed with {status}{why}")


def bundle_cwd(bundle: str) -> str:
    """Where the runtime-namespace hooks run: the bundle, as runc (which chdirs
    there), or ``/`` once the bundle is gone (a poststop after its removal)."""
    return bundle if bundle and os.path.isdir(bundle) else "/"


def _env(env: list[str] | None) -> dict[str, str]:
    """A hook without ``env`` inherits the runtime's environment, as with runc."""
    if env is None:
        return dict(os.environ)
    out: dict[str, str] = {}
    for item in env:
        k, _, v = item.partition("=")
        out[k] = v
    return out
