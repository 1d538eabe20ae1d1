"""Shared pieces of the measurement children (``_unary_child.py``, ``_streams_child.py``).

A child runs under ONE side's virtualenv (ours or the reference, both imported
as ``vgi_rpc``) and uses only public API the two packages share.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
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
    ``subprocess`` starts ``python worker`` and talks to it (``connect``).
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
    else:
        raise ValueError(transport)


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
