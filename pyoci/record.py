"""A dependency-free stand-in for ``@dataclass``.

``dataclasses`` imports ``inspect``, ``ast`` and ``typing``, about 10 ms on
every ``create``: more than the rest of the plan costs. Records only need an
``__init__`` from the annotated fields, a ``__repr__`` and ``__eq__``.
"""

from __future__ import annotations


class Factory:
    """A default built afresh for each instance (``Factory(list)``)."""

    __slots__ = ("make",)

    def __init__(self, make: object) -> None:
        self.make = make


_MISSING = object()


def record(cls: type | None = None, *, frozen: bool = False):  # type: ignore[no-untyped-def]
    """``@record`` or ``@record(frozen=True)``."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _build(cls: type, frozen: bool) -> type:
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - no inspect import
    names = [n for n in annotations if not n.startswith("_")]
    defaults = {n: cls.__dict__.get(n, _MISSING) for n in names}
    for n in names:  # class attributes would shadow nothing, but keep the class clean
        if defaults[n] is not _MISSING:
            delattr(cls, n)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} arguments")
        values = dict(zip(names, args, strict=False))
        for k, v in kwargs.items():
            if k not in defaults or k in values:
                raise TypeError(f"{cls.__name__}() got an unexpected or repeated argument {k!r}")
            values[k] = v
        for n in names:
            if n not in values:
                d = defaults[n]
                if d is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing argument {n!r}")
                values[n] = d.make() if isinstance(d, Factory) else d  # type: ignore[operator]
            object.__setattr__(self, n, values[n])
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __repr__(self: object) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{cls.__name__}({inner})"

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    cls.__init__ = __init__  # type: ignore[misc]
    cls.__repr__ = __repr__  # type: ignore[method-assign]
    cls.__eq__ = __eq__  # type: ignore[method-assign]
    cls.__hash__ = None  # type: ignore[assignment]
    cls.__match_args__ = tuple(names)  # type: ignore[attr-defined]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign,assignment]
    return cls
