"""``vgi-rpc objectstore serve``: the command line of the object store server."""

from __future__ import annotations

import argparse
import sys

from vgi_rpc.services.objectstore._serve import parse_size, serve
from vgi_rpc.services.objectstore.client import default_socket
from vgi_rpc.services.objectstore.server import WARM_IDLE


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``objectstore serve`` to the ``vgi-rpc`` command line (runs ``args.run(args)``)."""
    parser = commands.add_parser("objectstore", help="the object store service")
    sub = parser.add_subparsers(dest="objectstore_command", required=True)
    serve_parser = sub.add_parser(
        "serve",
        help="serve an object store",
        description=f"Serve an object store (default: a unix socket at {default_socket()}).",
    )
    serve_parser.add_argument("--socket", metavar="PATH", help="unix socket (zero-copy clients)")
    serve_parser.add_argument("--http", metavar="HOST:PORT", type=_address, help="HTTP at /vgi")
    serve_parser.add_argument("--tcp", metavar="HOST:PORT", type=_address, help="raw TCP")
    serve_parser.add_argument(
        "--memory", type=_size, default=2 << 30, help="shared-memory limit (default 2GiB)"
    )
    serve_parser.add_argument(
        "--warm",
        type=_size,
        help="deleted objects' memory kept for later puts, given back after --warm-idle "
        "(default: a quarter of --memory, at most 1GiB; 0: give it back at once)",
    )
    serve_parser.add_argument(
        "--warm-idle",
        type=float,
        default=WARM_IDLE,
        metavar="SECONDS",
        help=f"unused warm memory is given back after this long (default {WARM_IDLE:g})",
    )
    serve_parser.add_argument(
        "--store",
        metavar="DIR|URI",
        help="where persisted objects live (default ~/.local/share/vgi-objectstore)",
    )
    serve_parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        serve(
            socket=args.socket,
            tcp=args.tcp,
            http=args.http,
            memory=args.memory,
            store=args.store,
            warm=args.warm,
            warm_idle=args.warm_idle,
        )
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"vgi-rpc objectstore serve: {exc}\n")
        return 1
    return 0


__all__ = ["register"]
