"""A small JSON Schema validator for exactly the keywords pyoci's own schemas use.

Why not jsonschema: importing it costs ~150 ms of CPU (its ``_format`` module
alone ~90 ms), and podman writes a different config.json for every container,
so the marker cache in :mod:`pyoci.spec.schema` never hits for it and every
``create`` paid that price. This module imports nothing beyond the standard
library's core (``re`` only if a schema uses a pattern not implemented by hand
below) and compiles a schema once per process into a tree of closures.

It is not a general validator. A keyword it does not know raises
:class:`UnsupportedSchema` when the schema is compiled, so a schema edit cannot
silently weaken validation: whoever adds ``anyOf`` or ``maxLength`` to a schema
gets a failing test and adds the keyword here (and its wording in
``schema._describe``).

jsonschema stays the reference. Every keyword below follows the semantics of
jsonschema 4's draft 2020-12 validator, including its quirks (``integer``
accepts ``1.0``; ``true`` is never equal to ``1``; ``pattern`` is
``re.search``, so ``$`` also matches before one final newline), and errors are
produced in the same order with the same attributes that
``schema._describe`` reads from a jsonschema ``ValidationError``. That lets the
tests show both validators pick the same message for a document; at run time
``schema.check_cached`` still asks jsonschema to word a rejection.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    # A compiled schema: None when the instance is valid, else its errors in
    # jsonschema's order. None (not []) keeps the valid path allocation-free.
    Check = Callable[[Any], "list[Error] | None"]

__all__ = ["Error", "UnsupportedSchema", "Validator", "compile_schema"]


class UnsupportedSchema(ValueError):
    """The schema uses something this validator does not implement."""


class Error:
    """One violation, shaped like the parts of jsonschema's ValidationError we read.

    Paths are built from the leaf upwards while the error travels back through
    the closures, so they are kept reversed and only turned around on access.
    """

    __slots__ = ("_rpath", "_rschema", "instance", "schema", "validator", "validator_value")

    # Our schemas have no anyOf/oneOf, so an error never has sub-errors.
    context: tuple[()] = ()

    def __init__(self, keyword: str, value: Any, instance: Any, schema: dict[str, Any]) -> None:
        self.validator = keyword
        self.validator_value = value
        self.instance = instance
        self.schema = schema
        self._rpath: list[str | int] = []
        self._rschema: list[str | int] = [keyword]

    @property
    def absolute_path(self) -> list[str | int]:
        """Keys and indexes from the document root to the offending value."""
        return self._rpath[::-1]

    @property
    def relative_schema_path(self) -> list[str | int]:
        """Keywords and names from the schema root to the failed keyword ($ref and if left out)."""
        return self._rschema[::-1]

    @property
    def message(self) -> str:
        """A plain description; schema._describe words every keyword we support itself."""
        return f"{self.instance!r} fails {self.validator} {self.validator_value!r}"

    def __repr__(self) -> str:
        return f"<Error {self.validator} at {self.absolute_path}>"


def _up(errs: list[Error], path: str | int | None, *keys: str | int) -> None:
    """Record on each error the step its parent took to reach it."""
    for e in errs:
        if path is not None:
            e._rpath.append(path)
        e._rschema.extend(keys)


# -- keyword semantics -------------------------------------------------------------

def _is_integer(x: object) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "integer": _is_integer,
    "number": _is_number,
}


def _equal(a: object, b: object) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0, containers compare deeply."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return a == b


def _dollar(full: Callable[[str], bool]) -> Callable[[str], bool]:
    """``^...$`` under re.search: ``$`` also matches just before a final newline."""
    return lambda s: full(s) or (s.endswith("\n") and full(s[:-1]))


def _only(chars: str, nonempty: bool = False) -> Callable[[str], bool]:
    """A full match of ``[chars]*`` (or ``+``); strip() does the set test in C."""
    return lambda s: not s.strip(chars) and (bool(s) or not nonempty)


_DIGITS = "0123456789"
_ALNUM_DOT_DASH = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-"


def _semver_num(p: str) -> bool:
    return p == "0" or (p != "" and p[0] != "0" and not p.strip(_DIGITS))


def _semver_full(s: str) -> bool:
    """SemVer 2.0 as the schemas' regex states it (numbers without leading zeros)."""
    core, plus, build = s.partition("+")
    if plus and (not build or build.strip(_ALNUM_DOT_DASH)):
        return False
    nums, dash, pre = core.partition("-")  # the numbers cannot contain '-'
    if dash and (not pre or pre.strip(_ALNUM_DOT_DASH)):
        return False
    parts = nums.split(".")
    return len(parts) == 3 and all(_semver_num(p) for p in parts)


# The patterns our schemas use, by hand: importing `re` would cost ~5 ms per
# create. Each is equivalent to re.search(pattern, s); a test checks that on
# generated strings. Any other pattern falls back to `re`, compiled on first use.
_PATTERNS: dict[str, Callable[[str], bool]] = {
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$":
        _dollar(_semver_full),
    "^[0-9, -]*$": _dollar(_only(_DIGITS + ", -")),
    "^[rwm]*$": _dollar(_only("rwm")),
    "^[^\\n]*$": _dollar(lambda s: "\n" not in s),
    "^/": lambda s: s.startswith("/"),
    "^CAP_[A-Z0-9_]+$": _dollar(
        lambda s: s.startswith("CAP_") and _only("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", True)(
            s[4:])),
}


