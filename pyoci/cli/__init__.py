"""runc's command line: global flags, then a verb, then the verb's flags.

This is the only layer that prints or picks exit codes. Parsing is done by
hand rather than with argparse: ``state``, ``start``, ``kill`` and ``delete``
run several times per container and argparse alone costs more than the whole
of ``pyoci state``. Each verb's module is imported only when that verb runs;
the flag syntax lives here too, since every verb needs it.

Flags are Go-flag style, as runc's callers use them: ``--flag value``,
``--flag=value``, ``-flag value`` (Go's single-dash long form, e.g. go-runc's
``-no-subreaper``), short aliases, and ``--bool=true|false``. Flags may follow
positionals, except for verbs such as ``exec`` whose trailing arguments
belong to the container process.

The lean verbs use ``posix`` rather than ``os``: the interpreter has ``posix``
loaded before the first line runs, while ``import os`` (and the
``_collections_abc`` it pulls in) costs a sixth of a bare interpreter start.
"""

import posix
import sys

from pyoci.errors import PyociError, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

# Plain classes, not dataclasses: importing dataclasses (and typing) costs more
# than everything else `pyoci state` does.


class Flag:
    __slots__ = ("default", "help", "name", "repeat", "short", "value")

    def __init__(self, name: str, short: str = "", *, value: bool = False, repeat: bool = False,
                 help: str = "", default: object = None) -> None:
        self.name = name
        self.short = short
        self.value = value  # takes a value
        self.repeat = repeat  # may be given more than once; collected into a list
        self.help = help
        self.default = default

    def usage(self) -> str:
        names = f"--{self.name}" + (f", -{self.short}" if self.short else "")
        if self.value:
            names += " value"
        return f"{names:<28}{self.help}"


class ParsedArgs:
    __slots__ = ("values",)

    def __init__(self, values: dict[str, object] | None = None) -> None:
        self.values = values if values is not None else {}

    def get(self, name: str, default: object = None) -> object:
        return self.values.get(name, default)

    def __getitem__(self, name: str) -> object:
        return self.values[name]


_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no"}


def parse(
    flags: list[Flag], argv: list[str], stop_at_positional: bool = False
) -> tuple[ParsedArgs, list[str]]:
    by_name: dict[str, Flag] = {}
    for f in flags:
        by_name[f.name] = f
        if f.short:
            by_name[f.short] = f
    if "help" not in by_name:
        by_name["help"] = by_name["h"] = Flag("help", "h")
    out = ParsedArgs({f.name: ([] if f.repeat else f.default) for f in flags})
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if len(arg) < 2 or arg[0] != "-" or (stop_at_positional and positional):
            positional.append(arg)
            if stop_at_positional:
                positional.extend(argv[i:])
                break
            continue
        body = arg[2:] if arg.startswith("--") else arg[1:]
        name, eq, inline = body.partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.value:
            if eq:
                val = inline
            elif i < len(argv):
                val = argv[i]
                i += 1
            else:
                raise UsageError(f"flag needs an argument: -{name}")
            if flag.repeat:
                out.values[flag.name].append(val)  # type: ignore[union-attr]
            else:
                out.values[flag.name] = val
        else:
            if eq:
                low = inline.lower()
                if low in _TRUE:
                    out.values[flag.name] = True
                elif low in _FALSE:
                    out.values[flag.name] = False
                else:
                    raise UsageError(f'invalid boolean value "{inline}" for -{name}')
            else:
                out.values[flag.name] = True
    return out, positional


def int_flag(flags: ParsedArgs, name: str, default: int = 0) -> int:
    raw = flags.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(str(raw), 0)
    except ValueError:
        raise UsageError(f'invalid value "{raw}" for flag -{name}: parse error') from None


def one_id(args: list[str], verb: str) -> str:
    """The container-id positional that most verbs take, with runc's wording."""
    if len(args) != 1:
        if not args:
            raise UsageError(f'"{verb}" requires exactly 1 argument(s): container id is missing')
        raise UsageError(f'"{verb}" requires exactly 1 argument(s)')
    from pyoci.runtime import check_id

    return check_id(args[0])


GLOBAL_FLAGS = [
    Flag("root", value=True, help="root directory for storage of container state"),
    Flag("log", value=True, help="set the log file to write pyoci logs to (default stderr)"),
    Flag("log-format", value=True, help="set the log format ('text' (default), or 'json')"),
    Flag("debug", help="enable debug logging"),
    Flag("systemd-cgroup", help="enable systemd cgroup support, expects cgroupsPath to be "
         "of form \"slice:prefix:name\" for e.g. \"system.slice:runc:434234\""),
    Flag("rootless", value=True,
         help="ignore cgroup permission errors when no limits are set ('true', 'false', "
              "'auto': not root, or in a user namespace)"),
    Flag("criu", value=True, help="path to the criu binary"),
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
    "checkpoint": ("checkpoint", "checkpoint a running container"),
    "restore": ("checkpoint", "restore a container from a previous checkpoint"),
}


