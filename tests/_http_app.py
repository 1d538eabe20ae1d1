"""A WSGI app for the multi-process tests: ``gunicorn tests._http_app:app``.

Every batch it sends names the process that produced it, so a test can see
which workers served the turns of one stream. The key comes from
``VGI_RPC_SIGNING_KEY``, shared by every worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    OutputCollector,
    ProducerState,
    RpcServer,
    Stream,
    StreamState,
)
from vgi_rpc.http import make_wsgi_app

PIDS = pa.schema([("turn", pa.int64()), ("pid", pa.int64())])


class Pids(Protocol):
    def exchange_pids(self) -> Stream[StreamState]: ...
    def produce_pids(self, n: int) -> Stream[StreamState]: ...
    def echo(self, data: bytes) -> bytes: ...


@dataclass
class ExchangePids(ExchangeState):
    turn: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.turn += 1
        out.emit_pydict({"turn": [self.turn], "pid": [os.getpid()]})


@dataclass
class ProducePids(ProducerState):
    n: int
    turn: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.turn >= self.n:
            out.finish()
            return
        self.turn += 1
        out.emit_pydict({"turn": [self.turn], "pid": [os.getpid()]})


class PidsImpl:
    def exchange_pids(self) -> Stream[ExchangePids]:
        return Stream(output_schema=PIDS, state=ExchangePids(), input_schema=pa.schema([]))

    def produce_pids(self, n: int) -> Stream[ProducePids]:
        return Stream(output_schema=PIDS, state=ProducePids(n))

    def echo(self, data: bytes) -> bytes:
        return data


def make_app(max_response_bytes: int | None = 1000) -> object:
    """The app every gunicorn worker serves (the key is required: workers must share it)."""
    return make_wsgi_app(
        RpcServer(Pids, PidsImpl()),
        signing_key=os.environ["VGI_RPC_SIGNING_KEY"].encode(),
        max_stream_response_bytes=max_response_bytes,
    )
