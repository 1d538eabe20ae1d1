"""Capture a corpus of real requests by driving the ConformanceService with our own client.

Pipe: every conformance scenario (except the multi-GiB payloads) runs over an
in-process pipe whose client side records the bytes it sends; each scenario
becomes one item (a byte stream of one or more requests: unary calls, stream
inits, exchange turns, ticks, cancels). Explicit unary calls, ``__describe__``
and shared-memory pointer requests (static and negotiated segments) are added.

HTTP: the same scenarios over ``http_connect`` against a live worker, recording
every POST (route and body, tokens included).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import shared_memory
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pyarrow as pa  # noqa: E402
from fuzz_ipc import decode_streams, encode_streams, parse_frames  # noqa: E402
from fuzz_mutate import (  # noqa: E402
    CALL_STATE_KEY,
    METHOD_KEY,
    REQUEST_VERSION_KEY,
    SIZE_PARAM_METHODS,
    STREAM_STATE_KEY,
    Item,
)

from conformance.impl import ConformanceImpl  # noqa: E402
from conformance.protocol import ConformanceService  # noqa: E402
from conformance.scenarios import Ctx, Scenario, all_scenarios  # noqa: E402
from conformance.types import AllTypes, BoundingBox, Point  # noqa: E402
from vgi_rpc import Message, RpcServer  # noqa: E402
from vgi_rpc._ipc import Chunk  # noqa: E402
from vgi_rpc.rpc import ChannelCapabilities, RpcConnection, make_proxy  # noqa: E402
from vgi_rpc.rpc._channel import Channel  # noqa: E402
from vgi_rpc.rpc._shm_client import ClientShm  # noqa: E402
from vgi_rpc.shm import ShmSegment  # noqa: E402
from vgi_rpc.transports._pipe import make_pipe_pair  # noqa: E402
from vgi_rpc.transports._shm import ShmPipeTransport  # noqa: E402

SEGMENT_SIZE = 4 << 20
SKIP_SCENARIOS = ("large_payload.",)


class Recorder:
    """A client channel that records every byte it sends (and, optionally, the segment)."""

    def __init__(self, inner: Channel, segment: ShmSegment | None = None) -> None:
        self.inner = inner
        self.sent = bytearray()
        self.segment = segment
        self.snapshot = b""

    @property
    def reader(self) -> Any:
        """The wrapped reader."""
        return self.inner.reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Record, snapshot the segment, then send."""
        for chunk in chunks:
            self.sent += memoryview(chunk).cast("B")
        if self.segment is not None and self.segment.allocations():
            end = max(o + n for o, n in self.segment.allocations())
            self.snapshot = bytes(self.segment._buf[:end])  # header and data, as mapped
        self.inner.write_chunks(chunks)

    def peer_failure(self, detail: str) -> Any:
        """The wrapped channel's error."""
        return self.inner.peer_failure(detail)

    def close(self) -> None:
        """Close the wrapped channel."""
        self.inner.close()


class StaticRecorder(Recorder):
    """A recorder that also hands the client the segment both ends share."""

    def capabilities(self) -> ChannelCapabilities:
        """The static segment."""
        return ChannelCapabilities(shared_segment=self.segment)


def _server() -> RpcServer:
    return RpcServer(ConformanceService, ConformanceImpl(), enable_describe=True)


@contextlib.contextmanager
def recording_pipe(
    segment: ShmSegment | None = None, named: bool = False
) -> Iterator[tuple[Any, Recorder, list[Message]]]:
    """A proxy over an in-process pipe whose client side records what it sends."""
    client_fd, server_fd = make_pipe_pair()
    server_side: Channel = server_fd
    client_side: Channel = client_fd
    if segment is not None and not named:
        server_side = ShmPipeTransport(server_fd, segment)
        client_side = ShmPipeTransport(client_fd, segment)
    recorder = (
        StaticRecorder(client_side, segment)
        if segment is not None and not named
        else Recorder(client_side, segment)
    )
    logs: list[Message] = []
    server = _server()

    def run() -> None:
        try:
            server.serve(server_side)
        finally:
            server_side.close()

    thread = threading.Thread(target=run, name="fuzz-corpus-server", daemon=True)
    thread.start()
    connection = RpcConnection(ConformanceService, recorder, on_log=logs.append)
    if segment is not None and named:
        connection.use_shm(ClientShm(segment, min_bytes=1024))
    try:
        yield make_proxy(ConformanceService, connection), recorder, logs
    finally:
        connection.close()
        thread.join(timeout=10)


