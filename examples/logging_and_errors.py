"""Client-visible logs, server-side logs, and remote errors as RpcError."""

from __future__ import annotations

import logging
from typing import Protocol

from vgi_rpc import CallContext, Level, Message, RpcError, serve_pipe


class TextService(Protocol):
    """Processes text."""

    def process(self, data: str) -> str: ...
    def fail(self) -> str: ...


class TextServiceImpl:
    """``ctx`` is injected by the framework; it never appears in the Protocol."""

    def process(self, data: str, ctx: CallContext) -> str:
        ctx.client_log(Level.INFO, "Processing started", input_size=str(len(data)))
        ctx.logger.info("Processing request", extra={"input_size": len(data)})
        return data.upper()

    def fail(self) -> str:
        raise ValueError("something went wrong")


def handle_log(msg: Message) -> None:
    print(f"[{msg.level.value}] {msg.message} {msg.extra}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="server log: %(name)s: %(message)s")
    with serve_pipe(TextService, TextServiceImpl(), on_log=handle_log) as proxy:
        print(proxy.process(data="hello"))
        try:
            proxy.fail()
        except RpcError as e:
            print(f"error_type={e.error_type} error_message={e.error_message}")
            print(f"remote traceback has {len(e.remote_traceback.splitlines())} lines")
        print(proxy.process(data="still usable"))


if __name__ == "__main__":
    main()
