"""Byte transports: in-process pipes, subprocess workers, unix and TCP sockets, shared memory."""

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
from vgi_rpc.transports._subprocess import StderrMode, WorkerProcess, connect, run_server

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