def _regex(pattern: str) -> Callable[[str], bool]:
    """re.search for a pattern not implemented by hand; `re` is imported on first use."""
    compiled: list[Callable[[str], object]] = []

    def search(s: str) -> bool:
        if not compiled:
            import re

            compiled.append(re.compile(pattern).search)
        return compiled[0](s) is not None

    return search


# -- compiler ----------------------------------------------------------------------

# Keywords that never fail an instance. then/else are read by "if".
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "title", "description", "default",
    "examples", "deprecated", "readOnly", "writeOnly", "then", "else",
})


class _Compiler:
    """Turns one schema document into closures; shares compiled $ref targets."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def node(self, s: object) -> Check:
        if not isinstance(s, dict):
            # true/false schemas word their errors differently; none of ours uses one.
            raise UnsupportedSchema(f"boolean schema {s!r}")
        if ("then" in s or "else" in s) and "if" not in s:
            raise UnsupportedSchema("then/else without if")
        checks: list[Check] = []
        for k, v in s.items():
            if k in _ANNOTATIONS or k.startswith("x-"):
                continue
            make = _KEYWORDS.get(k)
            if make is None:
                raise UnsupportedSchema(f"keyword {k!r}")
            checks.append(make(self, v, s))
        if not checks:
            return lambda x: None
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            c1, c2 = checks

            def both(x: Any) -> list[Error] | None:
                e1, e2 = c1(x), c2(x)
                if e1 is None:
                    return e2
                if e2:
                    e1.extend(e2)
                return e1

            return both
        tup = tuple(checks)

        def every(x: Any) -> list[Error] | None:
            out = None
            for c in tup:
                e = c(x)
                if e:
                    if out is None:
                        out = e
                    else:
                        out.extend(e)
            return out

        return every

    # Each k_<keyword>(value, schema) returns the check for that keyword.

    def k_ref(self, ref: object, s: dict[str, Any]) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UnsupportedSchema(f"$ref {ref!r}: only local refs are supported")
        hit = self.refs.get(ref)
        if hit is not None:
            return hit
        slot: list[Check] = []
        # A ref reached again while its target is still being compiled (recursion)
        # goes through the slot; everyone else gets the compiled check directly.
        self.refs[ref] = lambda x: slot[0](x)
        target: Any = self.root
        for raw in ref[1:].split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            try:
                target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise UnsupportedSchema(f"$ref {ref!r} does not resolve") from None
        slot.append(self.node(target))
        self.refs[ref] = slot[0]
        return slot[0]

    def k_type(self, t: object, s: dict[str, Any]) -> Check:
        names = [t] if isinstance(t, str) else t
        if not isinstance(names, list) or not all(n in _TYPES for n in names):
            raise UnsupportedSchema(f"type {t!r}")
        tests = tuple(_TYPES[n] for n in names)
        if len(tests) == 1:
            test = tests[0]

            def one(x: Any) -> list[Error] | None:
                return None if test(x) else [Error("type", t, x, s)]

            return one

        def any_of(x: Any) -> list[Error] | None:
            return None if any(f(x) for f in tests) else [Error("type", t, x, s)]

        return any_of

    def k_enum(self, values: object, s: dict[str, Any]) -> Check:
        if not isinstance(values, list) or not values:
            raise UnsupportedSchema(f"enum {values!r}")
        if all(isinstance(v, str) for v in values):
            allowed = frozenset(values)

            def strings(x: Any) -> list[Error] | None:
                return None if isinstance(x, str) and x in allowed else [
                    Error("enum", values, x, s)]

            return strings

        def general(x: Any) -> list[Error] | None:
            return None if any(_equal(v, x) for v in values) else [Error("enum", values, x, s)]

        return general

    def k_const(self, value: object, s: dict[str, Any]) -> Check:
        def const(x: Any) -> list[Error] | None:
            return None if _equal(x, value) else [Error("const", value, x, s)]

        return const

    def _bound(self, kw: str, limit: object, s: dict[str, Any], below: bool) -> Check:
        if not _is_number(limit):
            raise UnsupportedSchema(f"{kw} {limit!r}")
        lim: float = limit  # type: ignore[assignment]

        def bound(x: Any) -> list[Error] | None:
            if not _is_number(x) or not (x < lim if below else x > lim):
                return None
            return [Error(kw, limit, x, s)]

        return bound

    def k_minimum(self, limit: object, s: dict[str, Any]) -> Check:
        return self._bound("minimum", limit, s, below=True)

    def k_maximum(self, limit: object, s: dict[str, Any]) -> Check:
        return self._bound("maximum", limit, s, below=False)

    def k_minLength(self, n: object, s: dict[str, Any]) -> Check:
        if not _is_integer(n):
            raise UnsupportedSchema(f"minLength {n!r}")

        def min_length(x: Any) -> list[Error] | None:
            # len() counts code points, as JSON Schema (and jsonschema) do.
            return [Error("minLength", n, x, s)] if isinstance(x, str) and len(x) < n else None

        return min_length

    def k_minItems(self, n: object, s: dict[str, Any]) -> Check:
        if not _is_integer(n):
            raise UnsupportedSchema(f"minItems {n!r}")

        def min_items(x: Any) -> list[Error] | None:
            return [Error("minItems", n, x, s)] if isinstance(x, list) and len(x) < n else None

        return min_items

    def k_pattern(self, pattern: object, s: dict[str, Any]) -> Check:
        if not isinstance(pattern, str):
            raise UnsupportedSchema(f"pattern {pattern!r}")
        match = _PATTERNS.get(pattern) or _regex(pattern)

        def pat(x: Any) -> list[Error] | None:
            return [Error("pattern", pattern, x, s)] if isinstance(x, str) and not match(
                x) else None

        return pat

    def k_required(self, names: object, s: dict[str, Any]) -> Check:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UnsupportedSchema(f"required {names!r}")
        need = tuple(names)

        def required(x: Any) -> list[Error] | None:
            if not isinstance(x, dict):
                return None
            # One error per missing name, as jsonschema yields them.
            missing = [Error("required", names, x, s) for n in need if n not in x]
            return missing or None

        return required

    def k_properties(self, props: object, s: dict[str, Any]) -> Check:
        if not isinstance(props, dict):
            raise UnsupportedSchema(f"properties {props!r}")
        subs = tuple((name, self.node(sub)) for name, sub in props.items())

        def properties(x: Any) -> list[Error] | None:
            if not isinstance(x, dict):
                return None
            out = None
            for name, sub in subs:  # schema order, as jsonschema walks them
                if name in x:
                    e = sub(x[name])
                    if e:
                        _up(e, name, name, "properties")
                        if out is None:
                            out = e
                        else:
                            out.extend(e)
            return out

        return properties

    def k_additionalProperties(self, sub: object, s: dict[str, Any]) -> Check:
        if "patternProperties" in s:
            raise UnsupportedSchema("patternProperties")
        known = frozenset(s.get("properties") or ())
        check = self.node(sub)

        def additional(x: Any) -> list[Error] | None:
            if not isinstance(x, dict):
                return None
            out = None
            # jsonschema walks a set of the extra names, so equally deep errors
            # come out in set order; a set built the same way iterates the same
            # way within one process, which keeps the two reports identical.
            for name in set(k for k in x if k not in known):
                e = check(x[name])
                if e:
                    _up(e, name, "additionalProperties")
                    if out is None:
                        out = e
                    else:
                        out.extend(e)
            return out

        return additional

    def k_propertyNames(self, sub: object, s: dict[str, Any]) -> Check:
        check = self.node(sub)

        def names(x: Any) -> list[Error] | None:
            if not isinstance(x, dict):
                return None
            out = None
            for name in x:
                e = check(name)
                if e:
                    _up(e, None, "propertyNames")  # the path stays at the object
                    if out is None:
                        out = e
                    else:
                        out.extend(e)
            return out

        return names

    def k_items(self, sub: object, s: dict[str, Any]) -> Check:
        if "prefixItems" in s:
            raise UnsupportedSchema("prefixItems")
        check = self.node(sub)

        def items(x: Any) -> list[Error] | None:
            if not isinstance(x, list):
                return None
            out = None
            for i, item in enumerate(x):
                e = check(item)
                if e:
                    _up(e, i, "items")
                    if out is None:
                        out = e
                    else:
                        out.extend(e)
            return out

        return items

    def k_if(self, sub: object, s: dict[str, Any]) -> Check:
        cond = self.node(sub)
        then = self.node(s["then"]) if "then" in s else None
        else_ = self.node(s["else"]) if "else" in s else None

        def if_(x: Any) -> list[Error] | None:
            if cond(x) is None:
                branch, key = then, "then"
            else:
                branch, key = else_, "else"
            if branch is None:
                return None
            e = branch(x)
            if e:
                _up(e, None, key)
            return e

        return if_


# keyword -> _Compiler.k_<keyword>, the methods that build its check
_KEYWORDS: dict[str, Callable[[_Compiler, Any, dict[str, Any]], Check]] = {
    name[2:] if name != "k_ref" else "$ref": fn
    for name, fn in vars(_Compiler).items() if name.startswith("k_")
}


class Validator:
    """A schema compiled once; cheap to call for every document."""

    __slots__ = ("_check",)

    def __init__(self, schema: dict[str, Any]) -> None:
        self._check = _Compiler(schema).node(schema)

    def is_valid(self, doc: Any) -> bool:
        """Whether ``doc`` satisfies the schema."""
        return self._check(doc) is None

    def errors(self, doc: Any) -> list[Error]:
        """Every violation, in the order jsonschema's ``iter_errors`` yields them."""
        return self._check(doc) or []


def compile_schema(schema: dict[str, Any]) -> Validator:
    """Compile ``schema``; raise UnsupportedSchema if it uses a keyword not handled here."""
    return Validator(schema)
