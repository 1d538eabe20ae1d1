"""Shared pieces of the measurement children (``_unary_child.py``, ``_streams_child.py``).

A child runs under ONE side's virtualenv (ours or the reference, both imported
as ``vgi_rpc``) and uses only public API the two packages share.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import vgi_rpc
from vgi_rpc import connect, serve_pipe


def log(msg: str) -> None:
    """Progress on stderr (stdout carries the JSON result)."""
    print(f"[child] {msg}", file=sys.stderr, flush=True)


def own_cpu_s() -> float:
    """CPU time (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def own_minor_faults() -> int:
    """Minor page faults of this process so far, all threads."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child_pids() -> list[int]:
    """Direct children of this process (Linux ``/proc``); empty where unavailable."""
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
    return pids


def _proc_stat(pid: int | None) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 onwards)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _schedstat_cpu_s(pid: int) -> float | None:
    """On-CPU time of all threads of ``pid`` in ns resolution (``/proc/PID/task/*/schedstat``)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def proc_cpu_s(pid: int | None) -> float | None:
    """CPU time (user + system) of another process.

    From ``/proc/PID/task/*/schedstat`` (nanoseconds) where the kernel has it,
    else ``/proc/PID/stat`` (clock ticks, usually 10 ms).
    """
    if pid is None:
        return None
    precise = _schedstat_cpu_s(pid)
    if precise is not None:
        return precise
    fields = _proc_stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_minor_faults(pid: int | None) -> int | None:
    """Minor page faults of another process, from ``/proc/PID/stat``."""
    fields = _proc_stat(pid)
    return None if fields is None else int(fields[7])


@contextlib.contextmanager
def open_proxy(
    transport: str, protocol: type[Any], implementation: object, worker: str
) -> Iterator[tuple[Any, int | None]]:
    """Yield (proxy, server pid or None when the server is a thread of this process).

    ``pipe`` serves ``implementation`` on a thread (``serve_pipe``);
    ``subprocess`` starts ``python worker`` and talks to it (``connect``);
    ``pool`` borrows the worker from a ``WorkerPool`` with its defaults;
    ``http`` serves the worker with its package's ``serve_http``.
    """
    if transport == "pipe":
        with serve_pipe(protocol, implementation) as proxy:
            yield proxy, None
    elif transport == "subprocess":
        before = set(child_pids())
        cmd = [sys.executable, "-E", "-s", worker]
        with connect(protocol, cmd) as proxy:
            new = [p for p in child_pids() if p not in before]
            yield proxy, (new[0] if len(new) == 1 else None)
    elif transport == "pool":
        before = set(child_pids())
        cmd = [sys.executable, "-E", "-s", worker]
        with vgi_rpc.WorkerPool() as pool, pool.connect(protocol, cmd) as proxy:
            new = [p for p in child_pids() if p not in before]
            yield proxy, (new[0] if len(new) == 1 else None)
    elif transport == "http":
        with http_worker([sys.executable, "-E", "-s", worker]) as (url, pid):
            from vgi_rpc.http import http_connect

            with http_connect(protocol, url, prefix="") as proxy:
                yield proxy, pid
    else:
        raise ValueError(transport)


@contextlib.contextmanager
def http_worker(cmd: list[str]) -> Iterator[tuple[str, int]]:
    """Start ``cmd --http`` (a worker calling ``serve_http_worker``); yield its URL and pid."""
    proc = subprocess.Popen([*cmd, "--http"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("PORT:"):
            raise RuntimeError(f"worker printed {line!r}")
        port = int(line[5:])
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def serve_http_worker(server: Any) -> None:
    """Serve ``server`` with its package's own ``serve_http`` (waitress as each sets it up).

    At the root path; prints ``PORT:<n>`` once listening (the reference's
    ``serve_http`` prints it itself; ours takes a WSGI app and reports the port).
    """
    import inspect

    from vgi_rpc.http import serve_http

    if "on_bound" in inspect.signature(serve_http).parameters:  # ours
        from vgi_rpc.http import make_wsgi_app

        serve_http(
            make_wsgi_app(server, prefix=""),
            port=0,
            on_bound=lambda host, port: print(f"PORT:{port}", flush=True),
        )
    else:
        serve_http(server, port=0)


def package_info() -> dict[str, str]:
    """Which ``vgi_rpc``, pyarrow and Python this child measures."""
    from importlib import metadata

    version = "?"
    for dist in ("vgi_rpc", "vgi-rpc"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            version = metadata.version(dist)
            break
    import pyarrow

    return {
        "vgi_rpc_file": vgi_rpc.__file__ or "?",
        "vgi_rpc_version": version,
        "pyarrow_version": pyarrow.__version__,
        "python": platform.python_version(),
        "executable": sys.executable,
    }


def cpu_affinity() -> list[int]:
    """CPUs this process may run on (empty where unknown)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
