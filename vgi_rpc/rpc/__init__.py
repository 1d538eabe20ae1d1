"""The RPC core: server dispatch and its sans-IO call step, client proxies, streams, context.

Every name is imported on first use (a worker never loads the client, a client
never loads the server's describe and reflection code).
"""

from vgi_rpc._lazy import lazy_module

TYPE_CHECKING = False  # not ``typing``'s: see vgi_rpc/__init__.py

if TYPE_CHECKING:
    from vgi_rpc.rpc._accounting import CallRecord, CallStatistics
    from vgi_rpc.rpc._channel import (
        DEFAULT_SHM_MAX_SIZE,
        NO_CAPABILITIES,
        Channel,
        ChannelCapabilities,
        DeclaresCapabilities,
        SegmentOffer,
        capabilities_of,
    )
    from vgi_rpc.rpc._client import (
        Connected,
        OnLog,
        RpcConnection,
        StreamSession,
        connection_of,
        make_proxy,
        owner_of,
        server_takes_shm,
    )
    from vgi_rpc.rpc._context import AuthContext, CallContext
    from vgi_rpc.rpc._describe import (
        DESCRIBE_SCHEMA,
        DESCRIBE_VERSION,
        MethodDescription,
        ServiceDescription,
        build_describe_batch,
        parse_describe_batch,
        protocol_hash,
    )
    from vgi_rpc.rpc._hosting import Handler, Hosted, is_wire_name
    from vgi_rpc.rpc._observe import CallObserver, CallScope, with_trace_context
    from vgi_rpc.rpc._reflection import (
        REFLECTION,
        MethodSummary,
        ProtocolDescription,
        ProtocolList,
        ProtocolSummary,
    )
    from vgi_rpc.rpc._request import ONE_EMPTY_ROW, Request, encode_arguments, read_request
    from vgi_rpc.rpc._server import Builtin, RpcServer
    from vgi_rpc.rpc._server_stream import ServerStream
    from vgi_rpc.rpc._shm_auto import AUTO_SHM_TRIGGER, AutoShm
    from vgi_rpc.rpc._shm_client import ClientShm
    from vgi_rpc.rpc._step import Batch, CallStart, Reply, Turn
    from vgi_rpc.rpc._streams import (
        AnnotatedBatch,
        ExchangeState,
        OutputCollector,
        ProducerState,
        Stream,
        StreamState,
    )

__getattr__, __dir__ = lazy_module(
    __name__,
    {
        "vgi_rpc.rpc._accounting": ("CallRecord", "CallStatistics"),
        "vgi_rpc.rpc._channel": (
            "DEFAULT_SHM_MAX_SIZE",
            "NO_CAPABILITIES",
            "Channel",
            "ChannelCapabilities",
            "DeclaresCapabilities",
            "SegmentOffer",
            "capabilities_of",
        ),
        "vgi_rpc.rpc._client": (
            "Connected",
            "OnLog",
            "RpcConnection",
            "StreamSession",
            "connection_of",
            "make_proxy",
            "owner_of",
            "server_takes_shm",
        ),
        "vgi_rpc.rpc._context": ("AuthContext", "CallContext"),
        "vgi_rpc.rpc._describe": (
            "DESCRIBE_SCHEMA",
            "DESCRIBE_VERSION",
            "MethodDescription",
            "ServiceDescription",
            "build_describe_batch",
            "parse_describe_batch",
            "protocol_hash",
        ),
        "vgi_rpc.rpc._hosting": ("Handler", "Hosted", "is_wire_name"),
        "vgi_rpc.rpc._observe": ("CallObserver", "CallScope", "with_trace_context"),
        "vgi_rpc.rpc._reflection": (
            "REFLECTION",
            "MethodSummary",
            "ProtocolDescription",
            "ProtocolList",
            "ProtocolSummary",
        ),
        "vgi_rpc.rpc._request": ("ONE_EMPTY_ROW", "Request", "encode_arguments", "read_request"),
        "vgi_rpc.rpc._server": ("Builtin", "RpcServer"),
        "vgi_rpc.rpc._server_stream": ("ServerStream",),
        "vgi_rpc.rpc._shm_auto": ("AUTO_SHM_TRIGGER", "AutoShm"),
        "vgi_rpc.rpc._shm_client": ("ClientShm",),
        "vgi_rpc.rpc._step": ("Batch", "CallStart", "Reply", "Turn"),
        "vgi_rpc.rpc._streams": (
            "AnnotatedBatch",
            "ExchangeState",
            "OutputCollector",
            "ProducerState",
            "Stream",
            "StreamState",
        ),
    },
)

__all__ = [
    "AUTO_SHM_TRIGGER",
    "DEFAULT_SHM_MAX_SIZE",
    "DESCRIBE_SCHEMA",
    "DESCRIBE_VERSION",
    "NO_CAPABILITIES",
    "ONE_EMPTY_ROW",
    "REFLECTION",
    "AnnotatedBatch",
    "AuthContext",
    "AutoShm",
    "Batch",
    "Builtin",
    "CallContext",
    "CallObserver",
    "CallRecord",
    "CallScope",
    "CallStart",
    "CallStatistics",
    "Channel",
    "ChannelCapabilities",
    "ClientShm",
    "Connected",
    "DeclaresCapabilities",
    "ExchangeState",
    "Handler",
    "Hosted",
    "MethodDescription",
    "MethodSummary",
    "OnLog",
    "OutputCollector",
    "ProducerState",
    "ProtocolDescription",
    "ProtocolList",
    "ProtocolSummary",
    "Reply",
    "Request",
    "RpcConnection",
    "RpcServer",
    "SegmentOffer",
    "ServerStream",
    "ServiceDescription",
    "Stream",
    "StreamSession",
    "StreamState",
    "Turn",
    "build_describe_batch",
    "capabilities_of",
    "connection_of",
    "encode_arguments",
    "is_wire_name",
    "make_proxy",
    "owner_of",
    "parse_describe_batch",
    "protocol_hash",
    "read_request",
    "server_takes_shm",
    "with_trace_context",
]
