"""HTTP transport (wire spec section 10): a falcon WSGI app and an httpx client.

Install with the ``http`` extra: ``pip install 'vgi_rpc[http]'``.
"""

from vgi_rpc.http._app import ARROW_CONTENT_TYPE, make_wsgi_app
from vgi_rpc.http._auth import AuthFailure
from vgi_rpc.http._capabilities import HttpCapabilities, http_capabilities
from vgi_rpc.http._client import (
    HttpConnection,
    HttpError,
    HttpStreamSession,
    HttpTransport,
    HttpUnauthorizedError,
    http_connect,
    http_introspect,
)
from vgi_rpc.http._replay import InMemorySpentCursors, SpentCursorStore
from vgi_rpc.http._seal import TokenError
from vgi_rpc.http._serve import serve_command, serve_http, serve_in_thread, waitress_options

__all__ = [
    "ARROW_CONTENT_TYPE",
    "AuthFailure",
    "HttpCapabilities",
    "HttpConnection",
    "HttpError",
    "HttpStreamSession",
    "HttpTransport",
    "HttpUnauthorizedError",
    "InMemorySpentCursors",
    "SpentCursorStore",
    "TokenError",
    "http_capabilities",
    "http_connect",
    "http_introspect",
    "make_wsgi_app",
    "serve_command",
    "serve_http",
    "serve_in_thread",
    "waitress_options",
]
