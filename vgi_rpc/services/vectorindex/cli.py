"""Command line: ``vgi-rpc vectorindex serve`` and ``python -m vgi_rpc.services.vectorindex``.

Owns argument parsing and picking the transport; imports the service (and so
faiss) only when a command runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def default_store() -> str:
    """The embedded default store: ``$VGI_VECTORINDEX_STORE`` or ``~/.local/share/vgi-vectorindex``."""
    return os.environ.get("VGI_VECTORINDEX_STORE") or os.path.expanduser(
        "~/.local/share/vgi-vectorindex"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (also those of ``python -m vgi_rpc.services.vectorindex``)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", help="serve on a unix socket")
    where.add_argument("--http", metavar="HOST:PORT", type=_host_port, help="serve HTTP (waitress)")
    where.add_argument("--tcp", metavar="HOST:PORT", type=_host_port, help="serve raw TCP")
    parser.add_argument(
        "--store", default=None, help="snapshot store: a directory or s3://bucket/prefix"
    )
    parser.add_argument("--wal", metavar="DIR", help="local log directory (default: in --store)")
    parser.add_argument("--prefix", default="/vgi", help="with --http: URL prefix")
    parser.add_argument("--rebuild-fraction", type=float, default=0.2, metavar="F")
    parser.add_argument("--snapshot-rows", type=int, default=200_000, metavar="N")


def add_vectorindex_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``vectorindex serve`` on the ``vgi-rpc`` command."""
    command = subparsers.add_parser("vectorindex", help="the vector index service")
    actions = command.add_subparsers(dest="vectorindex_command", required=True)
    serve = actions.add_parser("serve", help="serve a vector index (default: over stdin/stdout)")
    add_arguments(serve)


def serve(args: argparse.Namespace) -> int:
    """Run the service with the parsed options until stopped; return the exit status."""
    from vgi_rpc import RpcServer, run_server, serve_tcp, unix_server
    from vgi_rpc.services.vectorindex.protocol import VectorIndex
    from vgi_rpc.services.vectorindex.server import VectorIndexService

    service = VectorIndexService(
        args.store or default_store(),
        args.wal,
        rebuild_fraction=args.rebuild_fraction,
        snapshot_rows=args.snapshot_rows,
    )
    server = RpcServer(VectorIndex, service, enable_describe=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # snapshot and close on SIGTERM
    try:
        if args.socket:
            listening = unix_server(server, args.socket, threaded=True)
            print(f"UNIX:{listening.address}", file=sys.stderr, flush=True)
            try:
                listening.serve_forever()
            finally:
                listening.close()
        elif args.tcp:

            def bound(host: str, port: int) -> None:
                print(f"TCP:{host}:{port}", file=sys.stderr, flush=True)

            serve_tcp(server, *args.tcp, threaded=True, on_bound=bound)
        elif args.http:
            from vgi_rpc.http import make_wsgi_app, serve_http

            # one process serves here, so a per-process key is right unless the user set one
            key = os.environ.get("VGI_RPC_SIGNING_KEY", "").encode() or os.urandom(32)
            app = make_wsgi_app(server, prefix=args.prefix, signing_key=key)

            def bound_http(host: str, port: int) -> None:
                print(f"HTTP:http://{host}:{port}", file=sys.stderr, flush=True)

            serve_http(app, host=args.http[0], port=args.http[1], on_bound=bound_http)
        else:
            run_server(server)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        service.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vgi_rpc.services.vectorindex [--store DIR] [--socket P | --tcp H:P | --http H:P]``."""
    parser = argparse.ArgumentParser(
        prog="python -m vgi_rpc.services.vectorindex",
        description="Serve the vector index (over stdin/stdout unless a socket is given).",
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))
