"""Public names imported on first use, so ``import vgi_rpc`` stays cheap for a worker.

A package lists where each of its public names lives; ``lazy_module`` returns
the module ``__getattr__`` and ``__dir__`` that import the owning module when a
name is first looked up and cache the value in the package's namespace. Static
type checkers see the same names through ``if TYPE_CHECKING:`` imports
(``tests/test_public_api.py`` checks that both lists agree).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping


def lazy_module(
    package: str, table: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names live in the modules of ``table``.

    ``table`` maps a module path to the names it provides.
    """
    owner = {name: module for module, names in table.items() for name in names}

    def getattr_(name: str) -> object:
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # __import__ rather than importlib.import_module: the same path as an import
        # statement, so ``python -X importtime`` accounts for the module.
        value = getattr(__import__(module, fromlist=(name,)), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *owner})

    return getattr_, dir_


__all__ = ["lazy_module"]
