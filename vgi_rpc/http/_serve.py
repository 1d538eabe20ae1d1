"""Embedded serving: a WSGI app on waitress, loopback by default."""

from __future__ import annotations

import logging
from collections.abc import Callable

from vgi_rpc._logs import HTTP_LOGGER

_log = logging.getLogger(HTTP_LOGGER)


def serve_http(
    app: object,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 4,
    on_bound: Callable[[str, int], None] | None = None,
) -> None:
    """Serve a WSGI ``app`` with waitress until interrupted.

    ``port=0`` picks a free port; ``on_bound(host, port)`` is called once
    the socket is listening (before the first request is accepted).
    """
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident="vgi-rpc")
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


__all__ = ["serve_http"]
