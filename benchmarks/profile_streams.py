"""Where does a stream turn spend its time? (our package only; never imports the reference)

Four parts, for the rows of ``streams.py``:

1. **CPU per turn, in memory.**  One stream of each kind is recorded over a
   real pipe (the bytes each side wrote); the server's ``serve_one`` and the
   client's iteration are then replayed from those bytes over in-memory
   channels, so the figures are pure CPU cost of the framework and pyarrow.
2. **Internals.**  The replays again, with timers wrapped around a list of
   internal functions: inclusive and self time per turn.
3. **Transport floor.**  Raw pipe round trips and raw 8 MiB transfers between
   two threads or two processes on the current CPU set, no framework.
4. **What-ifs, built from our internals without changing them**: the 8 MiB
   producer with 1 MiB pipe buffers (``F_SETPIPE_SZ``); then the 1-row
   producer and the exchange through three channel variants on both sides
   (``default``; ``fast I/O``: C-level ``io.FileIO`` reads and a plain
   ``os.write`` for single-chunk sends; ``coalescing``: writes held until the
   side is about to block on a read), each with the lockstep public API and
   with a client that keeps N ticks / inputs in flight.

Run it pinned, like the benchmark, with our venv::

    taskset -c 0 benchmarks/.venv-ours/bin/python benchmarks/profile_streams.py [--turns N] [--skip 1,3,4]

(``--skip 1`` skips parts 1 and 2.)  Without ``taskset`` it shows the unpinned picture.

Targets that no longer exist are skipped; edit ``TARGETS`` to follow the code.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import io
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pyarrow as pa  # noqa: E402
from _child_common import open_proxy  # noqa: E402
from _streams_service import EXCHANGE_SCHEMA, StreamBench, StreamBenchImpl  # noqa: E402
from profile_unary import MemoryChannel, Timers  # noqa: E402

import vgi_rpc  # noqa: E402
from vgi_rpc import AnnotatedBatch, connect  # noqa: E402
from vgi_rpc._ipc import Chunk, StreamWriter  # noqa: E402
from vgi_rpc._ipc_reader import open_stream_reader  # noqa: E402
from vgi_rpc.rpc import RpcConnection, RpcServer  # noqa: E402
from vgi_rpc.rpc._client import connection_of, make_proxy  # noqa: E402
from vgi_rpc.rpc._streams import EMPTY_SCHEMA  # noqa: E402
from vgi_rpc.transports._fd import FdChannel  # noqa: E402
from vgi_rpc.transports._pipe import make_pipe_pair  # noqa: E402
from vgi_rpc.wire._codec import empty_batch  # noqa: E402

PROTOCOL: type[Any] = StreamBench
WORKER = os.path.join(HERE, "_streams_worker.py")
LARGE_ROWS = 1 << 20
LARGE_BYTES = LARGE_ROWS * 8
F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity
F_GETPIPE_SZ = 1032

TARGETS = [
    # server
    "vgi_rpc.rpc._server:RpcServer.serve_one",
    "vgi_rpc.rpc._stream_loop:_run_stream",
    "vgi_rpc.rpc._stream_loop:_turns",
    "vgi_rpc.rpc._server_stream:ServerStream.answer",
    "vgi_rpc.rpc._server_stream:ServerStream.turn",
    "vgi_rpc.rpc._server_stream:conform_input",
    "_streams_service:Produce.produce",
    "_streams_service:Echo.exchange",
    "vgi_rpc.rpc._streams:OutputCollector.__init__",
    "vgi_rpc.rpc._streams:OutputCollector.emit",
    "vgi_rpc.rpc._streams:OutputCollector.plain",
    "vgi_rpc.rpc._streams:AnnotatedBatch.metadata_dict",
    "vgi_rpc.rpc._server:RpcServer.log_batches",
    # client
    "vgi_rpc.rpc._client:StreamSession.tick",
    "vgi_rpc.rpc._client:StreamSession.exchange",
    "vgi_rpc.rpc._client:StreamSession._turn",
    "vgi_rpc.rpc._client:StreamSession._plain_turn",
    "vgi_rpc.rpc._client:StreamSession._complete",
    "vgi_rpc.rpc._client:StreamSession._send",
    "vgi_rpc.rpc._client:StreamSession._receive",
    "vgi_rpc.rpc._client:RpcConnection.read_batch",
    "vgi_rpc.wire._codec:classify",
    # both: IPC
    "vgi_rpc._ipc:StreamWriter.send",
    "vgi_rpc._ipc:StreamWriter.write",
    "vgi_rpc._ipc:_BatchEncoder.encode",
    "vgi_rpc._ipc:StreamWriter.flush",
    "vgi_rpc._ipc_reader:IpcStreamReader.read",
    "vgi_rpc._ipc_reader:IpcStreamReader._read",
    "vgi_rpc._ipc_reader:IpcStreamReader._checked",
    "vgi_rpc._ipc_reader:read_message",
    "vgi_rpc._ipc_reader:_read_exact",
    "vgi_rpc._ipc_reader:IpcStreamReader._batch",
    "vgi_rpc._ipc_reader:IpcStreamReader._decode",
    "vgi_rpc._ipc_reader:validate_batch",
]


# --------------------------------------------------------------------------- recording


class TapChannel:
    """Wraps a real channel and keeps a copy of every byte written through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent = bytearray()

    @property
    def reader(self) -> Any:
        return self.inner.reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.sent += memoryview(chunk).cast("B")
        self.inner.write_chunks(chunks)

    def peer_failure(self, detail: str) -> vgi_rpc.TransportError:
        result: vgi_rpc.TransportError = self.inner.peer_failure(detail)
        return result

    def close(self) -> None:
        self.inner.close()


