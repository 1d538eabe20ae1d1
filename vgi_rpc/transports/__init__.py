"""Byte transports: in-process pipes and subprocess workers."""

from vgi_rpc.transports._fd import FdChannel
from vgi_rpc.transports._pipe import make_pipe_pair, serve_pipe
from vgi_rpc.transports._subprocess import StderrMode, WorkerProcess, connect, run_server

__all__ = [
    "FdChannel",
    "StderrMode",
    "WorkerProcess",
    "connect",
    "make_pipe_pair",
    "run_server",
    "serve_pipe",
]
