"""A worker with nothing but vgi_rpc: ``python -m tests._startup_worker`` (the start-up test's)."""

from __future__ import annotations

from typing import Protocol

from vgi_rpc import run_server


class Calc(Protocol):
    """One unary method with a scalar result (its encoding goes through ``pa.array``)."""

    def add(self, a: float, b: float) -> float:
        """Add two floats."""
        ...


class CalcImpl:
    """Implementation of ``Calc``."""

    def add(self, a: float, b: float) -> float:
        return a + b


if __name__ == "__main__":
    run_server(Calc, CalcImpl())
