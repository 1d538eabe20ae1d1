"""The RPC core: server dispatch, client proxies, streams and call context."""

from vgi_rpc.rpc._channel import Channel
from vgi_rpc.rpc._client import Connected, RpcConnection, StreamSession, connection_of, make_proxy
from vgi_rpc.rpc._context import AuthContext, CallContext
from vgi_rpc.rpc._server import RpcServer
from vgi_rpc.rpc._streams import (
    AnnotatedBatch,
    ExchangeState,
    OutputCollector,
    ProducerState,
    Stream,
    StreamState,
)

__all__ = [
    "AnnotatedBatch",
    "AuthContext",
    "CallContext",
    "Channel",
    "Connected",
    "ExchangeState",
    "OutputCollector",
    "ProducerState",
    "RpcConnection",
    "RpcServer",
    "Stream",
    "StreamSession",
    "StreamState",
    "connection_of",
    "make_proxy",
]
