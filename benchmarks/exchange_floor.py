"""How close is an exchange round trip to what Python and pyarrow allow? (issue 14, item 5)

Three loops over an in-process pipe pair, server on a thread, the same
one-row float64 batch as the ``exchange`` row of ``streams.py``, in one run:

1. ``bare pipe``: 8 bytes there and back; the threads and the pipe alone;
2. ``pyarrow floor``: no framework, just what any Arrow IPC echo must do per
   side: ``serialize`` and write; read the prefix, header and body, then
   ``read_message``, ``read_record_batch`` and ``validate(full=True)``;
3. ``vgi_rpc exchange``: ``serve_pipe`` and an exchange stream echoing the
   batch (``benchmarks/_streams_service.py``).

Prints round trips per second, medians of ``--repeats`` runs. Run it pinned::

    taskset -c 0 .venv/bin/python benchmarks/exchange_floor.py [--turns N] [--repeats N]

It reports; it never fails on speed.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _streams_service import EXCHANGE_SCHEMA, StreamBench, StreamBenchImpl

from vgi_rpc import AnnotatedBatch, serve_pipe

_PREFIX = struct.Struct("<4si")
BATCH = pa.RecordBatch.from_pydict({"x": [1.5]}, schema=EXCHANGE_SCHEMA)
BATCH_BODY = BATCH.serialize().size - len(pa.ipc.read_message(BATCH.serialize()).metadata) - 8


def _reader(fd: int) -> io.BufferedReader:
    return io.BufferedReader(io.FileIO(fd, "rb", closefd=False), 65536)


def _read_batch(source: io.BufferedReader) -> pa.RecordBatch:
    """One encapsulated record batch, read and checked as an IPC reader must."""
    prefix = source.read(8)
    _, length = _PREFIX.unpack(prefix)
    header = source.read(length)
    body = source.read(BATCH_BODY)
    message = pa.ipc.read_message(pa.py_buffer(prefix + header + body))
    batch = pa.ipc.read_record_batch(message, EXCHANGE_SCHEMA)
    batch.validate(full=True)
    return batch


def _echo_loop(turns: int, client_turn: Callable[[int, io.BufferedReader], None],
               server_turn: Callable[[io.BufferedReader, int], None]) -> float:  # fmt: skip
    """Seconds for ``turns`` round trips between this thread and a server thread."""
    to_server, from_client = os.pipe()
    from_server, to_client = os.pipe()

    def serve() -> None:
        source = _reader(to_server)
        for _ in range(turns):
            server_turn(source, to_client)

    thread = threading.Thread(target=serve)
    thread.start()
    source = _reader(from_server)
    start = time.perf_counter()
    for _ in range(turns):
        client_turn(from_client, source)
    seconds = time.perf_counter() - start
    thread.join()
    for fd in (to_server, from_client, from_server, to_client):
        os.close(fd)
    return seconds


def bare_pipe(turns: int) -> float:
    def client(out: int, source: io.BufferedReader) -> None:
        os.write(out, b"12345678")
        source.read(8)

    def server(source: io.BufferedReader, out: int) -> None:
        os.write(out, source.read(8))

    return _echo_loop(turns, client, server)


def pyarrow_floor(turns: int) -> float:
    def client(out: int, source: io.BufferedReader) -> None:
        os.write(out, BATCH.serialize())
        _read_batch(source)

    def server(source: io.BufferedReader, out: int) -> None:
        os.write(out, _read_batch(source).serialize())

    return _echo_loop(turns, client, server)


def vgi_rpc_exchange(turns: int) -> float:
    with serve_pipe(StreamBench, StreamBenchImpl()) as proxy, proxy.exchange() as session:
        batch = AnnotatedBatch(BATCH)
        for _ in range(100):  # the first turns learn the schema
            session.exchange(batch)
        start = time.perf_counter()
        for _ in range(turns):
            session.exchange(batch)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU affinity: {sorted(os.sched_getaffinity(0))}; {args.turns} round trips per run")
    loops = {
        "bare pipe": bare_pipe,
        "pyarrow floor": pyarrow_floor,
        "vgi_rpc exchange": vgi_rpc_exchange,
    }
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):  # interleaved, so drift hits every loop alike
        for name, loop in loops.items():
            rates[name].append(args.turns / loop(args.turns))
    floor = statistics.median(rates["pyarrow floor"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(
            f"  {name:18s} {rate:9,.0f} round trips/s  {1e6 / rate:6.2f} µs"
            f"  ({rate / floor:.2f}x the pyarrow floor)"
        )


if __name__ == "__main__":
    main()
