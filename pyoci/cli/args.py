"""Go-flag-style parsing, as runc's callers use it.

Accepted forms: ``--flag value``, ``--flag=value``, ``-flag value`` (Go's
single-dash long form, e.g. go-runc's ``-no-subreaper``), short aliases, and
``--bool=true|false``. Flags may follow positionals, except for verbs such as
``exec`` whose trailing arguments belong to the container process.
"""

from __future__ import annotations

from pyoci.errors import UsageError

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
    from pyoci.state.store import check_id

    return check_id(args[0])
