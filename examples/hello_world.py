"""Define a Protocol, implement it, call it through an in-process pipe."""

from __future__ import annotations

from typing import Protocol

from vgi_rpc import serve_pipe


class Calculator(Protocol):
    """Calculator service."""

    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        ...


class CalculatorImpl:
    """Calculator implementation."""

    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        return a + b


def main() -> None:
    with serve_pipe(Calculator, CalculatorImpl()) as proxy:
        result = proxy.add(a=2.0, b=3.0)
        print(f"2 + 3 = {result}")


if __name__ == "__main__":
    main()
