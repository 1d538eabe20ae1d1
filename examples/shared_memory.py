"""Large Arrow batches through shared memory: automatic, a subprocess worker, a pool, a pipe pair.

Run it as ``python examples/shared_memory.py``; it starts itself with
``--worker`` as the subprocess server.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    OutputCollector,
    RpcConnection,
    RpcServer,
    ShmPipeTransport,
    Stream,
    StreamState,
    WorkerPool,
    connect,
    make_pipe_pair,
    run_server,
)
from vgi_rpc.shm import ShmSegment

SCHEMA = pa.schema([("x", pa.float64())])
WORKER = [sys.executable, os.path.abspath(__file__), "--worker"]


class Frames(Protocol):
    """Doubles every value of every batch it is sent."""

    def double(self) -> Stream[StreamState]: ...


@dataclass
class Double(ExchangeState):
    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        doubled = pc.multiply(input.batch.column("x"), 2.0)
        out.emit(pa.RecordBatch.from_arrays([doubled], schema=SCHEMA))


class FramesImpl:
    def double(self) -> Stream[Double]:
        return Stream(SCHEMA, Double(), input_schema=SCHEMA)


def frame(rows: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([1.5] * rows, pa.float64())], schema=SCHEMA)


def came_through_shm(out: AnnotatedBatch) -> bool:
    # a batch read from a segment names it in vgi_rpc.shm_source
    return b"vgi_rpc.shm_source" in (out.metadata_dict() or {})


def automatic() -> None:
    # no option: the first large batch goes inline and makes the connection set up a
    # segment (if the worker can map it); the next request names it
    with connect(Frames, WORKER) as frames:
        with frames.double() as session:
            first = came_through_shm(session.exchange(frame(1 << 20)))
        with frames.double() as session:
            after = [came_through_shm(session.exchange(frame(1 << 20))) for _ in range(3)]
        print(f"automatic: first batch via shm: {first}, next stream via shm: {all(after)}")


def subprocess_worker() -> None:
    # a segment made up front: 8 MiB batches both ways from the first one
    with connect(Frames, WORKER, shm_size=64 << 20) as frames, frames.double() as session:
        out = session.exchange(frame(1 << 20))
        print(f"subprocess: doubled {out.batch.num_rows} rows, via shm: {came_through_shm(out)}")
        print(f"first value: {out.batch.column('x')[0].as_py()}")


def pool() -> None:
    names = []
    with WorkerPool(max_idle=1, shm_size=32 << 20) as workers:
        for _ in range(2):  # each borrow gets its own segment, removed when it ends
            with workers.connect(Frames, WORKER) as frames, frames.double() as session:
                out = session.exchange(frame(1 << 18))
                names.append((out.metadata_dict() or {})[b"vgi_rpc.shm_source"].decode())
        gone = not any(os.path.exists(f"/dev/shm/{n}") for n in names)
        print(f"pool: {workers.metrics.spawns} worker for 2 borrows, segments removed: {gone}")


def pipe_pair() -> None:
    # both ends are handed the same segment; the caller creates and removes it
    with ShmSegment.create(size=32 << 20) as shm:
        client_pipe, server_pipe = make_pipe_pair()
        server = threading.Thread(
            target=RpcServer(Frames, FramesImpl()).serve,
            args=(ShmPipeTransport(server_pipe, shm),),
        )
        server.start()
        connection = RpcConnection(Frames, ShmPipeTransport(client_pipe, shm))
        with connection.open_stream(connection.methods["double"], {}) as session:
            out = session.exchange(frame(1 << 18))
            print(f"pipe pair: via shm: {came_through_shm(out)}")
            del out
        connection.close()
        server.join()
        server_pipe.close()


if __name__ == "__main__":
    if "--worker" in sys.argv:
        run_server(Frames, FramesImpl())
    else:
        automatic()
        subprocess_worker()
        pool()
        pipe_pair()