def _scenarios() -> list[Scenario]:
    return [s for s in all_scenarios() if not s.full_name.startswith(SKIP_SCENARIOS)]


def _run_quietly(fn: Callable[[], object]) -> None:
    # A scenario that fails still sent real requests; the corpus only needs the bytes.
    with contextlib.suppress(Exception):
        fn()


def _methods_of(data: bytes) -> set[str]:
    try:
        streams = decode_streams(data)
    except (pa.ArrowException, ValueError):
        return set()
    return {
        meta[METHOD_KEY].decode(errors="replace")
        for _, batches in streams
        for _, meta in batches
        if METHOD_KEY in meta
    }


def make_item(kind: str, name: str, data: bytes, shm: bytes = b"", path: str = "") -> Item:
    """An item with its decoded form and frame index."""
    item = Item(kind, name, data, shm=shm, path=path)
    with contextlib.suppress(pa.ArrowException, ValueError):
        item.streams = decode_streams(data)
    item.frames = parse_frames(data)
    item.nested = any(
        isinstance(value, bytes) and value[:4] == b"\xff\xff\xff\xff"
        for _, batches in item.streams or []
        for batch, _ in batches
        for column in batch.columns
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)
        for value in column.to_pylist()
    )
    return item


def _explicit_calls(proxy: Any) -> list[tuple[str, Callable[[], object]]]:
    p = proxy
    return [
        ("echo_string", lambda: p.echo_string(value="héllo wörld")),
        ("echo_bytes", lambda: p.echo_bytes(data=b"\x00\x01binary\xff" * 8)),
        ("echo_list", lambda: p.echo_list(values=["a", "bb", "", "dddd"])),
        ("echo_dict", lambda: p.echo_dict(mapping={"one": 1, "two": 2, "": -1})),
        ("echo_nested_list", lambda: p.echo_nested_list(matrix=[[1, 2], [], [3]])),
        ("inspect_point", lambda: p.inspect_point(point=Point(x=1.5, y=-2.0))),
        ("echo_point", lambda: p.echo_point(point=Point(x=0.0, y=3.0))),
        (
            "echo_bounding_box",
            lambda: p.echo_bounding_box(
                box=BoundingBox(
                    top_left=Point(x=0.0, y=1.0), bottom_right=Point(x=2.0, y=0.0), label="box"
                )
            ),
        ),
        (
            "echo_all_types",
            lambda: p.echo_all_types(
                data=AllTypes(
                    str_field="s",
                    bytes_field=b"b",
                    int_field=7,
                    float_field=1.25,
                    bool_field=True,
                    list_of_int=[1, 2, 3],
                    list_of_str=["x", "y"],
                    dict_field={"k": 1},
                    **_all_types_rest(),
                )
            ),
        ),
        ("concatenate", lambda: p.concatenate(prefix="pre", suffix="suf", separator="+")),
        ("with_defaults", lambda: p.with_defaults(required=3)),
        ("echo_optional_string", lambda: p.echo_optional_string(value=None)),
        ("echo_large_string", lambda: p.echo_large_string(value="large" * 20)),
        ("echo_fixed_binary", lambda: p.echo_fixed_binary(value=b"0123456789abcdef")),
        ("echo_dict_encoded_string", lambda: p.echo_dict_encoded_string(value="dict")),
        ("raise_value_error", lambda: p.raise_value_error(message="boom")),
    ]


def _all_types_rest() -> dict[str, Any]:
    """The remaining AllTypes fields, filled with their types' zero values."""
    import dataclasses
    import typing

    given = {"str_field", "bytes_field", "int_field", "float_field", "bool_field"}
    given |= {"list_of_int", "list_of_str", "dict_field"}
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(AllTypes)
    for f in dataclasses.fields(AllTypes):
        if f.name in given:
            continue
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        out[f.name] = _zero(hints[f.name])
    return out


