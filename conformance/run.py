"""Run the conformance scenarios against a worker that serves the ConformanceService.

    python conformance/run.py --cmd "python conformance/worker.py" [--filter 'scalar*,!large_payload.*']
                              [--format table|json] [--list] [--timeout SECS] [--verbose]

One worker process serves the whole run. Each scenario runs on its own
thread under a time limit; a scenario that overruns it fails, the worker is
killed, and a fresh worker serves the remaining scenarios. After any failure
the worker is replaced as well, so one broken scenario cannot poison the next.

Exit status: 0 when nothing failed and at least one scenario passed, 1
otherwise, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conformance.protocol import ConformanceService, ConformanceServiceV2
from conformance.scenarios import CheckError, Ctx, Scenario, SkipError, all_scenarios
from vgi_rpc import Message, RpcError, StderrMode, connect, tcp_connect, unix_connect
from vgi_rpc.rpc import Connected, connection_of

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
DEFAULT_TIMEOUT = 30.0
GRACE = 10.0  # seconds to wait for a thread or a worker after killing it

# `sh -c` runs this with $1 = pid file, the worker command after it: the
# worker keeps the shell's pid (exec), so the runner can kill a hung worker.
_PID_WRAPPER = 'echo "$$" > "$1"; shift; exec "$@"'
_SHELL = "/bin/sh"

_log = logging.getLogger("conformance.run")


class _Connection:
    """What every worker kind shares: the proxy, the collected logs, polite shutdown."""

    name: str
    transport = "pipe"
    proxy: ConformanceService
    _connected: Connected[ConformanceService]

    def __init__(self, *, verbose: bool) -> None:
        self._verbose = verbose
        self.sink: list[Message] = []

    def _on_log(self, message: Message) -> None:
        self.sink.append(message)
        if self._verbose:
            print(f"    [server {message.level.value}] {message.message}", file=sys.stderr)

    def close_stray_stream(self) -> None:
        """Close a stream a scenario left open, so the next scenario starts idle."""
        session = connection_of(self.proxy).open_session
        if session is not None and not session.closed:
            session.close()

    def kill(self) -> None:
        """Drop the connection (a hung remote worker cannot be killed from here)."""
        self._close_quietly()

    def _close_politely(self) -> bool:
        """Close on a helper thread; ``True`` when that finished within the grace period."""
        closer = threading.Thread(target=self._close_quietly, name="conformance-stop", daemon=True)
        closer.start()
        closer.join(GRACE)
        return not closer.is_alive()

    def stop(self) -> None:
        """Close the connection."""
        self._close_politely()

    def _close_quietly(self) -> None:
        try:
            self._connected.__exit__(None, None, None)
        except Exception as exc:  # a dead or broken worker: nothing left to save
            _log.debug("closing the worker failed: %s", exc)


# The ConformanceService version the runner speaks (--protocol-version): 1.0.0 or 2.0.0.
_PROTOCOL: list[type[ConformanceService]] = [ConformanceService]


class Worker(_Connection):
    """One worker process (spawned through a pid-recording shell) and its proxy."""

    def __init__(self, cmd: Sequence[str], *, verbose: bool, shm_size: int | None = None) -> None:
        super().__init__(verbose=verbose)
        self._dir = tempfile.TemporaryDirectory(prefix="vgi-conformance-")
        self._pid_file = os.path.join(self._dir.name, "worker.pid")
        self.name = cmd[0]
        wrapped = [_SHELL, "-c", _PID_WRAPPER, "conformance-worker", self._pid_file, *cmd]
        self._connected = connect(
            _PROTOCOL[0],
            wrapped,
            on_log=self._on_log,
            stderr=StderrMode.PIPE,
            stderr_logger=logging.getLogger("conformance.worker.stderr"),
            shm_size=shm_size,
        )
        self.proxy = self._connected.__enter__()

    def pid(self) -> int | None:
        """The worker's pid, once its wrapper has recorded it."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                with open(self._pid_file) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return None

    def kill(self) -> None:
        """Kill the worker process outright (it may be hung)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Shut the worker down: politely first, by force when that stalls."""
        if not self._close_politely():
            self.kill()
            self._close_politely()
        self._dir.cleanup()


class SocketWorker(_Connection):
    """A connection to an already running worker on a unix socket or TCP (nothing to spawn)."""

    def __init__(self, address: str, *, unix: bool, verbose: bool) -> None:
        super().__init__(verbose=verbose)
        self.name = address
        self.transport = "unix" if unix else "tcp"
        if unix:
            self._connected = unix_connect(_PROTOCOL[0], address, on_log=self._on_log)
        else:
            host, _, port = address.rpartition(":")
            self._connected = tcp_connect(
                _PROTOCOL[0], host or "127.0.0.1", int(port), on_log=self._on_log
            )
        self.proxy = self._connected.__enter__()