def _one_row_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"x": [1.5]}, schema=EXCHANGE_SCHEMA)


def _run_case(proxy: Any, case: str, turns: int) -> None:
    """One stream of ``case`` with ``turns`` batches or round trips."""
    if case == "exchange":
        batch = _one_row_batch()
        with proxy.exchange() as session:
            for _ in range(turns):
                session.exchange(AnnotatedBatch(batch))
        return
    rows = 1 if case == "produce_small" else LARGE_ROWS
    for _ in proxy.produce(count=turns, rows=rows):
        pass


def record(case: str, turns: int) -> tuple[bytes, bytes]:
    """(client bytes, server bytes) of one stream, recorded over a real pipe pair."""
    server = RpcServer(StreamBench, StreamBenchImpl())
    client_side, server_side = make_pipe_pair()
    server_tap = TapChannel(server_side)
    thread = threading.Thread(target=server.serve, args=(server_tap,), daemon=True)
    thread.start()
    client_tap = TapChannel(client_side)
    conn = RpcConnection(StreamBench, client_tap)
    _run_case(make_proxy(PROTOCOL, conn), case, turns)
    conn.close()
    thread.join(timeout=10)
    server_side.close()
    return bytes(client_tap.sent), bytes(server_tap.sent)


# --------------------------------------------------------------------------- part 1 + 2


