"""What ``instrument_server`` costs a unary call, and what it costs when it is not used.

Ours only, run in the project venv (it needs ``opentelemetry-sdk``, in the
``dev`` extra). Children are pinned to CPU 0 (``taskset -c 0``) and serve
``Bench.add`` over a transport: the in-process pipe (``serve_pipe``), a
subprocess worker (``connect``, the worker pinned too) or HTTP
(``serve_in_thread`` + ``http_connect``).

Plain and instrumented are measured **in the same child, in alternating
batches** (plain, instrumented, instrumented, plain, ...), so both see the
same machine load; a row reports the median µs per call of each, the median
of the per-pair ratios, and whether it meets ≤ 1.10.

=============  ==============================================================
variant        the instrumented server of the pair
=============  ==============================================================
otel           ``instrument_server`` with the SDK: a span per call into an
               ``InMemorySpanExporter`` (``SimpleSpanProcessor``), the counter
               and histogram into an ``InMemoryMetricReader``
otel-batch     as ``otel`` with a ``BatchSpanProcessor`` (what production uses)
otel+parent    as ``otel``, inside an active client span: the client sends
               ``traceparent`` (to both servers) and the server span is its child
otel-1%        as ``otel-batch`` with ``ParentBased(TraceIdRatioBased(0.01))``:
               1% of calls traced, every call counted (a high-rate setup)
=============  ==============================================================

The plain server of each pair runs with the SDK imported and a global tracer
provider set. The ``no-sdk`` check compares a child where ``opentelemetry``
cannot be imported against one where it is (separate processes, interleaved
rounds), and times the two checks an uninstrumented path makes per call (the
client's ``with_trace_context``, the server's ``start_record``).

``floor`` times, outside any transport: the SDK's bare floor (start and end a
span, a counter add, a histogram point), the SDK doing exactly what our
observer asks of it (the same span attributes, context attach, statistics,
status, histogram attributes), and our observed call (``start_record`` +
``finish``). The last two differ by our own code. Nothing here fails on speed::

    .venv/bin/python benchmarks/otel_overhead.py [--calls 2000] [--pairs 9]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("otel", "otel-batch", "otel+parent", "otel-1%")
WORKER_MODES = ("plain", *VARIANTS, "no-sdk")
BUDGET = 1.10  # the "instrumented costs <= 10% more than plain"


class Bench(Protocol):
    """The benchmarked service."""

    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        ...


class BenchImpl:
    """Its implementation."""

    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        return a + b


def _sdk(mode: str) -> tuple[Any, Any, Any]:
    """Tracer provider, meter provider and span exporter for ``mode`` (global tracer set once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    spans = InMemorySpanExporter()
    sampler = ParentBased(TraceIdRatioBased(0.01)) if mode == "otel-1%" else None
    tracer_provider = TracerProvider(sampler=sampler)
    processor = BatchSpanProcessor if mode in ("otel-batch", "otel-1%") else SimpleSpanProcessor
    tracer_provider.add_span_processor(processor(spans))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider, spans


def _server(mode: str) -> tuple[Any, Any]:
    """The server for ``mode`` and its span exporter (``None`` when not instrumented)."""
    if mode == "no-sdk":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails: no SDK
    from vgi_rpc import RpcServer

    server = RpcServer(Bench, BenchImpl())
    if mode == "no-sdk":
        return server, None
    tracer_provider, meter_provider, spans = _sdk(mode)
    if mode == "plain":
        return server, None
    from vgi_rpc.otel import OtelConfig, instrument_server

    instrument_server(server, OtelConfig(tracer_provider, meter_provider))
    return server, spans


def _worker(mode: str) -> None:
    """Subprocess server for ``--transport subprocess``."""
    from vgi_rpc import run_server

    server, _ = _server(mode)
    run_server(server)


def _connect(
    transport: str, mode: str, server: Any, stack: contextlib.ExitStack, pin: bool = True
) -> Any:
    """The proxy of ``Bench`` over ``transport`` (closed with ``stack``)."""
    if transport == "pipe":
        from vgi_rpc import serve_pipe

        return stack.enter_context(serve_pipe(Bench, server))
    if transport == "subprocess":
        from vgi_rpc import connect

        cmd = [*(_pin() if pin else []), sys.executable, os.path.abspath(__file__)]
        cmd += ["--worker", mode]
        return stack.enter_context(connect(Bench, cmd))
    from vgi_rpc.http import http_connect, make_wsgi_app, serve_in_thread

    app = make_wsgi_app(server, signing_key=b"k" * 32)
    url = stack.enter_context(serve_in_thread(app, threads=1))
    return stack.enter_context(http_connect(Bench, url))


def _timed(proxy: Any, calls: int, worker: int | None = None) -> tuple[float, float]:
    """(wall, CPU) us per call; CPU is this process's (all threads) plus the worker's."""
    from _child_common import proc_cpu_s

    cpu = time.process_time() + (proc_cpu_s(worker) or 0.0)
    start = time.perf_counter()
    for _ in range(calls):
        proxy.add(a=1.0, b=2.0)
    wall = time.perf_counter() - start
    cpu = time.process_time() + (proc_cpu_s(worker) or 0.0) - cpu
    return wall / calls * 1e6, cpu / calls * 1e6


def _paired(transport: str, variant: str, calls: int, pairs: int) -> dict[str, Any]:
    """Plain and ``variant`` in one process, timed in alternating batches."""
    plain_server, _ = _server("plain")
    otel_server, spans = _server(variant)
    from _child_common import child_pids

    parent: Any = contextlib.nullcontext()
    if variant == "otel+parent":
        from opentelemetry.sdk.trace import TracerProvider

        parent = TracerProvider().get_tracer("bench.client").start_as_current_span("client")
    wall: dict[str, list[float]] = {"plain": [], "otel": []}
    cpu: dict[str, list[float]] = {"plain": [], "otel": []}
    with contextlib.ExitStack() as stack, parent:
        sides = {}
        for name, server in (("plain", plain_server), ("otel", otel_server)):
            before = set(child_pids())
            proxy = _connect(transport, "plain" if name == "plain" else variant, server, stack)
            new = [pid for pid in child_pids() if pid not in before]
            sides[name] = (proxy, new[0] if new else None)
        for name in ("plain", "otel", "plain", "otel"):  # warm up
            _timed(sides[name][0], max(calls // 5, 20))
        for i in range(pairs):
            for name in ("plain", "otel") if i % 2 == 0 else ("otel", "plain"):
                if spans is not None and name == "otel":
                    spans.clear()
                w, c = _timed(sides[name][0], calls, sides[name][1])
                wall[name].append(w)
                cpu[name].append(c)
    return {
        "plain": wall["plain"],
        "otel": wall["otel"],
        "ratio": statistics.median(o / p for o, p in zip(wall["otel"], wall["plain"], strict=True)),
        "plain_cpu": cpu["plain"],
        "otel_cpu": cpu["otel"],
        "cpu_ratio": statistics.median(
            o / p for o, p in zip(cpu["otel"], cpu["plain"], strict=True)
        ),
    }


def _child(transport: str, mode: str, calls: int, batches: int) -> dict[str, Any]:
    """One server alone (the no-sdk check): best batch, and whether the SDK got loaded."""
    server, _ = _server(mode)
    best = float("inf")
    with contextlib.ExitStack() as stack:
        bench = _connect(transport, mode, server, stack)
        _timed(bench, max(calls // 5, 20))
        for _ in range(batches):
            best = min(best, _timed(bench, calls)[0])
    loaded = any(
        name.startswith("opentelemetry") and sys.modules[name] is not None for name in sys.modules
    )
    return {"mode": mode, "us_per_call": best, "opentelemetry_loaded": loaded}


def _checks(calls: int) -> dict[str, float]:
    """ns per call of the checks an uninstrumented call makes (no SDK loaded)."""
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    import logging

    from vgi_rpc import RpcServer
    from vgi_rpc.rpc import with_trace_context
    from vgi_rpc.wire import keys as k

    logging.getLogger("vgi_rpc.access").setLevel(logging.WARNING)
    server = RpcServer(Bench, BenchImpl())
    handler = server.handler(None, "add")
    assert handler is not None
    metadata = {k.METHOD_KEY: b"add"}
    out: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(calls):
        with_trace_context(metadata)
    out["with_trace_context_ns"] = (time.perf_counter() - start) / calls * 1e9
    start = time.perf_counter()
    for _ in range(calls):
        server.start_record(handler, "rid", None)
    out["start_record_ns"] = (time.perf_counter() - start) / calls * 1e9
    loaded = any(
        name.startswith("opentelemetry") and sys.modules[name] is not None for name in sys.modules
    )
    assert not loaded, "the uninstrumented checks loaded opentelemetry"
    return out


def _floor_cases() -> dict[str, Any]:
    """The SDK's floor, the SDK doing our observer's work, and an observed call (no transport)."""
    import pyarrow as pa
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from vgi_rpc import RpcServer
    from vgi_rpc.otel import OtelConfig, instrument_server
    from vgi_rpc.wire import keys as k

    tracer_provider, meter_provider, spans = _sdk("otel")
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    counter = meter.create_counter("floor.requests")
    histogram = meter.create_histogram("floor.duration")
    server = instrument_server(
        RpcServer(Bench, BenchImpl()), OtelConfig(tracer_provider, meter_provider)
    )
    handler = server.handler(None, "add")
    assert handler is not None
    metadata = {k.METHOD_KEY: b"add"}
    request = pa.record_batch({"a": [1.0], "b": [2.0]})
    few = {"rpc.method": "add", "status": "ok"}
    span_attributes = {
        "rpc.system": "vgi_rpc",
        "rpc.service": "Bench",
        "rpc.method": "add",
        "rpc.vgi_rpc.method_type": "unary",
        "rpc.vgi_rpc.server_id": server.server_id,
    }
    metric_attributes = {**span_attributes, "status": "ok"}
    del metric_attributes["rpc.vgi_rpc.server_id"]
    ok = Status(StatusCode.OK)

    def bare() -> None:
        tracer.start_span("add").end()
        counter.add(1, few)
        histogram.record(0.001, few)

    def same_work() -> None:
        span = tracer.start_span("add", kind=SpanKind.SERVER, attributes=span_attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        span.set_attributes(
            {
                "rpc.vgi_rpc.request_id": "rid",
                "rpc.vgi_rpc.input_batches": 1,
                "rpc.vgi_rpc.output_batches": 1,
                "rpc.vgi_rpc.input_rows": 1,
                "rpc.vgi_rpc.output_rows": 1,
                "rpc.vgi_rpc.input_bytes": 16,
                "rpc.vgi_rpc.output_bytes": 8,
            }
        )
        span.set_status(ok)
        span.end()
        otel_context.detach(token)
        histogram.record(0.001, metric_attributes)

    def observed() -> None:
        record = server.start_record(handler, "rid", request, metadata=metadata)
        assert record is not None
        record.stats.record_output(request)
        record.finish()

    def clear() -> None:
        spans.clear()

    return {"bare": bare, "same_work": same_work, "observed": observed, "clear": clear}


def _floor(calls: int, repeats: int) -> dict[str, float]:
    """us per call, outside any transport: the SDK's floors vs one observed call (best of repeats)."""
    cases = _floor_cases()
    names = {
        "sdk_floor_us": "bare",
        "sdk_same_work_us": "same_work",
        "observed_call_us": "observed",
    }
    best = dict.fromkeys(names, float("inf"))
    for _ in range(repeats):  # interleaved, best of each
        for name, case in names.items():
            fn = cases[case]
            cases["clear"]()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def _count_child(what: str, calls: int) -> None:
    """``calls`` calls of ``transport:mode`` or of a floor case, for ``--instructions``."""
    if what.startswith("floor:"):
        cases = _floor_cases()
        case = cases[what.split(":", 1)[1]]
        for _ in range(20):
            case()
        for _ in range(calls):
            case()
        return
    transport, mode = what.split(":")
    server, _ = _server(mode)
    with contextlib.ExitStack() as stack:
        proxy = _connect(transport, mode, server, stack, pin=False)
        for _ in range(20 + calls):
            proxy.add(a=1.0, b=2.0)


def _instructions(what: str, low: int, high: int) -> float:
    """User-space instructions per call (callgrind; every process of the run, summed)."""
    counts = []
    for calls in (low, high):
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            os.path.abspath(__file__),
            "--count",
            what,
            "--calls",
            str(calls),
        ]
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        refs = [
            int(line.split("refs:")[1].replace(",", ""))
            for line in done.stderr.splitlines()
            if "I   refs:" in line
        ]
        counts.append(sum(refs))
    return (counts[1] - counts[0]) / (high - low)


def _instruction_table(transports: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    print(
        "\nuser-space instructions per call (callgrind, all processes; load-independent; "
        "kernel time, syscalls and waits not counted)"
    )
    for case in ("bare", "same_work", "observed"):
        out[f"floor:{case}"] = _instructions(f"floor:{case}", 200, 2200)
    print(
        f"outside any transport: SDK floor {out['floor:bare'] / 1e3:.0f}k; the SDK doing our "
        f"observer's work {out['floor:same_work'] / 1e3:.0f}k; our observed call "
        f"{out['floor:observed'] / 1e3:.0f}k"
    )
    print(f"{'transport':<11}{'plain':>9}{'otel':>9}{'ratio':>7}{'otel-1%':>9}{'ratio':>7}")
    for transport in transports:
        low, high = (50, 550) if transport != "subprocess" else (50, 300)
        row = {
            m: _instructions(f"{transport}:{m}", low, high) for m in ("plain", "otel", "otel-1%")
        }
        out.update({f"{transport}:{m}": v for m, v in row.items()})
        print(
            f"{transport:<11}{row['plain'] / 1e3:>8.0f}k{row['otel'] / 1e3:>8.0f}k"
            f"{row['otel'] / row['plain']:>7.3f}{row['otel-1%'] / 1e3:>8.0f}k"
            f"{row['otel-1%'] / row['plain']:>7.3f}"
        )
    return out


def _pin() -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0"] if taskset else []


def _run(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [*_pin(), sys.executable, os.path.abspath(__file__), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    """Drive the children, print the tables and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000, help="calls per batch (pipe)")
    parser.add_argument("--pairs", type=int, default=9, help="plain/instrumented batch pairs")
    parser.add_argument("--transports", default="pipe,subprocess,http")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the no-sdk check")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--child", choices=[*VARIANTS, "plain", "no-sdk", "checks", "floor"])
    parser.add_argument("--transport", default="pipe")
    parser.add_argument("--worker", choices=WORKER_MODES)
    parser.add_argument("--count", help=argparse.SUPPRESS)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind, ~10 min)"
    )
    args = parser.parse_args()
    if not _as_child(args):
        _drive(args)


def _as_child(args: argparse.Namespace) -> bool:
    """Run the child, worker or counter ``args`` asks for; ``False`` for the driver."""
    if args.worker:
        _worker(args.worker)
    elif args.count:
        _count_child(args.count, args.calls)
    elif args.child == "checks":
        print(json.dumps(_checks(args.calls * 100)))
    elif args.child == "floor":
        print(json.dumps(_floor(args.calls, args.pairs)))
    elif args.child in ("plain", "no-sdk"):
        print(json.dumps(_child(args.transport, args.child, args.calls, args.pairs)))
    elif args.child:
        print(json.dumps(_paired(args.transport, args.child, args.calls, args.pairs)))
    else:
        return False
    return True


def _drive(args: argparse.Namespace) -> None:
    """Run every child and print the tables."""
    pin = " ".join(_pin()) or "no (taskset not found)"
    print(f"pinned: {pin}; python {sys.version.split()[0]}; load average {_load()}")
    results: dict[str, Any] = {"load_before": _load(), "rows": []}
    floor = _run(["--child", "floor", "--calls", str(args.calls * 5), "--pairs", "5"])
    results["floor"] = floor
    print(
        f"\noutside any transport (us/call, best of 5): SDK floor (bare span + counter + "
        f"histogram) {floor['sdk_floor_us']:.1f}; the SDK doing our observer's work "
        f"{floor['sdk_same_work_us']:.1f}; our observed call {floor['observed_call_us']:.1f} "
        f"(our own code: {floor['observed_call_us'] - floor['sdk_same_work_us']:+.1f})"
    )
    print(
        f"\nunary add(), plain vs instrumented in the same child, {args.pairs} alternating "
        "batch pairs; medians in us per call; ratio = median of the per-pair ratios; CPU = "
        "the client process (all threads) + a subprocess worker"
    )
    print(
        f"{'transport':<11}{'variant':<12}{'calls':>6}{'plain':>8}{'instr':>8}{'+us':>7}"
        f"{'ratio':>7}{'<=1.10':>7} |{'CPU plain':>10}{'instr':>8}{'+us':>7}{'ratio':>7}"
        f"{'<=1.10':>7}  load"
    )
    for transport in args.transports.split(","):
        calls = args.calls if transport == "pipe" else max(args.calls // 5, 50)
        for variant in args.variants.split(","):
            child = ["--child", variant, "--transport", transport, "--calls", str(calls)]
            result = _run([*child, "--pairs", str(args.pairs)])
            load = _load()
            results["rows"].append(
                {"transport": transport, "variant": variant, "calls": calls, **result, "load": load}
            )
            cells = []
            for key in ("", "_cpu"):
                plain = statistics.median(result["plain" + key])
                otel = statistics.median(result["otel" + key])
                ratio = result[("cpu_" if key else "") + "ratio"]
                verdict = "yes" if ratio <= BUDGET else "no"
                cells.append(
                    f"{plain:>{10 if key else 8}.1f}{otel:>8.1f}{otel - plain:>7.1f}"
                    f"{ratio:>7.3f}{verdict:>7}"
                )
            print(f"{transport:<11}{variant:<12}{calls:>6}{cells[0]} |{cells[1]}  {load}")
    samples: dict[str, list[float]] = {"no-sdk": [], "plain": []}
    for _ in range(args.rounds):
        for mode in samples:
            child = ["--child", mode, "--transport", "pipe", "--calls", str(args.calls)]
            result = _run([*child, "--pairs", "3"])
            samples[mode].append(result["us_per_call"])
            assert result["opentelemetry_loaded"] == (mode == "plain"), result
    no_sdk, plain = (statistics.median(samples[m]) for m in ("no-sdk", "plain"))
    checks = _run(["--child", "checks", "--calls", str(args.calls)])
    total = checks["with_trace_context_ns"] + checks["start_record_ns"]
    results["no_sdk"] = {"samples": samples, **checks}
    print(
        f"\nno SDK (pipe, separate children, median of {args.rounds}): opentelemetry never "
        f"imported {no_sdk:.1f} us/call vs SDK imported, not instrumented {plain:.1f} "
        f"({no_sdk / plain:.3f}); the per-call checks without an observer: client "
        f"with_trace_context {checks['with_trace_context_ns']:.0f} ns + server start_record "
        f"{checks['start_record_ns']:.0f} ns = {total / 1000:.2f} us"
    )
    if args.instructions:
        results["instructions"] = _instruction_table(args.transports.split(","))
    results["load_after"] = _load()
    print(f"load average after: {results['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