class HttpWorker(_Connection):
    """A connection to an already running worker over HTTP."""

    def __init__(self, url: str, prefix: str, *, verbose: bool) -> None:
        from vgi_rpc.http import http_connect

        super().__init__(verbose=verbose)
        self.name = url + prefix
        self.transport = "http"
        self._connected = http_connect(_PROTOCOL[0], url, prefix=prefix, on_log=self._on_log)
        self.proxy = self._connected.__enter__()


@dataclass
class Result:
    """The outcome of one scenario."""

    scenario: Scenario
    status: str
    duration_ms: float
    message: str = ""

    def as_json(self) -> dict[str, object]:
        """The JSON form of this result."""
        return {
            "name": self.scenario.full_name,
            "category": self.scenario.category,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "message": self.message or None,
        }


def _outcome(scenario: Scenario, ctx: Ctx, verbose: bool) -> tuple[str, str]:
    try:
        scenario.fn(ctx)
    except SkipError as exc:
        return SKIP, str(exc)
    except CheckError as exc:
        return FAIL, str(exc)
    except RpcError as exc:
        text = f"unexpected RpcError {exc.error_type}: {exc.error_message}"
        if verbose and exc.remote_traceback:
            text += "\n" + exc.remote_traceback.rstrip()
        return FAIL, text
    except Exception as exc:
        return FAIL, f"unexpected {type(exc).__name__}: {exc}"
    return PASS, "; ".join(ctx.notes)


def run_scenario(
    worker: _Connection, scenario: Scenario, timeout: float | None, verbose: bool
) -> Result:
    """Run one scenario on a thread; ``timeout`` seconds at most (``None``: no limit)."""
    ctx = Ctx(proxy=worker.proxy, transport=worker.transport)
    worker.sink = ctx.logs
    outcome: list[tuple[str, str]] = []

    def body() -> None:
        outcome.append(_outcome(scenario, ctx, verbose))

    thread = threading.Thread(target=body, name=f"scenario-{scenario.full_name}", daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(timeout)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    if thread.is_alive():
        worker.kill()
        thread.join(GRACE)
        return Result(scenario, FAIL, elapsed_ms, f"timed out after {timeout:g} s; worker killed")
    status, message = outcome[0] if outcome else (FAIL, "the scenario thread died without a result")
    # errors about the worker name the pid-recording shell; name the real command instead
    message = message.replace(f"worker {_SHELL!r}", f"worker {worker.name!r}")
    return Result(scenario, status, elapsed_ms, message)


def matches(scenario: Scenario, pattern: str) -> bool:
    """Whether a glob matches the scenario's ``category.name`` (or its bare category)."""
    return fnmatch.fnmatchcase(scenario.full_name, pattern) or fnmatch.fnmatchcase(
        scenario.category, pattern
    )


def select(scenarios: Sequence[Scenario], filter_text: str | None) -> list[Scenario]:
    """Apply a comma-separated filter: globs include, ``!globs`` exclude."""
    patterns = [p.strip() for p in (filter_text or "").split(",") if p.strip()]
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    return [
        s
        for s in scenarios
        if (not include or any(matches(s, p) for p in include))
        and not any(matches(s, p) for p in exclude)
    ]


def summary_line(results: Sequence[Result]) -> str:
    """``N passed, N failed`` plus ``, N skipped`` when any were skipped."""
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, SKIP)}
    line = f"{counts[PASS]} passed, {counts[FAIL]} failed"
    if counts[SKIP]:
        line += f", {counts[SKIP]} skipped"
    return line


def print_row(result: Result, out: TextIO) -> None:
    """One table row, with the failure or skip reason indented below it."""
    print(
        f"  {result.scenario.full_name:<52} {result.status}  {result.duration_ms:>9.1f} ms",
        file=out,
    )
    for line in result.message.splitlines():
        print(f"      {line}", file=out)
    out.flush()


