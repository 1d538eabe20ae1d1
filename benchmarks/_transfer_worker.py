"""Server for the transfer benchmark: ``python _transfer_worker.py [--unix PATH | --tcp HOST:PORT | --http]``.

Serves :class:`TransferBench` (echo streams) on stdin/stdout,
a unix socket or TCP, with whichever ``vgi_rpc`` the interpreter has. On a
socket it prints ``UNIX:<path>`` or ``TCP:<host>:<port>`` once listening.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _child_common import serve_http_worker
from _transfer_service import TransferBench, TransferBenchImpl

import vgi_rpc
from vgi_rpc import RpcServer, run_server


def main() -> None:
    args = sys.argv[1:]
    if not args or not hasattr(vgi_rpc, "serve_unix"):
        # stdin/stdout for both; the reference's run_server also parses --unix/--tcp
        # itself and prints the same UNIX:/TCP: line.
        run_server(TransferBench, TransferBenchImpl())
        return
    server = RpcServer(TransferBench, TransferBenchImpl())
    if args[0] == "--unix":
        print(f"UNIX:{args[1]}", flush=True)
        vgi_rpc.serve_unix(server, args[1])
    elif args[0] == "--http":
        serve_http_worker(server)
    elif args[0] == "--tcp":
        host, _, port = args[1].rpartition(":")
        vgi_rpc.serve_tcp(
            server, host, int(port), on_bound=lambda h, p: print(f"TCP:{h}:{p}", flush=True)
        )
    else:
        raise SystemExit(f"unknown option {args[0]!r}")


if __name__ == "__main__":
    main()