class Context:
    """What every verb gets: the parsed global flags and the store root."""

    def __init__(self, flags: ParsedArgs) -> None:
        self.flags = flags
        root = flags.get("root")
        if not root:
            from pyoci.runtime import default_root  # ctx.runtime() imports it anyway

            root = default_root()
        self.root: str = absolute(str(root))
        self.debug = bool(flags.get("debug"))
        self.log_path: str | None = flags.get("log") or None
        fmt = flags.get("log-format") or "text"
        if fmt not in ("text", "json"):
            raise UsageError(f"invalid log-format: {fmt}")
        self.log_format: str = fmt
        rootless = flags.get("rootless")
        if rootless not in (None, "true", "false", "auto"):
            raise UsageError(f"invalid --rootless value: {rootless} (want true, false or auto)")
        self.systemd_cgroup = bool(flags.get("systemd-cgroup"))

    def store(self) -> "Any":
        return self.runtime().store

    def runtime(self) -> "Any":
        """The API object every verb calls (pyoci.runtime.Runtime), made once."""
        rt = self.__dict__.get("_runtime")
        if rt is None:
            from pyoci.runtime import Runtime

            rt = self._runtime = Runtime(self.root, rootless=self.flags.get("rootless"),
                                         systemd_cgroup=self.systemd_cgroup)
        return rt


def absolute(path: str) -> str:
    """``os.path.abspath`` without importing ``os``: join to the cwd, fold ``.``/``..``."""
    if not path.startswith("/"):
        path = f"{posix.getcwd()}/{path}"
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


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
    here = absolute(__file__).rsplit("/", 2)[0]
    try:
        with open(f"{here}/COMMIT") as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def entry() -> None:
    """The console script: :func:`main`, then exit without the interpreter's finalisation.

    Tearing the interpreter down (freeing every module and object one by one)
    costs about a fifth of a bare interpreter start, as much as all the work
    ``pyoci state`` does. pyoci keeps no threads, no atexit handlers and no
    open buffered files, so once the standard streams are flushed there is
    nothing left for finalisation to do.
    """
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # what CPython exits with when it can't flush stdout
    posix._exit(status)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyoci`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    ctx: Context | None = None
    try:
        flags, rest = parse(GLOBAL_FLAGS, argv, stop_at_positional=True)
        if flags.get("version"):
            sys.stdout.write(_version())
            return 0
        ctx = Context(flags)
        if ctx.log_path or ctx.debug:  # the defaults need no import of the log module
            from pyoci.cli import log

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
    except (Exception, KeyboardInterrupt) as e:
        return _fail(e, ctx is not None and ctx.debug)


def _fail(e: BaseException, debug: bool) -> int:
    """Log the one line a caller reads; pick the exit status. A traceback only with --debug."""
    from pyoci.cli import log

    if isinstance(e, PyociError):
        log.error(str(e))
        return int(getattr(e, "exit_code", 1))
    if isinstance(e, OSError):
        log.error(log.describe_oserror(e))
        return 1
    if isinstance(e, KeyboardInterrupt):
        log.error("interrupted")
        return 130
    if debug:
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
    if getattr(command, "WITHOUT_GC", False):
        return _without_gc(command.run, ctx, flags, args)
    return command.run(ctx, flags, args)


def _without_gc(run: "Any", *args: "Any") -> int:
    """Run ``create``, ``run`` or ``exec`` with no cycle collection while they set up.

    Their setup is short and bounded, and the collector would walk every object
    the imports made several times over (~3 ms), then again in the forked
    container process, copying the pages it touches. A verb that goes on to
    wait on its process calls ``foreground.settle()`` first.
    """
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        return run(*args)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def command_help(verb: str, command: "Any") -> str:
    text = [
        f"NAME:\n   pyoci {verb} - {COMMANDS[verb][1]}\n",
        f"USAGE:\n   pyoci {verb} {command.USAGE}\n",
    ]
    if getattr(command, "DESCRIPTION", ""):
        text.append(f"DESCRIPTION:\n   {command.DESCRIPTION}\n")
    text.append("OPTIONS:")
    text += [f"   {f.usage()}" for f in command.FLAGS]
    return "\n".join(text)
