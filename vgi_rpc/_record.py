"""``@record``: a hand-written slotted class that behaves as a dataclass, without ``dataclasses``.

``import dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``) and
each ``@dataclass`` compiles generated source: together about 10 ms of a worker's
start-up for the handful of value classes serving a call needs. A class written
out by hand (``__slots__``, ``__init__``) and decorated with ``@record`` gets the
rest of what ``@dataclass(slots=True)`` would give it, without compiling anything:

- ``__repr__``, ``__eq__`` and ``__hash__`` over its fields, as a dataclass has them
  (``frozen``: assigning or deleting a field raises ``FrozenInstanceError``; an
  ``eq`` class that is not frozen is unhashable);
- ``__match_args__``, pickling of frozen instances, ``copy.replace`` (3.13+);
- ``__dataclass_fields__`` and ``__dataclass_params__``, built on first access from a
  real dataclass of the same declaration, so ``dataclasses.fields``, ``replace``,
  ``asdict``, ``is_dataclass`` and dataclass subclasses work unchanged.

The fields are the ``__init__`` parameters, in order; their types are the class
annotations (or, for a field served by a property, the property's return
annotation); a default of ``FACTORY`` names a field built by ``factories[name]``.
``tests/test_records.py`` checks each such class against the ``@dataclass`` it replaces.
"""

from __future__ import annotations

import sys
from _thread import get_ident
from collections.abc import Callable, Mapping
from operator import attrgetter, itemgetter
from typing import Any, TypeVar, dataclass_transform

try:
    # the C descriptor collections.namedtuple's fields are (no stub: private to CPython)
    from _collections import _tuplegetter  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - other interpreters

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(itemgetter(index), doc=doc)


C = TypeVar("C", bound=type)


class _Factory:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"  # as a dataclass's signature shows such a default


FACTORY: Any = _Factory()
"""Default of an ``__init__`` parameter whose field has a ``default_factory``."""


@dataclass_transform(eq_default=True)
def record(
    *,
    frozen: bool = False,
    eq: bool = True,
    slots: bool = True,
    factories: Mapping[str, Callable[[], object]] | None = None,
) -> Callable[[C], C]:
    """Complete a hand-written class as ``@dataclass(frozen=..., eq=..., slots=...)`` would."""

    def apply(cls: C) -> C:
        own = vars(cls)
        code = own["__init__"].__code__
        own["__init__"].__annotations__["return"] = None  # not "None": as a dataclass's __init__
        names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
        methods: dict[str, object] = {"__match_args__": names}
        if "__repr__" not in own:
            methods["__repr__"] = _repr(names)
        if eq:
            methods["__eq__"] = _eq(names)
            methods["__hash__"] = _hash(names) if frozen else None
        if frozen:
            methods["__setattr__"], methods["__delattr__"] = _frozen(cls, names)
            if slots:
                methods["__getstate__"], methods["__setstate__"] = _state(names)
        if sys.version_info >= (3, 13):
            methods["__replace__"] = _replace
        for name, value in methods.items():
            if name not in own or name == "__hash__":
                setattr(cls, name, value)
        spec = _Spec(cls, {"frozen": frozen, "eq": eq, "slots": slots}, factories or {})
        cls.__dataclass_fields__ = _Lazy(spec, "__dataclass_fields__")  # type: ignore[attr-defined]  # the dataclass protocol
        cls.__dataclass_params__ = _Lazy(spec, "__dataclass_params__")  # type: ignore[attr-defined]  # the dataclass protocol
        return cls

    return apply


F = TypeVar("F", bound=Callable[..., Any])


def _named(function: F, name: str) -> F:
    function.__name__ = function.__qualname__ = name
    return function


def _repr(names: tuple[str, ...]) -> Callable[[object], str]:
    active: set[tuple[int, int]] = set()

    def repr_(self: object) -> str:
        key = (id(self), get_ident())
        if key in active:
            return "..."
        active.add(key)
        try:
            inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        finally:
            active.discard(key)
        return f"{type(self).__qualname__}({inner})"

    return _named(repr_, "__repr__")


