"""The shortcuts on the small-call path send and read exactly what the general path does."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa
import pytest

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import StreamWriter
from vgi_rpc._ipc_reader import memory_source, open_stream_reader
from vgi_rpc.rpc import RpcConnection
from vgi_rpc.wire import new_request_id


class Pinger(Protocol):
    def ping(self) -> None: ...


class _Capture:
    """A channel that keeps what is written and has nothing to read."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self._reader = memory_source(b"")

    @property
    def reader(self) -> io.BufferedReader:
        return self._reader

    def write_chunks(self, chunks: Sequence[Any]) -> None:
        for chunk in chunks:
            self.sent += memoryview(chunk).cast("B")

    def peer_failure(self, detail: str) -> TransportError:
        return TransportError(detail)

    def close(self) -> None:
        pass


def _request_bytes(connection: RpcConnection) -> bytes:
    channel = connection.channel
    assert isinstance(channel, _Capture)
    channel.sent.clear()
    with contextlib.suppress(TransportError):  # no answer comes: only the request matters
        connection.call_unary(connection.methods["ping"], {})
    return bytes(channel.sent)


def test_a_parameterless_request_is_the_bytes_the_general_writer_sends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = RpcConnection(Pinger, _Capture())
    cached = _request_bytes(connection)
    assert _request_bytes(connection) == cached
    with caplog.at_level(logging.DEBUG, logger="vgi_rpc.wire.request"):  # takes the general path
        general = _request_bytes(connection)
    assert general == cached
    reader = open_stream_reader(memory_source(cached))
    assert reader is not None
    item = reader.read()
    assert item is not None
    batch, metadata = item
    assert batch.num_rows == 1
    assert batch.num_columns == 0
    assert metadata is not None
    assert metadata[b"vgi_rpc.method"] == b"ping"
    assert reader.read() is None


def test_body_less_batches_keep_their_own_metadata() -> None:
    schema = pa.schema([("x", pa.int64())])
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    for _ in range(2):  # the second round decodes from the cache
        sink = _Capture()
        writer = StreamWriter(sink, schema)
        for n in (b"0", b"1", b"0"):
            writer.write(empty, {b"n": n})
        writer.close()
        reader = open_stream_reader(memory_source(bytes(sink.sent)))
        assert reader is not None
        got = []
        while (item := reader.read()) is not None:
            assert item[0].num_rows == 0
            assert item[0].schema.equals(schema)
            got.append(item[1])
        assert got == [{b"n": b"0"}, {b"n": b"1"}, {b"n": b"0"}]


def test_request_ids_are_distinct_and_a_forked_child_draws_its_own() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only reports its next id
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child = os.read(read_end, 16).decode()
    os.close(read_end)
    # Without reseeding the child would continue the parent's sequence.
    assert child != new_request_id()
