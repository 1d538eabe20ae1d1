"""vgi_rpc: typed RPC for Python over Apache Arrow IPC (vgi-rpc wire protocol v1).

Define a service as a ``typing.Protocol``, implement it, and reach it through
``serve_pipe`` (in-process), ``connect`` / ``run_server`` (subprocess) or the
other transports; the proxy you get back is typed as the Protocol.

Every public name is imported on first use, so a worker process loads only
what serving needs (never the HTTP, OpenTelemetry, external-storage or CLI
extras, nor the client).
"""

from vgi_rpc._lazy import lazy_module

# Not ``typing.TYPE_CHECKING``: ``import vgi_rpc`` alone would then import ``typing``
# (pyarrow does not), about 3 ms. Type checkers treat any name ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from vgi_rpc._arrow_types import ArrowType
    from vgi_rpc._dataclasses import ArrowSerializableDataclass
    from vgi_rpc._errors import (
        ExternalStorageError,
        IPCError,
        MethodNotImplementedError,
        PeerExitedError,
        ProtocolError,
        ProtocolVersionError,
        RpcError,
        SchemaError,
        TransportError,
        VersionError,
        VgiRpcError,
    )
    from vgi_rpc._http_errors import (
        AuthenticationError,
        ExternalResponseTooLargeError,
        HttpError,
        HttpNotFoundError,
        RequestTooLargeError,
        TokenError,
    )
    from vgi_rpc._ipc import IpcValidation
    from vgi_rpc._ipc_embedded import read_ipc_stream
    from vgi_rpc._limits import ResourceLimits
    from vgi_rpc._logs import Level, Message
    from vgi_rpc._methods import MethodType, RpcMethodInfo, rpc_methods
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
    from vgi_rpc.introspect import ServiceDescription, describe_rpc, introspect
    from vgi_rpc.otel import instrument_server
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

__getattr__, __dir__ = lazy_module(
    __name__,
    {
        "vgi_rpc._arrow_types": ("ArrowType",),
        "vgi_rpc._dataclasses": ("ArrowSerializableDataclass",),
        "vgi_rpc._errors": (
            "ExternalStorageError",
            "IPCError",
            "MethodNotImplementedError",
            "PeerExitedError",
            "ProtocolError",
            "ProtocolVersionError",
            "RpcError",
            "SchemaError",
            "TransportError",
            "VersionError",
            "VgiRpcError",
        ),
        "vgi_rpc._http_errors": (
            "AuthenticationError",
            "ExternalResponseTooLargeError",
            "HttpError",
            "HttpNotFoundError",
            "RequestTooLargeError",
            "TokenError",
        ),
        "vgi_rpc._ipc": ("IpcValidation",),
        "vgi_rpc._ipc_embedded": ("read_ipc_stream",),
        "vgi_rpc._limits": ("ResourceLimits",),
        "vgi_rpc._logs": ("Level", "Message"),
        "vgi_rpc._methods": ("MethodType", "RpcMethodInfo", "rpc_methods"),
        "vgi_rpc.external": (
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
        ),
        "vgi_rpc.http": ("http_capabilities", "http_connect", "http_introspect", "make_wsgi_app"),
        "vgi_rpc.introspect": ("ServiceDescription", "describe_rpc", "introspect"),
        "vgi_rpc.otel": ("instrument_server",),
        "vgi_rpc.rpc": (
            "AnnotatedBatch",
            "AuthContext",
            "CallContext",
            "CallStatistics",
            "ExchangeState",
            "OutputCollector",
            "ProducerState",
            "RpcConnection",
            "RpcServer",
            "Stream",
            "StreamSession",
            "StreamState",
        ),
        "vgi_rpc.transports": (
            "PoolMetrics",
            "ShmPipeTransport",
            "SocketServer",
            "StderrMode",
            "WorkerPool",
            "connect",
            "make_pipe_pair",
            "run_server",
            "serve_pipe",
            "serve_tcp",
            "serve_unix",
            "tcp_connect",
            "tcp_server",
            "unix_connect",
            "unix_server",
        ),
    },
)

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
    "read_ipc_stream",
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