def _values(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """The field values of an instance as a tuple (in C: ``attrgetter``)."""
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda self: (one(self),)
    return attrgetter(*names)


def _eq(names: tuple[str, ...]) -> Callable[[object, object], object]:
    values = _values(names)

    def eq(self: object, other: object) -> object:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    return _named(eq, "__eq__")


def _hash(names: tuple[str, ...]) -> Callable[[object], int]:
    values = _values(names)

    def hash_(self: object) -> int:
        return hash(values(self))

    return _named(hash_, "__hash__")


def _frozen(
    cls: type, names: tuple[str, ...]
) -> tuple[Callable[[object, str, object], None], Callable[[object, str], None]]:
    fields = frozenset(names)
    parent: Any = super  # super(cls, self): the next class after cls in self's MRO

    def setattr_(self: object, name: str, value: object) -> None:
        if type(self) is cls or name in fields:
            raise _frozen_error(f"cannot assign to field {name!r}")
        parent(cls, self).__setattr__(name, value)

    def delattr_(self: object, name: str) -> None:
        if type(self) is cls or name in fields:
            raise _frozen_error(f"cannot delete field {name!r}")
        parent(cls, self).__delattr__(name)

    return _named(setattr_, "__setattr__"), _named(delattr_, "__delattr__")


def _frozen_error(message: str) -> AttributeError:
    import dataclasses  # only on this error path

    return dataclasses.FrozenInstanceError(message)


def _state(
    names: tuple[str, ...],
) -> tuple[Callable[[object], list[object]], Callable[[object, list[object]], None]]:
    def getstate(self: object) -> list[object]:
        return [getattr(self, n) for n in names]

    def setstate(self: object, state: list[object]) -> None:
        for name, value in zip(names, state, strict=False):
            object.__setattr__(self, name, value)

    return _named(getstate, "__getstate__"), _named(setstate, "__setstate__")


def _replace(self: object, /, **changes: object) -> object:
    import dataclasses

    return dataclasses.replace(self, **changes)  # type: ignore[type-var]  # a record is a dataclass


class _Spec:
    """The real dataclass metadata of one record class, built once when first asked for."""

    __slots__ = ("cls", "factories", "params")

    def __init__(
        self, cls: type, params: dict[str, bool], factories: Mapping[str, Callable[[], object]]
    ) -> None:
        self.cls = cls
        self.params = params
        self.factories = factories

    def build(self) -> None:
        import dataclasses

        cls = self.cls
        init = vars(cls)["__init__"]
        code = init.__code__
        names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
        defaults = dict(zip(reversed(names), reversed(init.__defaults__ or ()), strict=False))
        defaults.update(init.__kwdefaults__ or {})
        annotations = getattr(cls, "__annotations__", {})
        namespace: dict[str, object] = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__annotations__": {name: _field_type(cls, annotations, name) for name in names},
        }
        for name, default in defaults.items():
            if default is FACTORY:
                namespace[name] = dataclasses.field(default_factory=self.factories[name])
            else:
                namespace[name] = default
        make: Any = dataclasses.dataclass(**self.params)
        shadow = make(type(cls.__name__, (), namespace))
        type.__setattr__(cls, "__dataclass_fields__", shadow.__dataclass_fields__)
        type.__setattr__(cls, "__dataclass_params__", shadow.__dataclass_params__)


def _field_type(cls: type, annotations: Mapping[str, object], name: str) -> object:
    if name in annotations:
        return annotations[name]
    prop = vars(cls)[name]  # a field served by a property: its getter's return annotation
    return prop.fget.__annotations__["return"]


class _Lazy:
    """A class attribute that replaces itself with the real dataclass metadata on first access."""

    __slots__ = ("name", "spec")

    def __init__(self, spec: _Spec, name: str) -> None:
        self.spec = spec
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> object:
        self.spec.build()
        return vars(self.spec.cls)[self.name]


def tuple_fields(name: str, fields: tuple[str, ...], module: str) -> type[tuple[Any, ...]]:
    """A tuple subclass with named fields, what ``typing.NamedTuple`` makes, without ``eval``.

    ``collections.namedtuple`` evaluates generated source for every class (its
    ``__new__``), about 0.4 M instructions each at start-up. Instances are built
    positionally; fields, ``_fields``, ``_replace``, ``repr``, equality, hashing and
    pickling behave as a named tuple's. Declare the class as a ``NamedTuple`` under
    ``TYPE_CHECKING`` for type checkers.
    """
    count = len(fields)

    def new(cls: type[tuple[Any, ...]], *values: object) -> tuple[Any, ...]:
        if len(values) != count:
            raise TypeError(f"{name}() takes {count} positional arguments, not {len(values)}")
        return tuple.__new__(cls, values)

    def _replace(self: tuple[Any, ...], /, **changes: object) -> tuple[Any, ...]:
        values = [changes.pop(field, value) for field, value in zip(fields, self, strict=True)]
        if changes:
            raise TypeError(f"{name}._replace: unexpected fields {sorted(changes)}")
        return tuple.__new__(type(self), values)

    def repr_(self: tuple[Any, ...]) -> str:
        inner = ", ".join(f"{field}={value!r}" for field, value in zip(fields, self, strict=True))
        return f"{type(self).__name__}({inner})"

    namespace: dict[str, object] = {
        "__slots__": (),
        "__module__": module,
        "_fields": fields,
        "__match_args__": fields,
        "__new__": _named(new, "__new__"),
        "__getnewargs__": _named(lambda self: tuple(self), "__getnewargs__"),
        "_replace": _replace,
        "__repr__": _named(repr_, "__repr__"),
    }
    for index, field in enumerate(fields):
        namespace[field] = _tuplegetter(index, f"Alias for field number {index}")
    return type(name, (tuple,), namespace)


__all__ = ["FACTORY", "record", "tuple_fields"]
