"""HTTP transport (wire spec section 10): a falcon WSGI app and an httpx client.

Install with the ``http`` extra: ``pip install 'vgi_rpc[http]'``.
"""

from vgi_rpc._http_errors import (
    AuthenticationError,
    AuthFailure,
    HttpError,
    HttpNotFoundError,
    HttpUnauthorizedError,
    RequestTooLargeError,
    TokenError,
)
from vgi_rpc.http._app import ARROW_CONTENT_TYPE, make_wsgi_app
from vgi_rpc.http._capabilities import HttpCapabilities, http_capabilities
from vgi_rpc.http._client import (
    HttpConnection,
    HttpStreamSession,
    HttpTransport,
    http_connect,
    http_introspect,
)
from vgi_rpc.http._replay import InMemorySpentCursors, SpentCursorStore
from vgi_rpc.http._serve import serve_command, serve_http, serve_in_thread, waitress_options

__all__ = [
    "ARROW_CONTENT_TYPE",
    "AuthFailure",
    "AuthenticationError",
    "HttpCapabilities",
    "HttpConnection",
    "HttpError",
    "HttpNotFoundError",
    "HttpStreamSession",
    "HttpTransport",
    "HttpUnauthorizedError",
    "InMemorySpentCursors",
    "RequestTooLargeError",
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
