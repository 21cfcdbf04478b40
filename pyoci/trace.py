"""Step-by-step tracing of create/start/exec, for an operator reading ``--debug`` output.

The library only calls :func:`debug`; whoever drives it decides where lines go
(the CLI sends them to ``--log`` or stderr, see ``pyoci/cli/log.py``). Without a
sink a call costs one global lookup, so the steps can stay in the code for good.
The container's init, forked from the caller, inherits the sink and traces its
own steps until its exec.
"""

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable

_sink: "Callable[[str], None] | None" = None


def set_sink(sink: "Callable[[str], None] | None") -> None:
    """Send every later step to ``sink`` (None: drop them)."""
    global _sink
    _sink = sink


def debug(msg: str) -> None:
    """One step (config loaded, namespaces, cgroup, mounts, hooks, exec)."""
    if _sink is not None:
        _sink(msg)
