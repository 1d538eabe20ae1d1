"""An HTTP service: unary calls, a producer and an exchange stream, behind a bearer token.

Run it: ``python examples/http_service.py`` (serves on a free loopback port,
calls it, stops). The same module serves for real with

    VGI_RPC_SIGNING_KEY=change-me vgi-rpc serve examples.http_service:Inventory \\
        examples.http_service:InventoryImpl --port 8000
    VGI_RPC_SIGNING_KEY=change-me gunicorn 'examples.http_service:app' -w 4

(``app`` below needs no authentication when served that way, for brevity.)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Protocol

import falcon
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vgi_rpc import (
    AnnotatedBatch,
    AuthContext,
    CallContext,
    ExchangeState,
    OutputCollector,
    ProducerState,
    RpcError,
    RpcServer,
    Stream,
    StreamState,
    http_connect,
    make_wsgi_app,
)
from vgi_rpc.http import AuthFailure, HttpUnauthorizedError, serve_in_thread

_STOCK_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("sku", pa.utf8()),
    pa.field("count", pa.int64()),
]
STOCK = pa.schema(_STOCK_FIELDS)
PRICES = pa.schema([("price", pa.float64())])


class Inventory(Protocol):
    """A tiny stock service."""

    def count(self, sku: str) -> int:
        """Units in stock for ``sku``."""
        ...

    def whoami(self) -> str:
        """The authenticated caller."""
        ...

    def listing(self, page_size: int) -> Stream[StreamState]:
        """Every SKU, ``page_size`` rows per batch."""
        ...

    def with_tax(self, rate: float) -> Stream[StreamState]:
        """Exchange: price batches in, prices with tax out."""
        ...


STOCK_LEVELS = {"apple": 12, "pear": 3, "plum": 0, "fig": 7, "kiwi": 25}


@dataclass
class Listing(ProducerState):
    page_size: int
    offset: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        skus = sorted(STOCK_LEVELS)[self.offset : self.offset + self.page_size]
        if not skus:
            out.finish()
            return
        out.emit_pydict({"sku": skus, "count": [STOCK_LEVELS[s] for s in skus]})
        self.offset += len(skus)


@dataclass
class WithTax(ExchangeState):
    rate: float

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        prices = input.batch.column("price").to_pylist()
        out.emit_pydict({"price": [round((p or 0.0) * (1 + self.rate), 2) for p in prices]})


class InventoryImpl:
    def count(self, sku: str) -> int:
        if sku not in STOCK_LEVELS:
            raise KeyError(f"unknown sku {sku!r}")
        return STOCK_LEVELS[sku]

    def whoami(self, ctx: CallContext) -> str:
        ctx.auth.require_authenticated()
        return f"{ctx.auth.principal} ({ctx.auth.domain})"

    def listing(self, page_size: int) -> Stream[Listing]:
        return Stream(output_schema=STOCK, state=Listing(page_size))

    def with_tax(self, rate: float) -> Stream[WithTax]:
        return Stream(output_schema=PRICES, state=WithTax(rate), input_schema=PRICES)


def authenticate(req: falcon.Request) -> AuthContext:
    """Accept ``Authorization: Bearer demo-token``; anonymous callers may still call ``count``."""
    header = req.get_header("Authorization")
    if header is None:
        return AuthContext.anonymous()
    if header != "Bearer demo-token":
        raise AuthFailure("invalid_credential", "unknown bearer token")
    return AuthContext(domain="demo", authenticated=True, principal="alice")


def _key() -> bytes:
    return os.environ.get("VGI_RPC_SIGNING_KEY", "example key: set VGI_RPC_SIGNING_KEY").encode()


# For gunicorn / any WSGI server: every worker must get the same signing key.
app = make_wsgi_app(RpcServer(Inventory, InventoryImpl()), signing_key=_key())


def main() -> None:
    secured = make_wsgi_app(
        RpcServer(Inventory, InventoryImpl()), signing_key=_key(), authenticate=authenticate
    )
    with serve_in_thread(secured) as url:
        with http_connect(Inventory, url) as anonymous:
            print("apples:", anonymous.count(sku="apple"))
            try:
                anonymous.whoami()
            except RpcError as exc:
                print("anonymous whoami:", exc.error_type)
        with http_connect(Inventory, url, bearer_token="demo-token") as alice:
            print("whoami:", alice.whoami())
            pages = [batch.batch.num_rows for batch in alice.listing(page_size=2)]
            print("listing pages:", pages)
            with alice.with_tax(rate=0.2) as session:
                taxed = session.exchange(pa.RecordBatch.from_pydict({"price": [10.0, 2.5]}))
                print("with tax:", taxed.batch.column("price").to_pylist())
        with http_connect(Inventory, url, bearer_token="wrong") as mallory:
            try:
                mallory.count(sku="apple")
            except HttpUnauthorizedError as exc:
                print("wrong token:", exc.status, exc.reason)


if __name__ == "__main__":
    main()