def _zero(tp: Any) -> Any:
    import enum
    import typing

    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return None
    if origin is list:
        return []
    if origin is dict:
        return {}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp))
    for base, value in ((bool, False), (int, 0), (float, 0.0), (str, ""), (bytes, b"")):
        if isinstance(tp, type) and issubclass(tp, base):
            return value
    return None


def _describe_item() -> Item:
    one_row = _one_empty_row()
    meta = {METHOD_KEY: b"__describe__", REQUEST_VERSION_KEY: b"1"}
    return make_item("unary", "__describe__", encode_streams([(one_row.schema, [(one_row, meta)])]))


def _one_empty_row() -> pa.RecordBatch:
    from vgi_rpc.rpc._request import ONE_EMPTY_ROW

    return ONE_EMPTY_ROW


def pipe_corpus(segment: ShmSegment) -> list[Item]:
    """Every kind of pipe request; shared-memory items use ``segment``."""
    items: list[Item] = []
    for scenario in _scenarios():
        with recording_pipe() as (proxy, recorder, logs):
            ctx = Ctx(proxy=proxy, transport="pipe", logs=logs)
            _run_quietly(lambda s=scenario, c=ctx: s.fn(c))  # type: ignore[misc]
        if _methods_of(bytes(recorder.sent)) & SIZE_PARAM_METHODS:
            continue
        items.append(make_item("session", scenario.full_name, bytes(recorder.sent)))
    with recording_pipe() as (proxy, _, _):
        calls = [name for name, _ in _explicit_calls(proxy)]
    for index, name in enumerate(calls):
        with recording_pipe() as (proxy, recorder, _):
            _run_quietly(_explicit_calls(proxy)[index][1])
        if recorder.sent:
            items.append(make_item("unary", name, bytes(recorder.sent)))
    items.append(_describe_item())
    items += shm_items(segment)
    return items


def _shm_calls(proxy: Any) -> list[tuple[str, Callable[[], object]]]:
    big = bytes(range(256)) * 1024  # 256 KiB: above the inline threshold

    def exchange() -> None:
        with proxy.exchange_scale(factor=2.0) as session:
            session.exchange(
                pa.RecordBatch.from_pydict({"value": [float(i) for i in range(40000)]})
            )

    return [
        ("shm echo_bytes", lambda: proxy.echo_bytes(data=big)),
        ("shm echo_string", lambda: proxy.echo_string(value="x" * 300_000)),
        ("shm echo_list", lambda: proxy.echo_list(values=["abc"] * 50_000)),
        ("shm exchange_scale", exchange),
    ]


def shm_items(segment: ShmSegment) -> list[Item]:
    """Requests whose batch travels in ``segment`` as a pointer batch (static and named)."""
    items: list[Item] = []
    for named in (False, True):
        for index in range(4):
            _reset_segment(segment)
            with recording_pipe(segment, named=named) as (proxy, recorder, _):
                name, call = _shm_calls(proxy)[index]
                _run_quietly(call)
            kind = "shm-named" if named else "shm-static"
            if recorder.snapshot:
                items.append(make_item(kind, name, bytes(recorder.sent), shm=recorder.snapshot))
    _reset_segment(segment)
    return items


def _reset_segment(segment: ShmSegment) -> None:
    for offset, _ in segment.allocations():
        segment.free(offset)


# ---------------------------------------------------------------- HTTP


def client_protocol(base_url: str) -> Any:
    """The ConformanceService generation the HTTP worker at ``base_url`` answers our client in.

    A worker that also hosts 2.0.0 routes a client naming its protocol there, so a
    1.0.0 client may be refused; then the corpus and the soak use 2.0.0.
    """
    import conformance.protocol as protocols
    from vgi_rpc import http_connect

    candidates = [ConformanceService, getattr(protocols, "ConformanceServiceV2", None)]
    for protocol in candidates:
        if protocol is None:
            continue
        with http_connect(protocol, base_url) as proxy:
            try:
                if proxy.echo_string(value="probe") == "probe":
                    return protocol
            except Exception as exc:  # refused: try the next generation
                logging.getLogger(__name__).debug("%s refused: %s", protocol.__name__, exc)
    return ConformanceService


