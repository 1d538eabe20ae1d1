"""The ``vgi-rpc`` command: describe a service, call its methods, list loggers, or serve one.

    vgi-rpc --cmd "python worker.py" describe
    vgi-rpc --url http://127.0.0.1:8000 --prefix /vgi call add a=1 b=2
    vgi-rpc --unix /tmp/w.sock --format json call countdown n=3
    vgi-rpc call add --cmd "python worker.py" --json '{"a": 1, "b": 2}'
    vgi-rpc --cmd "python worker.py" call running_sum --input rows.jsonl
    vgi-rpc loggers
    vgi-rpc serve module:Protocol module:Implementation [--port 8000] [--host 127.0.0.1]
    vgi-rpc vectorindex serve [--socket PATH | --http HOST:PORT | --tcp HOST:PORT] [--store DIR]

Transport and output options (``--cmd/--unix/--url``, ``--prefix``,
``--format auto|table|json|arrow``, ``--output FILE``, ``--verbose``,
``--debug``, ``--log-level``) go before the sub-command or after it. Works
against any worker that answers ``__describe__`` (ours with
``enable_describe=True``, or another implementation's).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from vgi_rpc._errors import RpcError, VgiRpcError
from vgi_rpc.cli._calls import describe, hosted_protocols, open_target, run_call
from vgi_rpc.cli._output import FORMATS, Output, StreamPrinter, print_describe, print_error
from vgi_rpc.cli._output import print_loggers as _print_loggers
from vgi_rpc.cli._values import UsageError, build_request
from vgi_rpc.options import add_limit_options

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _client_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options ``describe``/``call``/``loggers`` share; ``suppress``: keep the top level's value unless given."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--cmd", "-c", default=default(None), help="worker command (stdin/stdout)")
    parser.add_argument("--unix", default=default(None), metavar="PATH", help="unix socket path")
    parser.add_argument("--url", "-u", default=default(None), help="HTTP base URL")
    parser.add_argument(
        "--prefix", "-p", default=default("/vgi"), help="with --url: URL prefix (default /vgi)"
    )
    parser.add_argument(
        "--format", "-f", choices=FORMATS, default=default("auto"), help="output format"
    )
    parser.add_argument(
        "--output", "-o", default=default(None), metavar="FILE", help="write output to FILE"
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=default(False),
        help="show the server's log messages (and a worker's stderr) on stderr",
    )
    parser.add_argument(
        "--debug", action="store_true", default=default(False), help="DEBUG vgi_rpc logs on stderr"
    )
    parser.add_argument("--log-level", choices=_LEVELS, default=default(None), help="vgi_rpc logs")
    parser.add_argument(
        "--log-logger",
        action="append",
        default=default(None),
        metavar="NAME",
        help="with --log-level/--debug: only this logger (repeatable)",
    )


def _parser() -> argparse.ArgumentParser:
    from vgi_rpc import __version__

    parser = argparse.ArgumentParser(
        prog="vgi-rpc", description="Describe or call a vgi-rpc service."
    )
    parser.add_argument("--version", "-V", action="version", version=f"vgi-rpc {__version__}")
    _client_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _client_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("describe", parents=[common], help="list the service's methods")
    call = sub.add_parser("call", parents=[common], help="call a method")
    call.add_argument("method")
    call.add_argument("assignments", nargs="*", metavar="key=value")
    call.add_argument(
        "--json", "-j", metavar="JSON", help='parameters as one JSON object: {"a": 1}'
    )
    call.add_argument(
        "--input",
        "-i",
        metavar="FILE",
        help="exchange input: an Arrow IPC stream or JSON lines (default: JSON lines on stdin)",
    )
    sub.add_parser("loggers", parents=[common], help="list the logger names vgi_rpc uses")
    serve = sub.add_parser("serve", help="serve an implementation over HTTP (waitress)")
    serve.add_argument("protocol", metavar="module:Protocol")
    serve.add_argument("implementation", metavar="module:Implementation")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    serve.add_argument("--prefix", default="/vgi", help="URL prefix (default /vgi)")
    serve.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    serve.add_argument("--describe", action="store_true", help="answer __describe__")
    serve.add_argument("--max-response-bytes", type=int, metavar="N")
    serve.add_argument(
        "--no-page",
        dest="service_page",
        action="store_false",
        help="do not serve the HTML service page at GET {prefix}/",
    )
    add_limit_options(serve)
    from vgi_rpc.services.vectorindex.cli import add_vectorindex_command

    add_vectorindex_command(sub)
    with contextlib.suppress(ImportError):  # the services extra (numpy) may be absent
        from vgi_rpc.services.objectstore import register_cli as register_objectstore

        register_objectstore(sub)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level = "DEBUG" if args.debug else args.log_level
    if level is None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)-24s %(levelname)-7s %(message)s"))
    for name in args.log_logger or ["vgi_rpc"]:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)


def _serve(args: argparse.Namespace) -> int:
    from vgi_rpc.http import serve_command

    try:
        serve_command(args)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        sys.stderr.write(f"vgi-rpc serve: {exc}\n")
        return 2
    return 0


def _client(args: argparse.Namespace, output: Output, stdin: TextIO) -> int:
    if args.command == "loggers":
        _print_loggers(output)
        return 0
    conn, close = open_target(args)
    try:
        description = describe(conn)
        if args.command == "describe":
            print_describe(output, description, hosted_protocols(conn))
            return 0
        with contextlib.ExitStack() as stack:
            if output.format == "arrow":
                printer = StreamPrinter(output, None, stack.enter_context(output.binary()))
            else:
                printer = StreamPrinter(output, stack.enter_context(output.text()), None)
            stack.callback(printer.close)
            run_call(conn, description, args, printer, stdin)
        return 0
    finally:
        close()


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Entry point of the ``vgi-rpc`` console script; returns the exit status.

    ``out`` and ``stdin`` stand in for the process's streams (tests).
    """
    out = out or sys.stdout
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # ``call m -v a=1``: argparse ends the positionals at the option; take the rest back
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray or (extra and args.command != "call"):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.assignments = [*args.assignments, *extra]
    if getattr(args, "run", None) is not None:  # a service's sub-command
        return int(args.run(args))
    if args.command == "serve":
        return _serve(args)
    if args.command == "vectorindex":
        from vgi_rpc.services.vectorindex.cli import serve as serve_vectorindex

        return serve_vectorindex(args)
    _configure_logging(args)
    output = Output(args.format, args.output, out)
    try:
        return _client(args, output, stdin or sys.stdin)
    except UsageError as exc:
        sys.stderr.write(f"vgi-rpc: {exc}\n")
        return 2
    except RpcError as exc:
        print_error(output, exc)
        return 1
    except VgiRpcError as exc:
        sys.stderr.write(f"vgi-rpc: {type(exc).__name__}: {exc}\n")
        return 1


__all__ = ["UsageError", "build_request", "main"]
