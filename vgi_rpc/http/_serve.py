"""Embedded serving: a WSGI app on waitress, loopback by default (and ``vgi-rpc serve``)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator

from vgi_rpc._logs import HTTP_LOGGER

_log = logging.getLogger(HTTP_LOGGER)

# waitress's defaults suit small web pages: 8 KiB socket reads, and any body over
# 512 KiB (request) or 1 MiB (response) spooled through a temporary file. Arrow
# bodies are large and already in memory on the way out, so read in 1 MiB steps
# and keep bodies in memory up to a bound; past it a request still spools.
_IO_CHUNK = 1 << 20
_IN_MEMORY_REQUEST = 64 << 20  # per connection; waitress allows 100 connections
_IN_MEMORY_RESPONSE = 1 << 30  # the app holds the response in memory already


def waitress_options(max_request_bytes: int | None = None) -> dict[str, int]:
    """Settings for waitress that suit Arrow bodies; ``max_request_bytes`` refuses larger ones early."""
    options = {
        "recv_bytes": _IO_CHUNK,
        "inbuf_overflow": min(max_request_bytes or _IN_MEMORY_REQUEST, _IN_MEMORY_REQUEST)
        + _IO_CHUNK,
        "outbuf_overflow": _IN_MEMORY_RESPONSE,
    }
    if max_request_bytes is not None:
        options["max_request_body_size"] = max_request_bytes
    return options


def serve_http(
    app: object,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 4,
    on_bound: Callable[[str, int], None] | None = None,
    max_request_bytes: int | None = None,
) -> None:
    """Serve a WSGI ``app`` with waitress until interrupted.

    ``app`` may also be an ``RpcServer``, served by ``make_wsgi_app(app)``.
    ``port=0`` picks a free port; ``on_bound(host, port)`` is called once
    the socket is listening (before the first request is accepted).
    ``max_request_bytes`` (the app's cap) lets waitress refuse a larger body
    before it has received it.
    """
    from waitress.server import create_server

    from vgi_rpc.rpc import RpcServer

    if isinstance(app, RpcServer):
        from vgi_rpc.http._app import make_wsgi_app

        app = make_wsgi_app(app)
    from vgi_rpc.http._waitress_body import use_pooled_bodies

    options = waitress_options(max_request_bytes)
    server = create_server(app, host=host, port=port, threads=threads, ident="vgi-rpc", **options)
    use_pooled_bodies(server)
    bound_port = int(server.effective_port)
    _log.info("serving HTTP on http://%s:%d", host, bound_port)
    if on_bound is not None:
        on_bound(host, bound_port)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@contextlib.contextmanager
def serve_in_thread(
    app: object, *, host: str = "127.0.0.1", port: int = 0, threads: int = 4
) -> Iterator[str]:
    """Serve ``app`` with waitress on a background thread; yield its base URL.

    For tests, examples and embedding: the server stops when the block ends.
    """
    from waitress import wasyncore
    from waitress.server import create_server

    from vgi_rpc.http._waitress_body import use_pooled_bodies

    options = waitress_options()
    server = create_server(app, host=host, port=port, threads=threads, ident="vgi-rpc", **options)
    use_pooled_bodies(server)
    closing = threading.Event()

    def run() -> None:
        try:
            server.run()
        except (OSError, ValueError):
            # Closing the server under its own event loop can trip it on closed descriptors.
            if not closing.is_set():
                raise

    thread = threading.Thread(target=run, name="vgi-rpc-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        closing.set()
        # Let the worker threads finish the responses they are writing, then close.
        server.task_dispatcher.shutdown(timeout=10)
        server.close()
        thread.join(timeout=10)
        # The loop ends with connections still registered when it trips on a closed descriptor;
        # close them here rather than leave their sockets to the garbage collector.
        wasyncore.close_all(server._map)


def _load(spec: str) -> object:
    """``package.module:attribute`` -> the attribute."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected module:attribute, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AttributeError(f"module {module_name!r} has no attribute {attribute!r}") from None


def serve_command(args: argparse.Namespace) -> None:
    """``vgi-rpc serve``: build the app from the command line and serve it with waitress.

    The implementation may be a class (instantiated without arguments) or an
    instance. The signing key comes from ``VGI_RPC_SIGNING_KEY`` when set.
    """
    from vgi_rpc.http._app import make_wsgi_app
    from vgi_rpc.options import limits_from_options, tracebacks_from_options
    from vgi_rpc.rpc import RpcServer

    sys.path.insert(0, os.getcwd())
    protocol = _load(args.protocol)
    if not isinstance(protocol, type):
        raise TypeError(f"{args.protocol} is not a Protocol class")
    implementation = _load(args.implementation)
    if isinstance(implementation, type):
        implementation = implementation()
    key = os.environ.get("VGI_RPC_SIGNING_KEY")
    limits = limits_from_options(args)
    server = RpcServer(
        protocol,
        implementation,
        enable_describe=args.describe,
        limits=limits,
        expose_tracebacks=tracebacks_from_options(args),
    )
    app = make_wsgi_app(
        server,
        prefix=args.prefix,
        signing_key=key.encode() if key else None,
        max_stream_response_bytes=args.max_response_bytes,
        service_page=getattr(args, "service_page", True),
    )

    def announce(host: str, port: int) -> None:
        print(f"serving {protocol.__name__} on http://{host}:{port}{args.prefix}", flush=True)

    serve_http(
        app,
        host=args.host,
        port=args.port,
        threads=args.threads,
        on_bound=announce,
        max_request_bytes=limits.max_request_bytes,
    )


__all__ = ["serve_command", "serve_http", "serve_in_thread", "waitress_options"]
