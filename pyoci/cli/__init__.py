"""runc's command line: global flags, then a verb, then the verb's flags.

This is the only layer that prints or picks exit codes. Parsing is done by
hand rather than with argparse: ``state``, ``start``, ``kill`` and ``delete``
run several times per container and argparse alone costs more than the whole
of ``pyoci state``. Each verb's module is imported only when that verb runs.
"""

from __future__ import annotations

import os
import sys

from pyoci.cli.args import Flag, ParsedArgs, parse
from pyoci.errors import PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

GLOBAL_FLAGS = [
    Flag("root", value=True, help="root directory for storage of container state"),
    Flag("log", value=True, help="set the log file to write pyoci logs to (default stderr)"),
    Flag("log-format", value=True, help="set the log format ('text' (default), or 'json')"),
    Flag("debug", help="enable debug logging"),
    Flag("systemd-cgroup", help="enable systemd cgroup support (not available)"),
    Flag("rootless", value=True, help="ignore cgroup permission errors ('true', 'false', 'auto')"),
    Flag("criu", value=True, help="path to the criu binary (unused)"),
    Flag("help", "h", help="show help"),
    Flag("version", "v", help="print the version"),
]

# verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("create", "create a container"),
    "start": ("start", "executes the user defined process in a created container"),
    "state": ("state", "output the state of a container"),
    "kill": ("kill", "kill sends the specified signal (default: SIGTERM) to the container's init"),
    "delete": ("delete", "delete any resources held by the container"),
    "run": ("run", "create and run a container"),
    "list": ("list", "lists containers started by pyoci with the given root"),
    "spec": ("spec", "create a new specification file"),
    "features": ("features", "show the enabled features"),
    "exec": ("exec", "execute new process inside the container"),
    "ps": ("ps", "ps displays the processes running inside a container"),
    "pause": ("pause", "pause suspends all processes inside the container"),
    "resume": ("pause", "resumes all processes that have been previously paused"),
    "update": ("update", "update container resource constraints"),
    "events": ("events", "display container events such as OOM notifications and stats"),
    "checkpoint": ("checkpoint", "checkpoint a running container (not supported)"),
    "restore": ("checkpoint", "restore a container from a checkpoint (not supported)"),
}


class Context:
    """What every verb gets: the parsed global flags and the store root."""

    def __init__(self, flags: ParsedArgs) -> None:
        self.flags = flags
        root = flags.get("root")
        if not root:
            if os.geteuid() == 0 or not os.environ.get("XDG_RUNTIME_DIR"):
                root = "/run/pyoci"
            else:
                root = os.path.join(os.environ["XDG_RUNTIME_DIR"], "pyoci")
        self.root: str = os.path.abspath(root)
        self.debug = bool(flags.get("debug"))
        self.log_path: str | None = flags.get("log") or None
        fmt = flags.get("log-format") or "text"
        if fmt not in ("text", "json"):
            raise UsageError(f"invalid log-format: {fmt}")
        self.log_format: str = fmt
        rootless = flags.get("rootless")
        if rootless not in (None, "true", "false", "auto"):
            raise UsageError(f"invalid --rootless value: {rootless} (want true, false or auto)")
        if rootless == "true" and os.geteuid() == 0:
            raise UsageError("--rootless=true needs a non-root user; pyoci runs rootful as root")
        if flags.get("systemd-cgroup"):
            raise UsageError(
                "systemd cgroup driver is not supported by pyoci: run without --systemd-cgroup"
            )

    def store(self) -> Any:
        from pyoci.state.store import Store

        return Store(self.root)


def _usage() -> str:
    lines = [
        "NAME:\n   pyoci - Open Container Initiative runtime, in Python\n",
        "USAGE:\n   pyoci [global options] command [command options] [arguments...]\n",
        "COMMANDS:",
    ]
    lines += [f"   {name:<11}{text}" for name, (_, text) in COMMANDS.items()]
    lines.append("\nGLOBAL OPTIONS:")
    lines += [f"   {f.usage()}" for f in GLOBAL_FLAGS]
    return "\n".join(lines)


def _version() -> str:
    from pyoci import SPEC_VERSION, __version__

    return f"pyoci version {__version__}\ncommit: {_commit()}\nspec: {SPEC_VERSION}\n"


def _commit() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(here, "COMMIT")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyoci`` console script; returns the exit status."""
    from pyoci.cli import log

    argv = sys.argv[1:] if argv is None else argv
    ctx: Context | None = None
    try:
        flags, rest = parse(GLOBAL_FLAGS, argv, stop_at_positional=True)
        if flags.get("version"):
            sys.stdout.write(_version())
            return 0
        ctx = Context(flags)
        log.configure(ctx.log_path, ctx.log_format, ctx.debug)
        if not rest or flags.get("help"):
            if rest and rest[0] in COMMANDS:
                return _run_verb(ctx, rest[0], ["--help"])
            sys.stdout.write(_usage() + "\n")
            return 0 if flags.get("help") or not rest else 1
        verb = rest[0]
        if verb not in COMMANDS:
            raise UsageError(f"no such command: {verb}")
        return _run_verb(ctx, verb, rest[1:])
    except PyociError as e:
        log.error(str(e))
        return int(getattr(e, "exit_code", 1))
    except OSError as e:
        log.error(log.describe_oserror(e))
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # never a traceback for the user, unless --debug
        if ctx is not None and ctx.debug:
            import traceback

            traceback.print_exc()
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def _run_verb(ctx: Context, verb: str, argv: list[str]) -> int:
    name = COMMANDS[verb][0]
    mod = __import__(f"pyoci.cli.{name}").cli.__dict__[name]  # importlib costs ms
    command = mod.command(verb) if hasattr(mod, "command") else mod
    flags, args = parse(command.FLAGS, argv, stop_at_positional=getattr(command, "STOP", False))
    if flags.get("help") and not getattr(command, "HELP_FAILS", False):
        sys.stdout.write(command_help(verb, command) + "\n")
        return 0
    return command.run(ctx, flags, args)


def command_help(verb: str, command: Any) -> str:
    text = [
        f"NAME:\n   pyoci {verb} - {COMMANDS[verb][1]}\n",
        f"USAGE:\n   pyoci {verb} {command.USAGE}\n",
    ]
    if getattr(command, "DESCRIPTION", ""):
        text.append(f"DESCRIPTION:\n   {command.DESCRIPTION}\n")
    text.append("OPTIONS:")
    text += [f"   {f.usage()}" for f in command.FLAGS]
    return "\n".join(text)