def replays(case: str, turns: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(server replay, client replay) of one recorded stream, over in-memory channels."""
    client_bytes, server_bytes = record(case, turns)
    server = RpcServer(StreamBench, StreamBenchImpl())
    conn = RpcConnection(StreamBench, MemoryChannel())
    proxy = make_proxy(PROTOCOL, conn)

    def server_once() -> None:
        server.serve_one(MemoryChannel(client_bytes))

    def client_once() -> None:
        conn.channel = MemoryChannel(server_bytes)
        _run_case(proxy, case, turns)

    return server_once, client_once


def _per_turn_us(fn: Callable[[], object], repeats: int, turns: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / turns * 1e6


def cpu_per_turn(cases: list[tuple[str, int]], timers: Timers) -> None:
    print("\n== 1+2. CPU per turn over in-memory channels (best of 5 replays)")
    for case, turns in cases:
        server_once, client_once = replays(case, turns)
        server_us = _per_turn_us(server_once, 5, turns)
        client_us = _per_turn_us(client_once, 5, turns)
        print(
            f"\n-- {case}, {turns} turns: server {server_us:.2f} µs + client {client_us:.2f} µs "
            f"= {server_us + client_us:.2f} µs per turn"
        )
        timers.clear()
        timers.enabled = True
        server_once()
        client_once()
        timers.enabled = False
        print(f"   {'function':<40} {'inclusive µs':>12} {'self µs':>9} {'calls':>7}")
        for label in timers.order:
            if timers.count[label]:
                inclusive = timers.inclusive_ns[label] / turns / 1000
                own = timers.self_ns[label] / turns / 1000
                per = timers.count[label] / turns
                print(f"   {label:<40} {inclusive:12.2f} {own:9.2f} {per:7.3g}")


# --------------------------------------------------------------------------- part 3


@contextlib.contextmanager
def _peer(mode: str, target: Callable[[], None]) -> Iterator[None]:
    """Run ``target`` on a thread or in a forked process for the duration of the block."""
    if mode == "thread":
        thread = threading.Thread(target=target)
        thread.start()
        yield
        thread.join()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads alive
        pid = os.fork()
    if pid == 0:
        try:
            target()
        finally:
            os._exit(0)
    yield
    os.waitpid(pid, 0)


def raw_ping_pong(mode: str, n: int) -> float:
    """µs per 1-byte round trip over two pipes."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()

    def pong() -> None:
        for _ in range(n):
            os.read(a_r, 1)
            os.write(b_w, b"x")

    with _peer(mode, pong):
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(a_w, b"x")
            os.read(b_r, 1)
        elapsed = time.perf_counter() - t0
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return elapsed / n * 1e6


def raw_transfer(mode: str, pipe_size: int | None, n: int) -> float:
    """MB/s of ``n`` lockstep 8 MiB transfers (writev in, readv into an Arrow buffer, 1-byte ack)."""
    r, w = os.pipe()
    ack_r, ack_w = os.pipe()
    if pipe_size:
        fcntl.fcntl(w, F_SETPIPE_SZ, pipe_size)
    payload = memoryview(bytearray(os.urandom(LARGE_BYTES)))

    def sink() -> None:
        view = memoryview(pa.allocate_buffer(LARGE_BYTES)).cast("B")
        for _ in range(n):
            got = 0
            while got < LARGE_BYTES:
                got += os.readv(r, [view[got:]])
            os.write(ack_w, b"k")

    with _peer(mode, sink):
        t0 = time.perf_counter()
        for _ in range(n):
            sent = 0
            while sent < LARGE_BYTES:
                sent += os.writev(w, [payload[sent:]])
            os.read(ack_r, 1)
        elapsed = time.perf_counter() - t0
    for fd in (r, w, ack_r, ack_w):
        os.close(fd)
    return LARGE_BYTES * n / elapsed / 1e6


def transport_floor() -> None:
    print("\n== 3. Transport floor (no framework), on CPUs", _affinity())
    for mode in ("thread", "process"):
        print(f"   {mode:<8} 1-byte round trip: {raw_ping_pong(mode, 20000):6.1f} µs")
    for mode in ("thread", "process"):
        for size in (None, 256 << 10, 1 << 20):
            label = f"{(size or 65536) >> 10} KiB pipe"
            mb_s = raw_transfer(mode, size, 100)
            print(f"   {mode:<8} 8 MiB transfers, {label:<13} {mb_s:8,.0f} MB/s")


# --------------------------------------------------------------------------- part 4


@contextlib.contextmanager
def _open(transport: str) -> Iterator[Any]:
    with open_proxy(transport, PROTOCOL, StreamBenchImpl(), WORKER) as (proxy, _):
        yield proxy


def _set_pipe_sizes(proxy: Any, size: int) -> list[int]:
    """Grow both pipes of a connection (the fds are shared with the peer's pipe ends)."""
    channel = connection_of(proxy).channel
    sizes = []
    for attr in ("_read_fd", "_write_fd"):
        fd = getattr(channel, attr)
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
        sizes.append(fcntl.fcntl(fd, F_GETPIPE_SZ))
    return sizes


def _rate(fn: Callable[[], object], items: int, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return items / best


def produce_pipelined(proxy: Any, count: int, rows: int, window: int) -> int:
    """A producer client that keeps ``window`` ticks in flight (lockstep when 1).

    Built from our internals (request, input writer, output reader); the server
    is unchanged: it answers one tick at a time and drains the surplus ticks
    after ``finish()`` like any unread input.
    """
    conn = connection_of(proxy)
    info = conn.methods["produce"]
    from vgi_rpc.rpc._request import encode_arguments

    conn.send_request(info.name, encode_arguments(info, {"count": count, "rows": rows}))
    ticks = StreamWriter(conn.channel, EMPTY_SCHEMA)
    tick = empty_batch(EMPTY_SCHEMA)
    for _ in range(window):
        ticks.write(tick)
    ticks.flush()
    reader = open_stream_reader(conn.channel.reader)
    assert reader is not None
    received = 0
    while conn.read_batch(reader, info.name) is not None:
        received += 1
        ticks.write(tick, flush=True)
    ticks.close()
    return received


class _FlushingRawReader(io.RawIOBase):
    """Raw reader that sends the channel's pending output before every read from the fd."""

    def __init__(self, channel: CoalescingChannel, fd: int) -> None:
        super().__init__()
        self._channel = channel
        self._fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._channel.send_pending()
        view = memoryview(buffer).cast("B")
        return os.readv(self._fd, [view[: 1 << 30]])


class CoalescingChannel:
    """What-if channel: writes are held until this side is about to block on a read.

    A side always reads after writing (a request, a tick, a turn's output), so
    sending pending bytes just before each read from the descriptor cannot
    deadlock, and everything written between two blocking reads leaves in one
    ``writev``.  Lockstep traffic is unchanged; pipelined traffic is batched.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._pending: list[Chunk] = []
        self._reader = io.BufferedReader(
            _FlushingRawReader(self, inner.reader.raw.fileno()), buffer_size=1 << 16
        )

    @property
    def reader(self) -> Any:
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        self._pending.extend(chunks)

    def send_pending(self) -> None:
        if self._pending:
            chunks, self._pending = self._pending, []
            self.inner.write_chunks(chunks)

    def peer_failure(self, detail: str) -> vgi_rpc.TransportError:
        result: vgi_rpc.TransportError = self.inner.peer_failure(detail)
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError, vgi_rpc.TransportError):
            self.send_pending()
        self.inner.close()


class FastIoChannel:
    """What-if channel: the same bytes through C-level I/O.

    Reads go through ``io.FileIO`` (CPython clamps counts and retries EINTR
    itself) instead of a Python ``RawIOBase``; a single chunk is sent with
    ``os.write`` instead of the general vectored loop.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._fd = inner._write_fd
        raw = io.FileIO(inner.reader.raw.fileno(), "rb", closefd=False)
        self._reader = io.BufferedReader(raw, buffer_size=1 << 16)

    @property
    def reader(self) -> Any:
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        if len(chunks) != 1:
            self.inner.write_chunks(chunks)
            return
        view = memoryview(chunks[0]).cast("B")
        while view:
            view = view[os.write(self._fd, view) :]

    def peer_failure(self, detail: str) -> vgi_rpc.TransportError:
        result: vgi_rpc.TransportError = self.inner.peer_failure(detail)
        return result

    def close(self) -> None:
        self.inner.close()


CHANNELS: dict[str, Callable[[Any], Any]] = {
    "default": lambda channel: channel,
    "fast I/O": FastIoChannel,
    "coalescing": CoalescingChannel,
}


def serve_variant(name: str) -> None:
    """Worker mode (``--serve-variant NAME``): ``run_server`` with a what-if channel."""
    server = RpcServer(StreamBench, StreamBenchImpl())
    out_fd = os.dup(1)
    os.dup2(2, 1)
    server.serve(CHANNELS[name](FdChannel(0, out_fd)))


@contextlib.contextmanager
def _open_variant(transport: str, name: str) -> Iterator[Any]:
    """Like ``_open``, with what-if channel ``name`` on both sides."""
    wrap = CHANNELS[name]
    if transport == "subprocess":
        cmd = [sys.executable, "-E", "-s", os.path.abspath(__file__), "--serve-variant", name]
        with connect(PROTOCOL, cmd) as proxy:
            conn = connection_of(proxy)
            conn.channel = wrap(conn.channel)
            yield proxy
        return
    server = RpcServer(StreamBench, StreamBenchImpl())
    client_side, server_side = make_pipe_pair()
    thread = threading.Thread(target=server.serve, args=(wrap(server_side),))
    thread.start()
    conn = RpcConnection(StreamBench, wrap(client_side))
    try:
        yield make_proxy(PROTOCOL, conn)
    finally:
        conn.close()
        thread.join(timeout=10)
        server_side.close()


def _drain(proxy: Any, count: int, rows: int) -> None:
    for _ in proxy.produce(count=count, rows=rows):
        pass


def exchange_pipelined(proxy: Any, batch: pa.RecordBatch, n: int, window: int) -> int:
    """``n`` exchanges keeping ``window`` inputs in flight (lockstep when 1); our internals."""
    session = proxy.exchange()
    sent = received = 0
    while received < n:
        while sent < n and sent - received < window:
            session._send(batch)
            sent += 1
        session._receive()
        received += 1
    session.close()
    return received


def what_ifs(transports: list[str]) -> None:
    print("\n== 4. What-ifs (wall time, best of 5 runs)")
    for transport in transports:
        with _open(transport) as proxy:
            large = functools.partial(_drain, proxy, 30, LARGE_ROWS)
            default = _rate(large, 30) * LARGE_BYTES / 1e6
            sizes = _set_pipe_sizes(proxy, 1 << 20)
            grown = _rate(large, 30) * LARGE_BYTES / 1e6
            print(
                f"   {transport:<10} 8 MiB producer: {default:7,.0f} MB/s with 64 KiB pipes, "
                f"{grown:7,.0f} MB/s with {sizes[0] >> 10} KiB pipes"
            )
    n = 2000
    batch = _one_row_batch()
    windows = (1, 4, 16, 64)
    header = f"   {'transport':<10} {'channels':<11} {'row':<22} {'lockstep API':>12}"
    header += "".join(f" {f'{w} in flight':>12}" for w in windows)
    print("\n   per second; 'N in flight' = N ticks / inputs sent ahead of the answers")
    print(header)
    for transport in transports:
        for label in CHANNELS:
            with _open_variant(transport, label) as proxy:
                cells = [_rate(functools.partial(_drain, proxy, n, 1), n)]
                cells += [
                    _rate(functools.partial(produce_pipelined, proxy, n, 1, w), n) for w in windows
                ]
                line = f"   {transport:<10} {label:<11} {'1-row producer':<22}"
                print(line + "".join(f" {c:12,.0f}" for c in cells))
                cells = [_rate(functools.partial(_exchange_lockstep, proxy, batch, n), n)]
                cells += [
                    _rate(functools.partial(exchange_pipelined, proxy, batch, n, w), n)
                    for w in windows
                ]
                line = f"   {transport:<10} {label:<11} {'exchange':<22}"
                print(line + "".join(f" {c:12,.0f}" for c in cells))


def _exchange_lockstep(proxy: Any, batch: pa.RecordBatch, n: int) -> None:
    with proxy.exchange() as session:
        for _ in range(n):
            session.exchange(AnnotatedBatch(batch))


def _install_pyarrow_timers(timers: Timers) -> None:
    """Time pyarrow's IPC entry points under distinct labels (call sites use ``pa.ipc.X``)."""
    for name in ("read_message", "read_record_batch"):
        label = f"pa.ipc.{name}"
        setattr(pa.ipc, name, timers.wrap(label, getattr(pa.ipc, name)))
        timers.order.append(label)


def _affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2000, help="turns per small stream")
    parser.add_argument("--skip", default="", help="parts to skip: 1 (with 2), 3, 4")
    parser.add_argument("--serve-variant", choices=sorted(CHANNELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_variant:
        serve_variant(args.serve_variant)
        return
    skip = set(args.skip.split(","))
    print(f"vgi_rpc from {vgi_rpc.__file__}; Python {sys.version.split()[0]}")
    print(f"CPU affinity: {_affinity()}")
    if "1" not in skip:
        timers = Timers()
        timers.install(TARGETS)
        _install_pyarrow_timers(timers)
        cases = [
            ("produce_small", args.turns),
            ("exchange", args.turns),
            ("produce_large", 10),
        ]
        cpu_per_turn(cases, timers)
    if "3" not in skip:
        transport_floor()
    if "4" not in skip:
        what_ifs(["pipe", "subprocess"])


if __name__ == "__main__":
    main()
