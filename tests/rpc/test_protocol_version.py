"""Application protocol_version negotiation (wire spec section 13)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol

import pytest

from vgi_rpc import (
    RpcConnection,
    RpcError,
    RpcServer,
    SchemaError,
    introspect,
    make_pipe_pair,
    serve_pipe,
)
from vgi_rpc.rpc import make_proxy


class ServerV21(Protocol):
    protocol_version: ClassVar[str] = "2.1.0"

    def ping(self) -> str: ...


class ClientV215(Protocol):
    protocol_version: ClassVar[str] = "2.1.5"

    def ping(self) -> str: ...


class ClientV20(Protocol):
    protocol_version: ClassVar[str] = "2.0.0"

    def ping(self) -> str: ...


class ClientV3(Protocol):
    protocol_version: ClassVar[str] = "3.1.0"

    def ping(self) -> str: ...


class ClientUnversioned(Protocol):
    def ping(self) -> str: ...


class Impl:
    def ping(self) -> str:
        return "pong"


@contextlib.contextmanager
def _client(client_protocol: type) -> Iterator[Any]:
    """A proxy typed by ``client_protocol`` talking to a ServerV21 server."""
    client_side, server_side = make_pipe_pair()
    server = RpcServer(ServerV21, Impl(), enable_describe=True)
    thread = threading.Thread(target=server.serve, args=(server_side,), daemon=True)
    thread.start()
    connection = RpcConnection(client_protocol, client_side)
    try:
        yield make_proxy(client_protocol, connection)
    finally:
        connection.close()
        thread.join(timeout=5)
        server_side.close()


def test_patch_differences_interoperate() -> None:
    with _client(ClientV215) as proxy:
        assert proxy.ping() == "pong"


@pytest.mark.parametrize(
    ("client", "fragment"),
    [
        (ClientV20, "client speaks 2.0.0, server speaks 2.1.0; upgrade the client"),
        (ClientV3, "client speaks 3.1.0, server speaks 2.1.0; upgrade the server"),
        (ClientUnversioned, "the client sent none"),
    ],
)
def test_mismatches_name_both_versions_and_the_side_to_upgrade(client: type, fragment: str) -> None:
    with _client(client) as proxy:
        with pytest.raises(RpcError) as info:
            proxy.ping()
        assert info.value.error_type == "ProtocolVersionError"
        assert info.value.error_kind == "protocol_version_mismatch"
        assert fragment in info.value.error_message
        # __describe__ stays available to diagnose the mismatch
        assert introspect(proxy).protocol_version == "2.1.0"


def test_malformed_versions_are_refused_at_load_time() -> None:
    class Bad(Protocol):
        protocol_version: ClassVar[str] = "1.0.0-rc1"

        def ping(self) -> str: ...

    with pytest.raises(SchemaError, match=r"MAJOR\.MINOR\.PATCH"):
        serve_pipe(Bad, Impl())