def http_corpus(base_url: str) -> list[Item]:
    """Every POST our HTTP client makes for the scenarios, with its route."""
    from vgi_rpc import http_connect
    from vgi_rpc.rpc import connection_of

    items: list[Item] = []
    protocol = client_protocol(base_url)

    def record(name: str, fn: Callable[[Any, list[Message]], object]) -> None:
        logs: list[Message] = []
        posts: list[tuple[str, bytes, int]] = []
        with http_connect(protocol, base_url, on_log=logs.append) as proxy:
            transport = connection_of(proxy).transport  # type: ignore[attr-defined]  # HttpConnection
            original = transport.post

            def post(path: str, chunks: Sequence[Any]) -> bytes:
                answer: bytes = original(path, chunks)
                posts.append((path, b"".join(chunks), len(answer)))
                return answer

            transport.post = post
            _run_quietly(lambda: fn(proxy, logs))
        for i, (path, body, size) in enumerate(posts):
            method = path.rsplit("/", 2)
            if SIZE_PARAM_METHODS & set(method):
                continue
            item = make_item("http", f"{name}#{i}", body, path=path)
            item.base_reply = size
            items.append(item)

    def run_scenario(scenario: Scenario) -> Callable[[Any, list[Message]], object]:
        return lambda p, logs: scenario.fn(Ctx(p, "http", logs))

    def run_call(index: int) -> Callable[[Any, list[Message]], object]:
        return lambda p, logs: _explicit_calls(p)[index][1]()

    for scenario in _scenarios():
        record(scenario.full_name, run_scenario(scenario))
    with recording_pipe() as (proxy, _, _):
        names = [name for name, _ in _explicit_calls(proxy)]
    for index, name in enumerate(names):
        record(name, run_call(index))
    describe = _describe_item()
    describe.kind, describe.path = "http", "/vgi/__describe__"
    items.append(describe)
    return items


def tokens_of(items: Sequence[Item]) -> list[bytes]:
    """Every stream token value found in the items' metadata."""
    found: list[bytes] = []
    for item in items:
        for _, batches in item.streams or []:
            for _, meta in batches:
                for key in (STREAM_STATE_KEY, CALL_STATE_KEY):
                    if key in meta and meta[key] not in found:
                        found.append(meta[key])
    return found


# ---------------------------------------------------------------- shared-memory names


@contextlib.contextmanager
def shm_fixture() -> Iterator[tuple[ShmSegment, list[str]]]:
    """The target's segment, plus decoy objects in /dev/shm that no client created.

    Yields (segment, names the mutators may point requests at). Everything is unlinked
    on exit. Only objects created here are named, so no other process's segment is touched.
    """
    import struct

    segment = ShmSegment.create(SEGMENT_SIZE)
    decoys: list[shared_memory.SharedMemory] = []
    try:
        for size, fill in ((16, b"VGIS"), (4096, None), (65536 + 4096, b"hdr"), (65536, b"hdr")):
            shm = shared_memory.SharedMemory(create=True, size=size)
            decoys.append(shm)
            buf = shm.buf
            assert buf is not None
            if fill == b"hdr":  # a valid-looking header claiming far more data than mapped
                struct.pack_into("<4sIQII", buf, 0, b"VGIS", 1, 1 << 40, 0, 0)
            elif fill is not None:
                buf[: len(fill)] = fill
            else:
                buf[:] = os.urandom(size)
        names = [segment.name, segment.name, *(d.name for d in decoys)]
        names += [
            "vgi_fuzz_missing_segment",
            "",
            "/",
            "../../../etc/passwd",
            "a" * 300,
            "/" + segment.name,
        ]
        yield segment, names
    finally:
        for d in decoys:
            with contextlib.suppress(OSError):
                d.close()
            with contextlib.suppress(OSError):
                d.unlink()
        with contextlib.suppress(OSError):
            segment.close()
        with contextlib.suppress(OSError):
            segment.unlink()


logging.getLogger("vgi_rpc").setLevel(logging.CRITICAL)

__all__ = ["http_corpus", "make_item", "pipe_corpus", "shm_fixture", "tokens_of"]
