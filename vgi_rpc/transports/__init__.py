"""Byte transports: in-process pipes, subprocess workers, unix and TCP sockets, shared memory.

Every name is imported on first use: a worker loads its stdio loop only.
"""

from vgi_rpc._lazy import lazy_module

TYPE_CHECKING = False  # not ``typing``'s: see vgi_rpc/__init__.py

if TYPE_CHECKING:
    from vgi_rpc.transports._fd import FdChannel
    from vgi_rpc.transports._pipe import make_pipe_pair, serve_pipe
    from vgi_rpc.transports._pool import PoolMetrics, WorkerPool
    from vgi_rpc.transports._shm import ShmPipeTransport
    from vgi_rpc.transports._socket import (
        SocketChannel,
        SocketServer,
        serve_tcp,
        serve_unix,
        tcp_connect,
        tcp_server,
        unix_connect,
        unix_server,
    )
    from vgi_rpc.transports._stdio import run_server
    from vgi_rpc.transports._subprocess import StderrMode, WorkerProcess, connect

__getattr__, __dir__ = lazy_module(
    __name__,
    {
        "vgi_rpc.transports._fd": ("FdChannel",),
        "vgi_rpc.transports._pipe": ("make_pipe_pair", "serve_pipe"),
        "vgi_rpc.transports._pool": ("PoolMetrics", "WorkerPool"),
        "vgi_rpc.transports._shm": ("ShmPipeTransport",),
        "vgi_rpc.transports._socket": (
            "SocketChannel",
            "SocketServer",
            "serve_tcp",
            "serve_unix",
            "tcp_connect",
            "tcp_server",
            "unix_connect",
            "unix_server",
        ),
        "vgi_rpc.transports._stdio": ("run_server",),
        "vgi_rpc.transports._subprocess": ("StderrMode", "WorkerProcess", "connect"),
    },
)

__all__ = [
    "FdChannel",
    "PoolMetrics",
    "ShmPipeTransport",
    "SocketChannel",
    "SocketServer",
    "StderrMode",
    "WorkerPool",
    "WorkerProcess",
    "connect",
    "make_pipe_pair",
    "run_server",
    "serve_pipe",
    "serve_tcp",
    "serve_unix",
    "tcp_connect",
    "tcp_server",
    "unix_connect",
    "unix_server",
]
