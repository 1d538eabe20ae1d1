"""vgi_rpc: typed RPC for Python over Apache Arrow IPC (vgi-rpc wire protocol v1).

Define a service as a ``typing.Protocol``, implement it, and reach it through
``serve_pipe`` (in-process), ``connect`` / ``run_server`` (subprocess) or the
other transports; the proxy you get back is typed as the Protocol.
"""

from typing import TYPE_CHECKING

from vgi_rpc._arrow_types import ArrowType
from vgi_rpc._dataclasses import ArrowSerializableDataclass
from vgi_rpc._errors import (
    AuthenticationError,
    ExternalResponseTooLargeError,
    ExternalStorageError,
    HttpError,
    HttpNotFoundError,
    IPCError,
    MethodNotImplementedError,
    PeerExitedError,
    ProtocolError,
    ProtocolVersionError,
    RequestTooLargeError,
    RpcError,
    SchemaError,
    TokenError,
    TransportError,
    VersionError,
    VgiRpcError,
)
from vgi_rpc._ipc import IpcValidation
from vgi_rpc._limits import ResourceLimits
from vgi_rpc._logs import Level, Message
from vgi_rpc._methods import MethodType, RpcMethodInfo, rpc_methods
from vgi_rpc.introspect import ServiceDescription, describe_rpc, introspect
from vgi_rpc.rpc import (
    AnnotatedBatch,
    AuthContext,
    CallContext,
    CallStatistics,
    ExchangeState,
    OutputCollector,
    ProducerState,
    RpcConnection,
    RpcServer,
    Stream,
    StreamSession,
    StreamState,
)
from vgi_rpc.transports import (
    PoolMetrics,
    ShmPipeTransport,
    SocketServer,
    StderrMode,
    WorkerPool,
    connect,
    make_pipe_pair,
    run_server,
    serve_pipe,
    serve_tcp,
    serve_unix,
    tcp_connect,
    tcp_server,
    unix_connect,
    unix_server,
)

__version__ = "0.1.0"

# The HTTP transport needs the ``http`` extra (falcon, httpx, ...): import it on first use.
if TYPE_CHECKING:
    from vgi_rpc.external import (
        Compression,
        ExternalLocationConfig,
        ExternalStorage,
        FetchConfig,
        FileSystemStorage,
        GCSStorage,
        S3Storage,
        UploadUrl,
        UploadUrlProvider,
        https_only_validator,
    )
    from vgi_rpc.http import http_capabilities, http_connect, http_introspect, make_wsgi_app
    from vgi_rpc.otel import instrument_server
_HTTP_NAMES = frozenset(("make_wsgi_app", "http_connect", "http_introspect", "http_capabilities"))


# External storage (``vgi_rpc.external``) is imported on first use too.
_EXTERNAL_NAMES = frozenset(
    (
        "Compression",
        "ExternalLocationConfig",
        "ExternalStorage",
        "FetchConfig",
        "FileSystemStorage",
        "GCSStorage",
        "S3Storage",
        "UploadUrl",
        "UploadUrlProvider",
        "https_only_validator",
    )
)


def __getattr__(name: str) -> object:
    if name in _EXTERNAL_NAMES:
        from vgi_rpc import external

        return getattr(external, name)
    if name in _HTTP_NAMES:
        from vgi_rpc import http

        return getattr(http, name)
    if name == "instrument_server":  # the ``otel`` extra: opentelemetry is imported on first use
        from vgi_rpc.otel import instrument_server

        return instrument_server
    raise AttributeError(f"module 'vgi_rpc' has no attribute {name!r}")


__all__ = [
    "AnnotatedBatch",
    "ArrowSerializableDataclass",
    "ArrowType",
    "AuthContext",
    "AuthenticationError",
    "CallContext",
    "CallStatistics",
    "Compression",
    "ExchangeState",
    "ExternalLocationConfig",
    "ExternalResponseTooLargeError",
    "ExternalStorage",
    "ExternalStorageError",
    "FetchConfig",
    "FileSystemStorage",
    "GCSStorage",
    "HttpError",
    "HttpNotFoundError",
    "IPCError",
    "IpcValidation",
    "Level",
    "Message",
    "MethodNotImplementedError",
    "MethodType",
    "OutputCollector",
    "PeerExitedError",
    "PoolMetrics",
    "ProducerState",
    "ProtocolError",
    "ProtocolVersionError",
    "RequestTooLargeError",
    "ResourceLimits",
    "RpcConnection",
    "RpcError",
    "RpcMethodInfo",
    "RpcServer",
    "S3Storage",
    "SchemaError",
    "ServiceDescription",
    "ShmPipeTransport",
    "SocketServer",
    "StderrMode",
    "Stream",
    "StreamSession",
    "StreamState",
    "TokenError",
    "TransportError",
    "UploadUrl",
    "UploadUrlProvider",
    "VersionError",
    "VgiRpcError",
    "WorkerPool",
    "connect",
    "describe_rpc",
    "http_capabilities",
    "http_connect",
    "http_introspect",
    "https_only_validator",
    "instrument_server",
    "introspect",
    "make_pipe_pair",
    "make_wsgi_app",
    "rpc_methods",
    "run_server",
    "serve_pipe",
    "serve_tcp",
    "serve_unix",
    "tcp_connect",
    "tcp_server",
    "unix_connect",
    "unix_server",
]
