"""Measurement child for the transfer benchmark; runs under ONE side's virtualenv.

Echoes one large Arrow batch (a float64 column) through an exchange stream
(``TransferBench.echo``) with the server in another process, over: ``pipe``
(the worker's stdin/stdout), ``shm`` (the same, plus a shared-memory segment
for batches), ``unix`` and ``tcp`` (loopback). ``shm-rebuilt`` is ``shm``
with ``TransferBench.rebuild``, whose output is a new batch object. Also measures this machine's
memcpy bandwidth in the same process. Prints one JSON document on stdout.

Usage: ``python _transfer_child.py [--quick] [--transports pipe,shm,unix,tcp]``
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pyarrow as pa  # noqa: E402
from _child_common import cpu_affinity, http_worker, log, package_info  # noqa: E402
from _transfer_service import SCHEMA, TransferBench  # noqa: E402

import vgi_rpc  # noqa: E402
from vgi_rpc import AnnotatedBatch, connect  # noqa: E402
from vgi_rpc.http import http_connect  # noqa: E402

WORKER = os.path.join(HERE, "_transfer_worker.py")
PYTHON = [sys.executable, "-E", "-s"]
PROTOCOL: type[Any] = TransferBench

MiB = 1 << 20
SIZES = {"64MiB": 64 * MiB, "1GiB": 1024 * MiB}
REPS = {"64MiB": 5, "1GiB": 3}  # timed echoes per size, after WARMUPS untimed ones
HTTP_MAX = 64 * MiB  # HTTP bodies: both packages refuse 1 GiB by default
WARMUPS = 2  # the first echoes fault fresh memory in (allocator, pipe and segment pages)
# Input and output of the largest echo must fit in the segment at the same time.
SEGMENT = 2 * 1024 * MiB + 64 * MiB


def memcpy_gb_per_s(size: int = 1024 * MiB, reps: int = 3) -> float:
    """Best-of-``reps`` copy rate (GB/s, 1e9 bytes) between two touched ``size``-byte buffers."""
    src = bytearray(b"\x5a") * size
    dst = bytearray(size)
    view = memoryview(dst)
    view[:] = src  # fault the destination in
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        view[:] = src
        best = min(best, time.perf_counter() - started)
    del view
    return size / best / 1e9


def float_batch(nbytes: int) -> pa.RecordBatch:
    """A batch of ``nbytes // 8`` float64 values (every byte written, so no zero pages)."""
    rows = nbytes // 8
    data = pa.py_buffer(bytearray(b"\x3f\xf0\x00\x00\x00\x00\x00\x01") * rows)
    column = pa.Array.from_buffers(pa.float64(), rows, [None, data])
    return pa.RecordBatch.from_arrays([column], schema=SCHEMA)


@contextlib.contextmanager
def _socket_worker(kind: str) -> Iterator[str]:
    """Start the worker on a unix socket or loopback TCP; yield ``UNIX:path`` / ``TCP:h:p``."""
    directory = tempfile.mkdtemp(prefix="vgi-bench-")
    where = os.path.join(directory, "s.sock") if kind == "unix" else "127.0.0.1:0"
    proc = subprocess.Popen(
        [*PYTHON, WORKER, f"--{kind}", where], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith(("UNIX:", "TCP:")):
            raise RuntimeError(f"worker printed {line!r}")
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, "s.sock"))
        os.rmdir(directory)


def _wait_connectable(address: str) -> None:
    kind, _, rest = address.partition(":")
    deadline = time.monotonic() + 20
    while True:
        try:
            if kind == "UNIX":
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(rest)
            else:
                host, _, port = rest.rpartition(":")
                socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _socket_connect(kind: str) -> Any:
    ours = getattr(vgi_rpc, kind + "_connect", None)
    return ours if ours is not None else getattr(vgi_rpc.rpc, kind + "_connect")


