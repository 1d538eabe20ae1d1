"""Several Protocols on one server, routed by name: each client proxy reaches its own.

A second-generation request names its protocol (``vgi_rpc.protocol``), so two
protocols may even share method names; ``vgi_rpc.Reflection.v1`` lists what
the server hosts. Run with ``python examples/several_protocols.py``.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from vgi_rpc import RpcServer
from vgi_rpc.http import http_connect, make_wsgi_app, serve_in_thread
from vgi_rpc.introspect import list_protocols


class Calculator(Protocol):
    def add(self, a: float, b: float) -> float: ...
    def name(self) -> str: ...


class Greeter(Protocol):
    protocol_name: ClassVar[str] = "example.Greeter.v1"  # the wire name; else the class name

    def greet(self, who: str) -> str: ...
    def name(self) -> str: ...


class CalculatorImpl:
    def add(self, a: float, b: float) -> float:
        return a + b

    def name(self) -> str:
        return "calculator"


class GreeterImpl:
    def greet(self, who: str) -> str:
        return f"hello {who}"

    def name(self) -> str:
        return "greeter"


def main() -> None:
    server = RpcServer({Calculator: CalculatorImpl(), Greeter: GreeterImpl()}, enable_describe=True)
    app = make_wsgi_app(server, signing_key=b"example key")
    with (
        serve_in_thread(app) as url,
        http_connect(Calculator, url) as calc,
        http_connect(Greeter, url) as greeter,
    ):
        print(f"add: {calc.add(a=2.0, b=3.0)}")
        print(f"greet: {greeter.greet(who='Ada')}")
        print(f"same method, two protocols: {calc.name()} / {greeter.name()}")
        hosted = list_protocols(calc).protocols
        print(f"hosted: {[p.protocol for p in hosted]}")


if __name__ == "__main__":
    main()
