"""Public names imported on first use, so ``import vgi_rpc`` stays cheap for a worker.

A package lists where each of its public names lives; ``lazy_module`` gives
the package a module ``__getattr__`` and ``__dir__`` that import the owning
module when a name is first looked up and cache the value in the package's
namespace. Static type checkers see the same names through ``if TYPE_CHECKING:``
imports (``tests/test_public_api.py`` checks that both lists agree).

One name needs care: ``vgi_rpc.introspect`` is both a submodule and the
function it defines. Importing a submodule binds it on its package, which
would hide the function once anything imported the module first; the package
therefore binds the function of that name instead (as an eager
``from vgi_rpc.introspect import introspect`` in the package did).
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable, Mapping


class _LazyPackage(types.ModuleType):
    """A package whose public names shadow its submodules of the same name."""

    _vgi_shadowed: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: object) -> None:
        if name in self._vgi_shadowed and isinstance(value, types.ModuleType):
            value = getattr(value, name)  # the import system binding the submodule
        super().__setattr__(name, value)


def _import_quietly(path: str, name: str) -> types.ModuleType:
    """``__import__(path)`` with the cyclic garbage collector paused until it returns.

    Importing a module tree allocates thousands of long-lived objects (classes,
    functions, schemas), each allocation count triggering a collection that walks
    objects none of which is garbage: about 5 ms of a worker's start-up. Paused,
    the collections that were due run once, after the import.
    """
    if not gc.isenabled():  # paused by an enclosing import (or by the application)
        return __import__(path, fromlist=(name,))
    gc.disable()
    try:
        return __import__(path, fromlist=(name,))
    finally:
        gc.enable()


def lazy_module(
    package: str, table: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names live in the modules of ``table``.

    ``table`` maps a module path to the names it provides.
    """
    owner = {name: module for module, names in table.items() for name in names}
    module = sys.modules[package]
    shadowed = frozenset(name for name, path in owner.items() if path == f"{package}.{name}")
    if shadowed:
        module.__class__ = _LazyPackage
        module._vgi_shadowed = shadowed  # type: ignore[attr-defined]  # set on the swapped class

    def getattr_(name: str) -> object:
        path = owner.get(name)
        if path is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # __import__ rather than importlib.import_module: the same path as an import
        # statement, so ``python -X importtime`` accounts for the module.
        value = getattr(_import_quietly(path, name), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *owner})

    return getattr_, dir_


__all__ = ["lazy_module"]