@contextlib.contextmanager
def _reference_shm_proxy() -> Iterator[Any]:
    """The reference's way to a worker with a segment: its transport wrapped with the segment."""
    from vgi_rpc.shm import ShmSegment

    reference: Any = vgi_rpc.rpc  # the reference's API, not ours

    segment = ShmSegment.create(SEGMENT)
    transport = reference.SubprocessTransport([*PYTHON, WORKER])
    try:
        connection: Any = reference.RpcConnection(
            PROTOCOL, reference.ShmPipeTransport(transport, segment)
        )
        with connection as proxy:  # the reference's RpcConnection yields the proxy
            yield proxy
    finally:
        transport.close()
        segment.unlink()
        with contextlib.suppress(BufferError):
            segment.close()


@contextlib.contextmanager
def open_proxy(transport: str) -> Iterator[Any]:
    """A proxy to a worker process over ``transport``."""
    if transport == "pipe":
        with connect(PROTOCOL, [*PYTHON, WORKER]) as proxy:
            yield proxy
    elif transport in ("shm", "shm-rebuilt"):
        if "shm_size" in inspect.signature(connect).parameters:
            with connect(PROTOCOL, [*PYTHON, WORKER], shm_size=SEGMENT) as proxy:
                yield proxy
        else:
            with _reference_shm_proxy() as proxy:
                yield proxy
    elif transport == "http":
        with (
            http_worker([*PYTHON, WORKER]) as (url, _),
            http_connect(PROTOCOL, url, prefix="") as proxy,
        ):
            yield proxy
    elif transport in ("unix", "tcp"):
        with _socket_worker(transport) as address:
            _wait_connectable(address)
            kind, _, rest = address.partition(":")
            if kind == "UNIX":
                cm = _socket_connect("unix")(PROTOCOL, rest)
            else:
                host, _, port = rest.rpartition(":")
                cm = _socket_connect("tcp")(PROTOCOL, host, int(port))
            with cm as proxy:
                yield proxy
    else:
        raise ValueError(transport)


def echo_times(proxy: Any, batch: pa.RecordBatch, reps: int, method: str = "echo") -> list[float]:
    """Seconds per echo of ``batch`` through one exchange stream, after checked warm-ups."""
    times = []
    with getattr(proxy, method)() as session:
        for _ in range(WARMUPS):
            out = session.exchange(AnnotatedBatch(batch))
            if out.batch.num_rows != batch.num_rows or not out.batch.equals(batch):
                raise AssertionError("the echoed batch differs from the one sent")
            del out
        for _ in range(reps):
            gc.collect()
            started = time.perf_counter()
            out = session.exchange(AnnotatedBatch(batch))
            rows = out.batch.num_rows
            del out
            times.append(time.perf_counter() - started)
            assert rows == batch.num_rows
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--transports", default="pipe,shm,shm-rebuilt,unix,tcp,http")
    args = parser.parse_args()
    sizes = {"64MiB": SIZES["64MiB"]} if args.quick else SIZES
    log("memcpy")
    memcpy = memcpy_gb_per_s(256 * MiB if args.quick else 1024 * MiB)
    results: dict[str, dict[str, Any]] = {}
    for transport in [t for t in args.transports.split(",") if t]:
        results[transport] = {}
        with open_proxy(transport) as proxy:
            for label, nbytes in sizes.items():
                if transport == "http" and nbytes > HTTP_MAX:
                    continue  # over both packages' default request cap
                log(f"{transport} {label}")
                batch = float_batch(nbytes)
                reps = 1 if args.quick else REPS[label]
                method = "rebuild" if transport == "shm-rebuilt" else "echo"
                times = echo_times(proxy, batch, reps, method)
                del batch
                seconds = statistics.median(times)
                gbps = nbytes / seconds / 1e9
                results[transport][label] = {
                    "bytes": nbytes,
                    "reps": reps,
                    "seconds": times,
                    "gb_per_s": gbps,
                }
    print(
        json.dumps(
            {
                "info": package_info(),
                "cpu_affinity": cpu_affinity(),
                "memcpy_gb_per_s": memcpy,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
