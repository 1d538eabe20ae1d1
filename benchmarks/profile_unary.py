"""Where does a unary call spend its CPU time? (our package only, no pipes, no threads)

Runs the server's ``serve_one`` and the client's ``call_unary`` back to back
over in-memory channels, so the figures are pure CPU cost of the framework and
pyarrow, free of syscalls, wake-ups and scheduler noise.  Then it wraps a list
of internal functions with timers and reports their inclusive time per call.

Run it with our venv (it imports our internals, never the reference)::

    benchmarks/.venv-ours/bin/python benchmarks/profile_unary.py [--calls N]

Targets that no longer exist are skipped, so the script survives refactoring;
edit ``TARGETS`` to follow the code.  Timer overhead is about 0.1-0.3 µs per
wrapped call and is included in the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _unary_service import Bench, BenchImpl  # noqa: E402

import vgi_rpc  # noqa: E402
from vgi_rpc.rpc import RpcConnection, RpcServer  # noqa: E402
from vgi_rpc.transports import serve_pipe  # noqa: E402

# module:qualname of functions/methods to time (inclusive); missing ones are skipped.
TARGETS = [
    "inspect:Signature.bind",
    "vgi_rpc.rpc._client:RpcConnection.call_unary",
    "vgi_rpc.rpc._request:encode_arguments",
    "vgi_rpc.rpc._client:RpcConnection.send_request",
    "vgi_rpc.wire._codec:request_metadata",
    "vgi_rpc.wire._codec:new_request_id",
    "vgi_rpc._ipc:StreamWriter.__init__",
    "vgi_rpc._ipc:StreamWriter.write",
    "vgi_rpc._ipc:StreamWriter.close",
    "vgi_rpc._ipc:_BatchEncoder.encode",
    "vgi_rpc.rpc._client:RpcConnection.read_response_stream",
    "vgi_rpc._ipc_reader:open_stream_reader",
    "vgi_rpc._ipc_reader:IpcStreamReader.read",
    "vgi_rpc._ipc_reader:read_message",
    "vgi_rpc._ipc_reader:IpcStreamReader._decode",
    "vgi_rpc._ipc_reader:validate_batch",
    "vgi_rpc._ipc:read_stream_start",
    "vgi_rpc._ipc:read_next",
    "vgi_rpc._ipc:validate_batch",
    "vgi_rpc.wire._codec:classify",
    "vgi_rpc.rpc._server:RpcServer.serve_one",
    "vgi_rpc.rpc._request:read_request",
    "vgi_rpc.rpc._server:RpcServer.route",
    "vgi_rpc.rpc._server:RpcServer.start_call",
    "vgi_rpc.rpc._hosting:Hosted.check_version",
    "vgi_rpc.rpc._request:decode_arguments",
    "vgi_rpc.rpc._step:run_unary",
    "vgi_rpc.rpc._server:RpcServer.make_context",
    "vgi_rpc.rpc._step:result_batch",
    "vgi_rpc.wire._codec:empty_batch",
]


class MemoryChannel:
    """A ``Channel`` reading from fixed bytes; keeps what is written only when asked."""

    def __init__(self, incoming: bytes = b"", *, keep: bool = False) -> None:
        self._reader: io.BufferedReader = io.BufferedReader(io.BytesIO(incoming))
        self.sent = bytearray()
        self._keep = keep

    @property
    def reader(self) -> io.BufferedReader:
        return self._reader

    def write_chunks(self, chunks: Sequence[Any]) -> None:
        if self._keep:
            for chunk in chunks:
                self.sent += memoryview(chunk).cast("B")

    def peer_failure(self, detail: str) -> vgi_rpc.TransportError:
        return vgi_rpc.TransportError(detail)

    def close(self) -> None:
        pass


class Timers:
    """Inclusive and self (exclusive of other wrapped targets) time per wrapped target."""

    def __init__(self) -> None:
        self.inclusive_ns: dict[str, int] = defaultdict(int)
        self.self_ns: dict[str, int] = defaultdict(int)
        self.count: dict[str, int] = defaultdict(int)
        self.enabled = False
        self.order: list[str] = []
        self._children: list[int] = []  # per active wrapped call: time spent in wrapped callees

    def clear(self) -> None:
        self.inclusive_ns.clear()
        self.self_ns.clear()
        self.count.clear()

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter_ns
        stack = self._children

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return fn(*args, **kwargs)
            stack.append(0)
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = clock() - t0
                children = stack.pop()
                if stack:
                    stack[-1] += elapsed
                self.inclusive_ns[label] += elapsed
                self.self_ns[label] += elapsed - children
                self.count[label] += 1

        return timed

    def install(self, targets: list[str]) -> None:
        """Replace each target everywhere a ``vgi_rpc`` module (or its class) refers to it."""
        import importlib

        seen: set[object] = set()
        for target in targets:
            module_name, _, qualname = target.partition(":")
            try:
                owner: Any = importlib.import_module(module_name)
            except ImportError:
                continue
            *path, attr = qualname.split(".")
            for part in path:
                owner = getattr(owner, part, None)
            original = getattr(owner, attr, None) if owner is not None else None
            if original is None or original in seen:
                continue
            seen.add(original)
            wrapped = self.wrap(qualname, original)
            seen.add(wrapped)
            setattr(owner, attr, wrapped)
            self.order.append(qualname)
            if not path:  # a module-level function may have been imported by name elsewhere
                for name, mod in list(sys.modules.items()):
                    if name.startswith("vgi_rpc") and mod is not None:
                        for key, value in list(vars(mod).items()):
                            if value is original:
                                setattr(mod, key, wrapped)


def _args(method: str, size: int) -> dict[str, object]:
    if method == "add":
        return {"a": 1.0, "b": 2.0}
    if method == "echo":
        return {"data": os.urandom(size)}
    return {}


def _request_bytes(method: str, arguments: dict[str, object]) -> bytes:
    """The request bytes our client sends for one call."""
    capture = MemoryChannel(keep=True)
    conn = RpcConnection(Bench, capture)
    # No response is available, so the call fails after sending: we only want the request.
    with contextlib.suppress(vgi_rpc.TransportError):
        conn.call_unary(conn.methods[method], arguments)
    return bytes(capture.sent)


def profile(method: str, size: int, calls: int, timers: Timers) -> None:
    server = RpcServer(Bench, BenchImpl())
    arguments = _args(method, size)
    request = _request_bytes(method, arguments)
    answer = MemoryChannel(request, keep=True)
    server.serve_one(answer)
    response = bytes(answer.sent)
    conn = RpcConnection(Bench, MemoryChannel())
    info = conn.methods[method]
    proxy_method = getattr(_proxy(conn), method)

    def server_once() -> None:
        server.serve_one(MemoryChannel(request))

    def client_once() -> None:
        conn.channel = MemoryChannel(response)
        proxy_method(**arguments)

    def channel_only() -> None:
        MemoryChannel(request)

    warm = max(3, calls // 10)
    for fn in (server_once, client_once):
        for _ in range(warm):
            fn()
    results = {}
    for label, fn in (
        ("server serve_one", server_once),
        ("client proxy call", client_once),
        ("(MemoryChannel setup)", channel_only),
    ):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        results[label] = (time.perf_counter() - t0) / calls * 1e6
    title = f"{method}({size} B)" if method == "echo" else f"{method}()"
    print(f"\n== {title}: request {len(request)} B, response {len(response)} B, {calls} calls")
    for label, us in results.items():
        print(f"  {label:<44} {us:10.2f} µs")
    overhead = results["(MemoryChannel setup)"]
    total = results["server serve_one"] + results["client proxy call"] - 2 * overhead
    print(f"  {'CPU per round trip (both sides, no I/O)':<44} {total:10.2f} µs")

    timers.clear()
    timers.enabled = True
    for _ in range(calls):
        server_once()
        client_once()
    timers.enabled = False
    print(f"  internals per round trip of {info.name}() (timer overhead included):")
    print(f"    {'function':<44} {'inclusive µs':>12} {'self µs':>9} {'calls':>6}")
    for label in timers.order:
        if timers.count[label]:
            inclusive = timers.inclusive_ns[label] / calls / 1000
            own = timers.self_ns[label] / calls / 1000
            per = timers.count[label] / calls
            print(f"    {label:<44} {inclusive:12.2f} {own:9.2f} {per:6g}")


def _proxy(conn: RpcConnection) -> Any:
    from vgi_rpc.rpc._client import make_proxy

    return make_proxy(Bench, conn)


def pipe_latency(calls: int) -> None:
    """Wall latency through ``serve_pipe`` for comparison with the CPU figures above."""
    proto: type[Any] = Bench
    with serve_pipe(proto, BenchImpl()) as proxy:
        for name, fn in (("noop", proxy.noop), ("add", lambda: proxy.add(a=1.0, b=2.0))):
            for _ in range(calls // 10):
                fn()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            us = (time.perf_counter() - t0) / calls * 1e6
            print(f"  serve_pipe {name}(): {us:8.2f} µs mean wall time per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    print(f"vgi_rpc from {vgi_rpc.__file__}; Python {sys.version.split()[0]}")
    if hasattr(os, "sched_getaffinity"):
        print(f"CPU affinity: {sorted(os.sched_getaffinity(0))}")
    print("\nwall latency over real pipes (server thread), for reference:")
    pipe_latency(args.calls)
    timers = Timers()
    timers.install(TARGETS)
    for method, size, calls in (
        ("noop", 0, args.calls),
        ("add", 0, args.calls),
        ("echo", 1024, args.calls),
        ("echo", 1 << 20, max(20, args.calls // 25)),
        ("echo", 64 << 20, 5),
    ):
        profile(method, size, calls, timers)


if __name__ == "__main__":
    main()
