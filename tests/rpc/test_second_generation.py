"""The second protocol generation on the server: routing by (protocol, method), several
protocols per server, Reflection.v1, and the HTTP surface (protocol paths, response caps)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

import httpx
import pyarrow as pa
import pytest

from tests._hostile import RecordingChannel
from tests.conftest import serve_wsgi
from tests.http._helpers import ARROW, read_batches, stream_body, tokens
from vgi_rpc import (
    ArrowSerializableDataclass,
    CallContext,
    OutputCollector,
    ProducerState,
    RpcError,
    RpcServer,
    Stream,
    StreamState,
    serve_pipe,
)
from vgi_rpc._methods import rpc_methods
from vgi_rpc.http import make_wsgi_app
from vgi_rpc.rpc import ONE_EMPTY_ROW
from vgi_rpc.rpc._client import connection_of
from vgi_rpc.rpc._fingerprint import protocol_hash_v1
from vgi_rpc.rpc._reflection import Reflection
from vgi_rpc.wire import keys as k

# The hash the reference 0.52.2 publishes for its own reflection protocol (spec section 14).
REFERENCE_REFLECTION_HASH = "3c7db4cae8cdfc93dc4a76e73b8b759e18e45e6a5811adba4e520366344b919a"


class Calculator(Protocol):
    def add(self, a: float, b: float) -> float: ...
    def name(self) -> str: ...


class Store(Protocol):
    protocol_name: ClassVar[str] = "demo.Store.v1"

    def name(self) -> str: ...
    def put(self, key: str, value: int) -> int: ...
    def count(self, n: int, width: int) -> Stream[StreamState]: ...


@dataclass
class Count(ProducerState):
    n: int
    width: int
    sent: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.sent >= self.n:
            out.finish()
            return
        self.sent += 1
        out.emit_pydict({"i": [self.sent], "pad": ["x" * self.width]})


class CalculatorImpl:
    def add(self, a: float, b: float) -> float:
        return a + b

    def name(self) -> str:
        return "calculator"


class StoreImpl:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def name(self) -> str:
        return "store"

    def put(self, key: str, value: int) -> int:
        self.items[key] = value
        return len(self.items)

    def count(self, n: int, width: int) -> Stream[Count]:
        fields: list[pa.Field[pa.DataType]] = [
            pa.field("i", pa.int64()),
            pa.field("pad", pa.utf8()),
        ]
        schema = pa.schema(fields)
        return Stream(output_schema=schema, state=Count(n, width))


def _server() -> RpcServer:
    return RpcServer({Calculator: CalculatorImpl(), Store: StoreImpl()}, enable_describe=True)


def _request(method: str, columns: dict[str, list[object]] | None, protocol: str | None) -> bytes:
    batch = pa.RecordBatch.from_pydict(columns) if columns else ONE_EMPTY_ROW
    metadata = {k.METHOD_KEY: method.encode(), k.REQUEST_VERSION_KEY: b"1"}
    if protocol is not None:
        metadata[k.PROTOCOL_KEY] = protocol.encode()
    return stream_body(batch, metadata)


def _serve(server: RpcServer, *requests: bytes) -> list[tuple[pa.RecordBatch, dict[bytes, bytes]]]:
    channel = RecordingChannel(b"".join(requests))
    server.serve(channel)  # type: ignore[arg-type]  # a duck-typed Channel
    return read_batches(bytes(channel.written))


def _error(metadata: dict[bytes, bytes]) -> tuple[str, str]:
    assert metadata[k.LOG_LEVEL_KEY] == b"EXCEPTION"
    return metadata.get(k.ERROR_KIND_KEY, b"").decode(), metadata[k.ERROR_CODE_KEY].decode()


def test_methods_with_one_name_in_two_protocols_are_routed_apart() -> None:
    replies = _serve(
        _server(),
        _request("name", None, "Calculator"),
        _request("name", None, "demo.Store.v1"),
        _request("name", None, None),  # first generation: the default (first) protocol
        _request("put", {"key": ["a"], "value": [1]}, "demo.Store.v1"),
    )
    assert [b.to_pydict()["result"] for b, _ in replies] == [
        ["calculator"],
        ["store"],
        ["calculator"],
        [1],
    ]


def test_routing_errors_have_distinct_kinds_and_codes() -> None:
    replies = _serve(
        _server(),
        _request("name", None, "demo.Nope.v1"),
        _request("put", {"key": ["a"], "value": [1]}, "Calculator"),
        _request("name", None, "bad name!"),
    )
    assert [_error(md) for _, md in replies] == [
        ("protocol_not_supported", "UNIMPLEMENTED"),
        ("method_not_implemented", "UNIMPLEMENTED"),
        ("protocol_not_supported", "UNIMPLEMENTED"),
    ]
    # A name outside the grammar never reaches the message.
    assert b"bad name!" not in replies[2][1][k.LOG_MESSAGE_KEY]


def test_application_protocols_may_not_claim_the_reserved_prefix_or_share_a_name() -> None:
    class Sneaky(Protocol):
        protocol_name: ClassVar[str] = "vgi_rpc.Reflection.v1"

        def list_protocols(self) -> str: ...

    with pytest.raises(ValueError, match="reserved"):
        RpcServer(Sneaky, object())

    class Twin(Protocol):
        protocol_name: ClassVar[str] = "Calculator"

        def add(self, a: float, b: float) -> float: ...

    with pytest.raises(ValueError, match="both named 'Calculator'"):
        RpcServer({Calculator: CalculatorImpl(), Twin: CalculatorImpl()})


def test_reflection_lists_every_protocol_in_registration_order_and_describes_each() -> None:
    from vgi_rpc.rpc._reflection import ProtocolDescription, ProtocolList

    replies = _serve(
        _server(),
        _request("list_protocols", None, "vgi_rpc.Reflection.v1"),
        _request("describe", {"protocol": ["demo.Store.v1"]}, "vgi_rpc.Reflection.v1"),
    )
    listed = ProtocolList.deserialize_from_bytes(replies[0][0].column(0)[0].as_py())
    assert [p.protocol for p in listed.protocols] == [
        "Calculator",
        "demo.Store.v1",
        "vgi_rpc.Reflection.v1",
    ]
    assert all(len(p.protocol_hash) == 64 and p.features == [] for p in listed.protocols)
    described = ProtocolDescription.deserialize_from_bytes(replies[1][0].column(0)[0].as_py())
    assert [m.name for m in described.methods] == ["count", "name", "put"]
    assert described.methods[0].stream_kind == "producer"
    put = described.methods[2]
    expected: list[pa.Field[pa.DataType]] = [
        pa.field("key", pa.utf8(), nullable=False),
        pa.field("value", pa.int64(), nullable=False),
    ]
    assert pa.ipc.read_schema(pa.py_buffer(put.params_schema_ipc)) == pa.schema(expected)
    assert (put.method_type, put.stream_kind, put.header_schema_ipc) == ("unary", "", b"")


def test_reflection_hash_matches_the_reference_value() -> None:
    assert protocol_hash_v1("vgi_rpc.Reflection.v1", rpc_methods(Reflection)) == (
        REFERENCE_REFLECTION_HASH
    )


def test_a_first_generation_default_may_be_a_protocol_that_is_not_routed() -> None:
    class CalculatorV1(Protocol):
        protocol_name: ClassVar[str] = "Calculator"

        def add(self, a: float, b: float) -> float: ...

    server = RpcServer(
        {Calculator: CalculatorImpl()}, default_protocol=(CalculatorV1, CalculatorImpl())
    )
    flat, routed = _serve(
        server, _request("name", None, None), _request("name", None, "Calculator")
    )
    assert _error(flat[1]) == ("method_not_implemented", "UNIMPLEMENTED")
    assert routed[0].to_pydict() == {"result": ["calculator"]}


@dataclass(frozen=True)
class Total(ArrowSerializableDataclass):
    total: int


class Counter(Protocol):
    protocol_name: ClassVar[str] = "demo.Counter.v1"

    def count(self, n: int, width: int) -> Stream[StreamState]: ...
    def counted(self, n: int) -> Stream[StreamState, Total]: ...
    def put(self, key: str, value: int) -> int: ...


_COUNT_FIELDS: list[pa.Field[pa.DataType]] = [pa.field("i", pa.int64()), pa.field("pad", pa.utf8())]
_COUNT_SCHEMA = pa.schema(_COUNT_FIELDS)


class CounterImpl(StoreImpl):
    def counted(self, n: int) -> Stream[Count, Total]:
        if n < 0:
            raise ValueError(f"cannot count to {n}")
        return Stream(output_schema=_COUNT_SCHEMA, state=Count(n, 1), header=Total(n))


class LegacyCounter(Protocol):
    """The same methods under a name the server does not host (a first-generation client)."""

    def count(self, n: int, width: int) -> Stream[StreamState]: ...
    def counted(self, n: int) -> Stream[StreamState, Total]: ...
    def put(self, key: str, value: int) -> int: ...


def _counter_server() -> RpcServer:
    return RpcServer({Counter: CounterImpl()})


def test_a_header_stream_that_fails_to_start_leaves_a_routed_connection_in_step() -> None:
    with serve_pipe(Counter, _counter_server()) as counter:
        with pytest.raises(RpcError, match="cannot count to -1") as failed:
            list(counter.counted(n=-1))
        assert failed.value.error_type == "ValueError"
        assert counter.put(key="a", value=1) == 1
        with counter.counted(n=2) as session:
            assert session.header == Total(2)
            assert [b.batch.column("i").to_pylist() for b in session] == [[1], [2]]


@pytest.mark.parametrize("first", ["producer", "header_producer"])
def test_a_stream_first_client_falls_back_to_the_first_generation(first: str) -> None:
    with serve_pipe(LegacyCounter, _counter_server()) as legacy:
        if first == "producer":
            rows = [b.batch.column("i").to_pylist() for b in legacy.count(n=2, width=1)]
        else:
            with legacy.counted(n=2) as session:
                assert session.header == Total(2)
                rows = [b.batch.column("i").to_pylist() for b in session]
        assert rows == [[1], [2]]
        assert connection_of(legacy).routing is None  # the fallback sticks
        assert legacy.put(key="a", value=1) == 1
        with pytest.raises(RpcError, match="cannot count to -3"):
            list(legacy.counted(n=-3))  # unrouted: no input stream is expected
        assert legacy.put(key="b", value=2) == 2


# -- HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    app = make_wsgi_app(_server(), signing_key=b"gen2", max_stream_response_bytes=1 << 20)
    with serve_wsgi(app) as base, httpx.Client(base_url=base + "/vgi") as c:
        yield c


def test_protocol_qualified_paths_route_to_their_protocol(client: httpx.Client) -> None:
    reply = client.post(
        "/demo.Store.v1/name", content=_request("name", None, "demo.Store.v1"), headers=ARROW
    )
    assert reply.status_code == 200
    assert read_batches(reply.content)[0][0].to_pydict() == {"result": ["store"]}
    assert reply.headers["VGI-Accept-Max-Response-Bytes-Support"] == "true"


def test_path_and_metadata_naming_different_protocols_is_400(client: httpx.Client) -> None:
    reply = client.post(
        "/Calculator/name", content=_request("name", None, "demo.Store.v1"), headers=ARROW
    )
    assert reply.status_code == 400
    assert _error(read_batches(reply.content)[0][1])[0] == "protocol_not_supported"


def test_unknown_protocol_and_percent_in_the_path_are_404(client: httpx.Client) -> None:
    unknown = client.post(
        "/demo.Nope.v1/name", content=_request("name", None, "demo.Nope.v1"), headers=ARROW
    )
    assert unknown.status_code == 404
    assert _error(read_batches(unknown.content)[0][1])[0] == "protocol_not_supported"
    percent = client.post(
        "/Calcul%61tor/name", content=_request("name", None, "Calculator"), headers=ARROW
    )
    assert percent.status_code == 404


@pytest.mark.parametrize("value", ["0", "65535", "0065536", "1,2", "abc", str(1 << 53)])
def test_a_malformed_accept_max_response_bytes_is_400(client: httpx.Client, value: str) -> None:
    reply = client.post(
        "/Calculator/name",
        content=_request("name", None, "Calculator"),
        headers={**ARROW, "VGI-Accept-Max-Response-Bytes": value},
    )
    assert reply.status_code == 400


def test_health_and_errors_carry_the_support_header(client: httpx.Client) -> None:
    for reply in (client.head("/health"), client.post("/nope", content=b"x", headers=ARROW)):
        assert reply.headers["VGI-Accept-Max-Response-Bytes-Support"] == "true"


def _data(body: bytes) -> list[object]:
    return [
        v
        for batch, _ in read_batches(body)
        if batch.num_rows
        for v in batch.column("i").to_pylist()
    ]


def test_second_generation_producers_run_lockstep_one_batch_per_response(
    client: httpx.Client,
) -> None:
    path = "/demo.Store.v1/count"
    init = client.post(
        path + "/init",
        content=_request("count", {"n": [3], "width": [1]}, "demo.Store.v1"),
        headers=ARROW,
    )
    assert init.status_code == 200
    seen = [_data(init.content)]
    found = tokens(init.content)
    while k.STREAM_STATE_KEY in found:
        tick = stream_body(pa.RecordBatch.from_pydict({}), found)
        reply = client.post(path + "/exchange", content=tick, headers=ARROW)
        assert reply.status_code == 200
        seen.append(_data(reply.content))
        more = tokens(reply.content)
        found = {**found, **more} if more else {}
    assert seen == [[1], [2], [3], []]


def test_the_flat_path_keeps_the_first_generation_behaviour(client: httpx.Client) -> None:
    # Without a protocol in the path the producer fills the response up to the server's cap.
    init = client.post(
        "/count/init",
        content=_request("count", {"n": [3], "width": [1]}, "demo.Store.v1"),
        headers=ARROW,
    )
    assert _data(init.content) == [1, 2, 3]


def test_a_produced_batch_over_the_callers_cap_is_response_too_large(
    client: httpx.Client,
) -> None:
    init = client.post(
        "/demo.Store.v1/count/init",
        content=_request("count", {"n": [1], "width": [100_000]}, "demo.Store.v1"),
        headers={**ARROW, "VGI-Accept-Max-Response-Bytes": "65536"},
    )
    assert init.status_code == 200
    (_, metadata), *_ = [item for item in read_batches(init.content) if item[1]]
    assert _error(metadata) == ("response_too_large", "RESOURCE_EXHAUSTED")
    assert len(init.content) < 65536


def test_vgi_rpc_describe_lists_every_hosted_protocol() -> None:
    import sys

    from tests.conftest import ROOT
    from vgi_rpc.cli import main

    out = io.StringIO()
    worker = f"{sys.executable} {ROOT}/conformance/worker.py --describe"
    assert main(["describe", "--cmd", worker, "--format", "table"], out=out) == 0
    hosted = [line for line in out.getvalue().splitlines() if line.startswith("hosted: ")]
    assert [line.split()[1] for line in hosted] == [
        "ConformanceService",
        "conformance.Secondary.v1",
        "vgi_rpc.Reflection.v1",
    ]
    assert hosted[2].endswith(f"({REFERENCE_REFLECTION_HASH[:16]})")
