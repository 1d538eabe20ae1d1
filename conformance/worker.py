"""Serve the ConformanceService: ``python conformance/worker.py [--pipe]``.

Transports beyond the pipe arrive with their issues; the command line is
already shaped for them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conformance.impl import ConformanceImpl
from conformance.protocol import ConformanceService
from vgi_rpc import RpcServer, run_server, serve_tcp, serve_unix
from vgi_rpc.access_log import configure_access_log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="vgi_rpc conformance worker")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pipe", action="store_true", help="serve on stdin/stdout (default)")
    where.add_argument("--unix", metavar="PATH", help="serve on a unix socket (prints UNIX:<path>)")
    where.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        help="serve on TCP, loopback by default (prints TCP:<host>:<port>)",
    )
    parser.add_argument(
        "--threaded", action="store_true", help="unix/tcp: one thread per connection"
    )
    parser.add_argument(
        "--max-connections", type=int, metavar="N", help="with --threaded: connection cap"
    )
    parser.add_argument("--describe", action="store_true", help="answer __describe__")
    parser.add_argument("--access-log", metavar="PATH", help="append JSON-lines access records")
    parser.add_argument("--access-log-debug", action="store_true", help="also log request_data")
    args = parser.parse_args(argv)
    if args.access_log:
        configure_access_log(args.access_log)
        if args.access_log_debug:
            logging.getLogger("vgi_rpc.access").setLevel(logging.DEBUG)
    server = RpcServer(ConformanceService, ConformanceImpl(), enable_describe=args.describe)
    options = {"threaded": args.threaded, "max_connections": args.max_connections}
    if args.unix:
        print(f"UNIX:{args.unix}", flush=True)
        serve_unix(server, args.unix, **options)
    elif args.tcp:
        host, _, port = args.tcp.rpartition(":")
        serve_tcp(
            server,
            host or "127.0.0.1",
            int(port),
            on_bound=lambda h, p: print(f"TCP:{h}:{p}", flush=True),
            **options,
        )
    else:
        run_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