def run_all(
    make_worker: Callable[[], _Connection],
    scenarios: Sequence[Scenario],
    args: argparse.Namespace,
    out: TextIO,
) -> list[Result]:
    """Run every scenario against one worker, replacing it after a failure or a timeout."""
    results: list[Result] = []
    worker: _Connection | None = None
    try:
        for scenario in scenarios:
            if worker is None:
                try:
                    worker = make_worker()
                except Exception as exc:
                    result = Result(scenario, FAIL, 0.0, f"cannot start the worker: {exc}")
                    results.append(result)
                    if args.format == "table":
                        print_row(result, out)
                    continue
            limit = None
            if args.timeout > 0:
                limit = max(args.timeout, scenario.timeout or 0.0)
            result = run_scenario(worker, scenario, limit, args.verbose)
            if result.status == PASS:
                try:
                    worker.close_stray_stream()
                except Exception as exc:
                    result.status, result.message = FAIL, f"closing a leftover stream failed: {exc}"
            if result.status == FAIL:
                worker.stop()
                worker = None
            results.append(result)
            if args.format == "table":
                print_row(result, out)
    finally:
        if worker is not None:
            worker.stop()
    return results


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="conformance/run.py",
        description="Run the vgi-rpc conformance scenarios against a ConformanceService worker.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cmd", "-c", help="worker command line (split with shlex)")
    where.add_argument("--unix", metavar="PATH", help="a running worker's unix socket")
    where.add_argument("--tcp", metavar="HOST:PORT", help="a running worker's TCP address")
    where.add_argument("--url", "-u", help="a running worker's HTTP base URL")
    parser.add_argument(
        "--prefix", default="", help="with --url: the server's URL prefix (default: none)"
    )
    parser.add_argument(
        "--shm",
        type=int,
        metavar="SIZE",
        help="with --cmd: give each worker a shared-memory segment of SIZE bytes",
    )
    parser.add_argument(
        "--filter", "-k", help="comma-separated globs over category.name; prefix ! to exclude"
    )
    parser.add_argument("--format", "-f", choices=("table", "json"), default="table")
    parser.add_argument(
        "--protocol-version",
        choices=("1", "2"),
        default="1",
        help="speak ConformanceService 1.0.0 (reference 0.42 workers) or 2.0.0 (0.52)",
    )
    parser.add_argument(
        "--list", "-l", action="store_true", help="list the selected tests and exit"
    )
    parser.add_argument(
        "--timeout",
        "-t",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"per-test timeout in seconds, 0 for none (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show server logs, worker stderr, tracebacks"
    )
    return parser


def _worker_factory(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Callable[[], _Connection]:
    if args.shm is not None and not args.cmd:
        parser.error("--shm needs --cmd (shared memory is for subprocess workers)")
    if args.url:
        return lambda: HttpWorker(args.url, args.prefix, verbose=args.verbose)
    if args.unix:
        return lambda: SocketWorker(args.unix, unix=True, verbose=args.verbose)
    if args.tcp:
        return lambda: SocketWorker(args.tcp, unix=False, verbose=args.verbose)
    if not args.cmd:
        parser.error("one of --cmd, --unix, --tcp or --url is required (unless --list)")
    try:
        cmd = shlex.split(args.cmd)
    except ValueError as exc:
        parser.error(f"--cmd: {exc}")
    if not cmd:
        parser.error("--cmd is empty")
    if shutil.which(cmd[0]) is None:
        parser.error(f"--cmd: executable {cmd[0]!r} not found")
    return lambda: Worker(cmd, verbose=args.verbose, shm_size=args.shm)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _PROTOCOL[0] = ConformanceServiceV2 if args.protocol_version == "2" else ConformanceService
    selected = select(all_scenarios(), args.filter)
    if args.list:
        for s in selected:
            print(s.full_name)
        return 0
    if args.timeout < 0:
        parser.error("--timeout must be >= 0")
    make_worker = _worker_factory(parser, args)
    if not selected:
        print(f"no tests match --filter {args.filter!r}", file=sys.stderr)
        return 1
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="    [%(name)s] %(message)s"
        )

    started = time.perf_counter()
    results = run_all(make_worker, selected, args, sys.stdout)
    total_ms = (time.perf_counter() - started) * 1000.0
    line = summary_line(results)
    if args.format == "json":
        totals = {
            status.lower(): sum(r.status == status for r in results)
            for status in (PASS, FAIL, SKIP)
        }
        report = {
            "worker": args.cmd or args.unix or args.tcp or args.url,
            "results": [r.as_json() for r in results],
            "totals": {
                "total": len(results),
                "passed": totals["pass"],
                "failed": totals["fail"],
                "skipped": totals["skip"],
            },
            "summary": line,
            "duration_ms": round(total_ms, 3),
        }
        print(json.dumps(report, indent=2))
    else:
        print(line)
    failed = any(r.status == FAIL for r in results)
    passed = any(r.status == PASS for r in results)
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
