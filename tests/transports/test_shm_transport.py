"""Large batches through a client-owned shared-memory segment, our client and our worker.

Requests and stream inputs of 128 KiB or more go into the segment as pointer
batches, large results and stream outputs come back the same way, received
batches reference the segment without a copy, and nothing is left in /dev/shm.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests._services import BULK, SHM_SOURCE, Bulk, BulkImpl
from tests._shm_leaks import left_behind as shm_left_behind
from tests._shm_leaks import snapshot as shm_snapshot
from tests.conftest import WORKER, worker_env
from vgi_rpc import (
    RpcConnection,
    RpcServer,
    ShmPipeTransport,
    StderrMode,
    connect,
    make_pipe_pair,
    serve_pipe,
    unix_connect,
    unix_server,
)
from vgi_rpc._errors import MethodNotImplementedError
from vgi_rpc._ipc_reader import open_stream_reader
from vgi_rpc.rpc import connection_of
from vgi_rpc.rpc._request import ONE_EMPTY_ROW
from vgi_rpc.rpc._shm_client import ClientShm
from vgi_rpc.rpc._step import Reply
from vgi_rpc.shm import HEADER_SIZE, ShmSegment
from vgi_rpc.transports._shm import end_shm, start_shm

MiB = 1 << 20
BULK_WORKER = [*WORKER, "bulk"]


@pytest.fixture(autouse=True)
def _no_segment_left() -> Iterator[None]:
    before = shm_snapshot()
    yield
    assert shm_left_behind(before) == []


def _bulk(shm_size: int | None) -> Any:
    return connect(Bulk, BULK_WORKER, env=worker_env(), stderr=StderrMode.PIPE, shm_size=shm_size)


def _batch(nbytes: int, seed: int = 0) -> pa.RecordBatch:
    values = np.random.default_rng(seed).random(nbytes // 8)
    return pa.RecordBatch.from_arrays([pa.array(values)], schema=BULK)


def _shm(proxy: object) -> ClientShm:
    shm = connection_of(proxy).shm
    assert shm is not None  # the worker agreed over __transport_options__
    return shm


def _inside(batch: pa.RecordBatch, segment: ShmSegment) -> bool:
    base = segment.read_buffer(HEADER_SIZE, 1).address - HEADER_SIZE
    data = batch.column(0).buffers()[1]
    assert data is not None
    address = data.address
    return base <= address < base + segment.size


@pytest.mark.parametrize("size", [MiB, 64 * MiB], ids=["1MiB", "64MiB"])
def test_unary_payload_goes_both_ways_through_the_segment(size: int) -> None:
    data = os.urandom(size)
    with _bulk(256 * MiB) as bulk:
        shm = connection_of(bulk).shm
        assert shm is not None  # the worker agreed over __transport_options__
        assert bulk.echo_big(data=data) == data
        # the request was freed by the worker; the result, written by the worker,
        # stays allocated until our next request
        (placed,) = shm.segment.allocations()
        assert placed[1] > size
        assert bulk.pid() > 0
        assert shm.segment.allocations() == []


@pytest.mark.parametrize("size", [MiB, 64 * MiB], ids=["1MiB", "64MiB"])
def test_exchange_batches_go_both_ways_through_the_segment_without_copies(size: int) -> None:
    with _bulk(256 * MiB) as bulk, bulk.echo_batches() as session:
        segment = _shm(bulk).segment
        for seed in range(3):
            batch = _batch(size, seed)
            out = session.exchange(batch)
            assert out.batch.equals(batch)
            metadata = out.metadata_dict() or {}
            assert metadata[b"input_shm_source"] == segment.name.encode()  # input by pointer
            assert metadata[SHM_SOURCE] == segment.name.encode()  # output by pointer
            assert _inside(out.batch, segment)  # read in place, not copied out


def test_a_batch_kept_by_the_caller_keeps_its_allocation() -> None:
    with _bulk(16 * MiB) as bulk, bulk.echo_batches() as session:
        shm = _shm(bulk)
        first = _batch(MiB, 1)
        kept = session.exchange(first)
        for seed in range(2, 40):  # far more than fits at once: dropped outputs are freed
            out = session.exchange(_batch(MiB, seed))
            assert SHM_SOURCE in (out.metadata_dict() or {})
            del out
        assert kept.batch.equals(first)  # never overwritten while referenced
        assert shm.held == 2  # the kept batch and the last one
        del kept
    # the connection collected both at close (the segment itself is gone now)


def test_producer_outputs_come_through_the_segment() -> None:
    with _bulk(64 * MiB) as bulk:
        segment = _shm(bulk).segment
        rows = 0
        for out in bulk.produce(count=5, rows=MiB // 8):
            assert (out.metadata_dict() or {})[SHM_SOURCE] == segment.name.encode()
            rows += out.batch.num_rows
        assert rows == 5 * MiB // 8


def test_batches_that_do_not_fit_or_are_small_go_inline() -> None:
    with _bulk(MiB) as bulk, bulk.echo_batches() as session:
        big = _batch(2 * MiB)
        out = session.exchange(big)
        assert out.batch.equals(big)
        assert (out.metadata_dict() or {}) == {b"input_shm_source": b""}
        small = _batch(64 << 10)
        out = session.exchange(small)
        assert out.batch.equals(small)
        assert SHM_SOURCE not in (out.metadata_dict() or {})


def test_serve_pipe_shares_a_segment_with_its_server_thread() -> None:
    batch = _batch(4 * MiB)
    with serve_pipe(Bulk, BulkImpl(), shm_size=32 * MiB) as bulk:
        segment = _shm(bulk).segment
        with bulk.echo_batches() as session:
            out = session.exchange(batch)
            assert out.batch.equals(batch)
            assert (out.metadata_dict() or {})[SHM_SOURCE] == segment.name.encode()
        assert bulk.echo_big(data=b"x" * (3 * MiB)) == b"x" * (3 * MiB)


def test_shm_pipe_transport_on_both_ends_of_a_pipe_pair() -> None:
    batch = _batch(2 * MiB)
    with ShmSegment.create(size=32 * MiB) as shm:
        client_pipe, server_pipe = make_pipe_pair()
        server_transport = ShmPipeTransport(server_pipe, shm)
        thread = threading.Thread(
            target=RpcServer(Bulk, BulkImpl()).serve, args=(server_transport,), daemon=True
        )
        thread.start()
        connection = RpcConnection(Bulk, ShmPipeTransport(client_pipe, shm))
        assert connection.shm is not None
        assert connection.shm.segment is shm
        session = connection.open_stream(connection.methods["echo_batches"], {})
        out = session.exchange(batch)
        assert out.batch.equals(batch)
        assert _inside(out.batch, shm)
        session.close()
        del out
        connection.close()
        thread.join(timeout=10)
        server_transport.close()
        assert shm.allocations() == []


class _NoShmServer(RpcServer):
    def _answer_transport_options(self, request: Any, request_id: str) -> Reply:
        return self.refusal(MethodNotImplementedError("no such method"), request_id)


def test_a_server_that_does_not_confirm_shm_gets_inline_batches() -> None:
    client_pipe, server_pipe = make_pipe_pair()
    thread = threading.Thread(
        target=_NoShmServer(Bulk, BulkImpl()).serve, args=(server_pipe,), daemon=True
    )
    thread.start()
    connection = RpcConnection(Bulk, client_pipe)
    assert start_shm(connection, 8 * MiB) is None
    assert connection.shm is None
    assert connection.call_unary(connection.methods["echo_big"], {"data": b"y" * MiB}) == b"y" * MiB
    connection.close()
    thread.join(timeout=10)
    server_pipe.close()


def test_every_request_names_the_segment() -> None:
    client_pipe, server_pipe = make_pipe_pair()
    connection = RpcConnection(Bulk, client_pipe)
    segment = ShmSegment.create(4 * MiB)
    try:
        connection.use_shm(ClientShm(segment))
        for _ in range(2):
            connection.send_request("pid", ONE_EMPTY_ROW)
            reader = open_stream_reader(server_pipe.reader)
            assert reader is not None
            item = reader.read()
            assert item is not None
            assert reader.read() is None
            metadata = item[1] or {}
            assert metadata[b"vgi_rpc.shm_segment_name"] == segment.name.encode()
            assert metadata[b"vgi_rpc.shm_segment_size"] == str(segment.size).encode()
    finally:
        connection.close()
        server_pipe.close()
        end_shm(segment)


@pytest.mark.parametrize("size", [HEADER_SIZE, -5, 1.5, True, False])
def test_bad_segment_sizes_are_refused_before_anything_starts(size: Any) -> None:
    # 0 is not among them: it turns shared memory off (tests/transports/test_auto_shm.py)
    with pytest.raises(ValueError, match="shm_size"):
        connect(Bulk, ["/nonexistent/worker"], shm_size=size)
    with pytest.raises(ValueError, match="shm_size"):
        serve_pipe(Bulk, BulkImpl(), shm_size=size)


def test_an_echoed_input_is_sent_back_in_its_own_allocation() -> None:
    batch = _batch(4 * MiB)
    with _bulk(32 * MiB) as bulk, bulk.echo_batches() as session:
        segment = _shm(bulk).segment
        out = session.exchange(batch)
        assert out.batch.equals(batch)
        # our input went to the first free offset; the worker pointed its output at it
        # instead of copying it next to it, and left freeing it to us
        ((offset, _),) = segment.allocations()
        assert offset == HEADER_SIZE
        assert _inside(out.batch, segment)
        del out
        session.exchange(_batch(1024))  # small: inline; frees the forwarded allocation first
        assert segment.allocations() == []


def test_a_unix_socket_connection_can_share_a_segment(tmp_path: Any) -> None:
    server = unix_server(RpcServer(Bulk, BulkImpl()), str(tmp_path / "s.sock"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with unix_connect(Bulk, server.address, shm_size=64 * MiB) as bulk:
            segment = _shm(bulk).segment
            with bulk.echo_batches() as session:
                batch = _batch(4 * MiB)
                out = session.exchange(batch)
                assert out.batch.equals(batch)
                metadata = out.metadata_dict() or {}
                assert metadata[b"input_shm_source"] == segment.name.encode()
                assert metadata[SHM_SOURCE] == segment.name.encode()
                assert _inside(out.batch, segment)
            data = os.urandom(2 * MiB)
            assert bulk.echo_big(data=data) == data
    finally:
        server.close()
        thread.join(timeout=10)
