"""Soak: concurrent HTTP clients making mixed calls against a conformance worker.

    python scripts/soak.py [--seconds 600] [--clients 16] [--url URL] [--interval 5]
                           [--max-rss-growth-mib 64] [--max-fd-growth 16]

Starts ``conformance/worker.py --http 0`` (unless ``--url`` names a running
server), runs ``--clients`` threads, each with its own ``http_connect`` client,
doing unary calls, producer streams and exchange streams and checking every
answer, and samples the worker's RSS and open descriptors every ``--interval``
seconds. Prints operations, errors, and RSS/fds at start and end; exits 1 on
any error, or when RSS or descriptors grew past the thresholds between the
first samples after warm-up and the last ones.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the harness and the repository

import pyarrow as pa  # noqa: E402
from fuzz_common import open_fds, proc_status  # noqa: E402

from conformance.types import Point  # noqa: E402

MiB = 1 << 20


class SoakError(Exception):
    """An answer that is not what the call should return."""


def _expect(got: object, want: object, what: str) -> None:
    if got != want:
        raise SoakError(f"{what}: got {got!r:.200}, want {want!r:.200}")


def _unary(svc: Any, rng: random.Random) -> None:
    op = rng.randrange(6)
    if op == 0:
        value = "soak-" + str(rng.random())
        _expect(svc.echo_string(value=value), value, "echo_string")
    elif op == 1:
        data = rng.randbytes(rng.choice((1, 100, 10_000, 100_000)))
        _expect(svc.echo_bytes(data=data), data, "echo_bytes")
    elif op == 2:
        values = [str(i) for i in range(rng.randint(0, 50))]
        _expect(svc.echo_list(values=values), values, "echo_list")
    elif op == 3:
        mapping = {f"k{i}": i for i in range(rng.randint(0, 20))}
        _expect(svc.echo_dict(mapping=mapping), mapping, "echo_dict")
    elif op == 4:
        _expect(svc.add_floats(a=1.5, b=2.25), 3.75, "add_floats")
    else:
        text = svc.inspect_point(point=Point(x=1.0, y=2.0))
        if not isinstance(text, str) or not text:
            raise SoakError(f"inspect_point: got {text!r}")


def _producer(svc: Any, rng: random.Random) -> None:
    count = rng.randint(0, 8)
    rows = sum(item.batch.num_rows for item in svc.produce_n(count=count))
    _expect(rows, count, "produce_n rows")


def _exchange(svc: Any, rng: random.Random) -> None:
    factor = rng.choice((0.5, 2.0, 3.0))
    with svc.exchange_scale(factor=factor) as session:
        for _ in range(rng.randint(1, 5)):
            values = [float(i) for i in range(rng.randint(1, 100))]
            out = session.exchange(pa.RecordBatch.from_pydict({"value": values})).batch
            _expect(out.column("value").to_pylist(), [v * factor for v in values], "exchange_scale")


OPERATIONS: list[Callable[[Any, random.Random], None]] = [_unary, _unary, _producer, _exchange]


@dataclass
class Sample:
    """One reading of the worker."""

    at: float
    rss: int
    fds: int


@dataclass
class SoakResult:
    """What a soak run did."""

    seconds: float = 0.0
    operations: int = 0
    errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    rss_growth: int = 0
    fd_growth: int = 0

    def report(self) -> str:
        """Human-readable summary."""
        first, last = self.samples[0], self.samples[-1]
        lines = [
            f"soak: {self.operations} operations in {self.seconds:.0f}s "
            f"({self.operations / max(self.seconds, 1e-9):.0f}/s), {len(self.errors)} errors",
            f"  RSS  start {first.rss / MiB:.1f} MiB, end {last.rss / MiB:.1f} MiB, "
            f"max {max(s.rss for s in self.samples) / MiB:.1f} MiB, "
            f"growth after warm-up {self.rss_growth / MiB:+.1f} MiB",
            f"  fds  start {first.fds}, end {last.fds}, max {max(s.fds for s in self.samples)}, "
            f"growth after warm-up {self.fd_growth:+d}",
        ]
        lines += ["  error: " + e for e in self.errors[:20]]
        return "\n".join(lines)


def soak(
    url: str,
    pid: int,
    *,
    seconds: float,
    clients: int = 16,
    interval: float = 5.0,
    seed: int = 1,
) -> SoakResult:
    """Run the clients for ``seconds`` against ``url`` while sampling process ``pid``."""
    from fuzz_corpus import client_protocol

    from vgi_rpc import http_connect

    protocol = client_protocol(url)
    result = SoakResult()
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        done = 0
        try:
            with http_connect(protocol, url, timeout=60) as svc:
                while not stop.is_set():
                    op = rng.choice(OPERATIONS)
                    try:
                        op(svc, rng)
                    except Exception as exc:  # every failure is a soak error
                        with lock:
                            result.errors.append(f"client {number} {op.__name__}: {exc!r:.300}")
                    done += 1
        except Exception as exc:
            with lock:
                result.errors.append(f"client {number}: {exc!r:.300}")
        with lock:
            result.operations += done

    def sample() -> None:
        result.samples.append(Sample(time.monotonic(), proc_status(pid, "VmRSS"), open_fds(pid)))

    sample()
    threads = [
        threading.Thread(target=client, args=(i,), name=f"soak-{i}", daemon=True)
        for i in range(clients)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    deadline = started + seconds
    while (now := time.monotonic()) < deadline:
        time.sleep(min(interval, max(0.0, deadline - now)))
        sample()
    stop.set()
    for t in threads:
        t.join(timeout=120)
    result.seconds = time.monotonic() - started
    sample()
    # Flatness: the median of the first samples after warm-up against that of the last ones.
    steady = result.samples[1:] if len(result.samples) > 3 else result.samples
    k = max(1, min(3, len(steady) // 3))
    result.rss_growth = int(
        statistics.median(s.rss for s in steady[-k:]) - statistics.median(s.rss for s in steady[:k])
    )
    result.fd_growth = int(
        statistics.median(s.fds for s in steady[-k:]) - statistics.median(s.fds for s in steady[:k])
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run a soak; exit status 1 on errors or growth."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--url", help="a running server (default: start a conformance worker)")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, to sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-rss-growth-mib", type=float, default=64.0)
    parser.add_argument("--max-fd-growth", type=int, default=16)
    args = parser.parse_args(argv)
    if args.url:
        if args.pid is None:
            parser.error("--url needs --pid (the server process to sample)")
        result = soak(
            args.url, args.pid, seconds=args.seconds, clients=args.clients, interval=args.interval
        )
    else:
        from fuzz_http import http_worker

        with http_worker() as worker:
            result = soak(
                worker.url,
                worker.pid,
                seconds=args.seconds,
                clients=args.clients,
                interval=args.interval,
                seed=args.seed,
            )
            if not worker.alive():
                result.errors.append(worker.exit_description())
    print(result.report())
    failed = bool(result.errors)
    if result.rss_growth > args.max_rss_growth_mib * MiB:
        print(f"FAIL: RSS grew {result.rss_growth / MiB:.1f} MiB (limit {args.max_rss_growth_mib})")
        failed = True
    if result.fd_growth > args.max_fd_growth:
        print(f"FAIL: descriptors grew by {result.fd_growth} (limit {args.max_fd_growth})")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
