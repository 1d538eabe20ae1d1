"""Serve the conformance protocols over a pipe (default), a unix or TCP socket, or HTTP.

``python conformance/worker.py [--pipe | --unix PATH | --tcp [HOST:]PORT | --http PORT]``

Second-generation requests (they name their protocol) reach ConformanceService
2.0.0 or ``conformance.Secondary.v1``; first-generation requests (no protocol
key) are served ConformanceService 1.0.0. ``--describe`` also answers the
first generation's ``__describe__`` and hosts ``vgi_rpc.Reflection.v1``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conformance.impl import ConformanceImpl
from conformance.protocol import ConformanceService, ConformanceServiceV2
from conformance.secondary import Secondary, SecondaryImpl
from vgi_rpc import RpcServer, run_server, serve_tcp, serve_unix
from vgi_rpc.access_log import configure_access_log
from vgi_rpc.options import add_limit_options, limits_from_options, tracebacks_from_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="vgi_rpc conformance worker")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pipe", action="store_true", help="serve on stdin/stdout (default)")
    where.add_argument("--unix", metavar="PATH", help="serve on a unix socket (prints UNIX:<path>)")
    where.add_argument(
        "--http",
        metavar="PORT",
        type=int,
        help="serve HTTP on 127.0.0.1:PORT at --prefix (0 picks a port; prints PORT:<n>)",
    )
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
    parser.add_argument(
        "--describe",
        action="store_true",
        help="answer __describe__ and host vgi_rpc.Reflection.v1",
    )
    parser.add_argument("--prefix", default="/vgi", help="--http: URL prefix (default /vgi)")
    parser.add_argument(
        "--max-response-bytes",
        type=int,
        metavar="N",
        help="--http: response body cap (producers continue past it, others fail)",
    )
    parser.add_argument(
        "--signing-key",
        default=os.environ.get("VGI_RPC_SIGNING_KEY"),
        help="--http: stream token key (default: $VGI_RPC_SIGNING_KEY, else random)",
    )
    add_limit_options(parser)
    parser.add_argument("--access-log", metavar="PATH", help="append JSON-lines access records")
    parser.add_argument("--access-log-debug", action="store_true", help="also log request_data")
    args = parser.parse_args(argv)
    if args.access_log:
        configure_access_log(args.access_log)
        if args.access_log_debug:
            logging.getLogger("vgi_rpc.access").setLevel(logging.DEBUG)
    limits = limits_from_options(args)
    impl = ConformanceImpl()
    server = RpcServer(
        {ConformanceServiceV2: impl, Secondary: SecondaryImpl()},
        default_protocol=(ConformanceService, impl),
        enable_describe=args.describe,
        limits=limits,
        expose_tracebacks=tracebacks_from_options(args),
    )
    options = {"threaded": args.threaded, "max_connections": args.max_connections}
    if args.http is not None:
        from vgi_rpc.http import make_wsgi_app
        from vgi_rpc.http._serve import serve_http

        app = make_wsgi_app(
            server,
            prefix=args.prefix,
            signing_key=args.signing_key.encode() if args.signing_key else None,
            max_stream_response_bytes=args.max_response_bytes,
        )
        serve_http(
            app,
            port=args.http,
            on_bound=lambda h, p: print(f"PORT:{p}", flush=True),
            max_request_bytes=limits.max_request_bytes,
        )
    elif args.unix:
        serve_unix(
            server, args.unix, on_bound=lambda path: print(f"UNIX:{path}", flush=True), **options
        )
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
