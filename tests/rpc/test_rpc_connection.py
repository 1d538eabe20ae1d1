"""RpcConnection as the seed documents it, RpcServer.serve(transport), introspect on any transport."""

from __future__ import annotations

import threading

import pytest

from tests._services import Service, ServiceImpl
from tests.conftest import WORKER, worker_env
from vgi_rpc import (
    MethodType,
    RpcConnection,
    RpcServer,
    ServiceDescription,
    ShmPipeTransport,
    StderrMode,
    WorkerPool,
    connect,
    http_connect,
    http_introspect,
    introspect,
    make_pipe_pair,
    make_wsgi_app,
    serve_pipe,
)
from vgi_rpc.http import serve_in_thread
from vgi_rpc.shm import ShmSegment


def _serve_in_thread(server: RpcServer, transport: object) -> threading.Thread:
    thread = threading.Thread(target=server.serve, args=(transport,), daemon=True)
    thread.start()
    return thread


def test_rpc_connection_yields_the_typed_proxy_and_closes_the_transport() -> None:
    client_pipe, server_pipe = make_pipe_pair()
    thread = _serve_in_thread(RpcServer(Service, ServiceImpl()), server_pipe)
    with RpcConnection(Service, client_pipe) as svc:
        assert svc.add(a=1.0, b=2.0) == 3.0
        assert [b.batch.column(0).to_pylist() for b in svc.countdown(n=2)] == [[2], [1]]
    # leaving the block closed the client side: serve() saw the end and returned
    thread.join(timeout=10)
    assert not thread.is_alive()
    server_pipe.close()


def test_rpc_connection_over_shm_pipe_transports_as_the_seed_shows() -> None:
    with ShmSegment.create(size=16 * 1024 * 1024) as shm:
        client_pipe, server_pipe = make_pipe_pair()
        client_transport = ShmPipeTransport(client_pipe, shm)
        server_transport = ShmPipeTransport(server_pipe, shm)
        thread = _serve_in_thread(RpcServer(Service, ServiceImpl()), server_transport)
        with RpcConnection(Service, client_transport) as svc:
            big = bytes(range(256)) * 16384  # 4 MiB: travels through the segment
            assert svc.echo_big(data=big) == big
        thread.join(timeout=10)
        assert not thread.is_alive()
        server_transport.close()
        assert shm.allocations() == []


def test_rpc_connection_takes_on_log_positionally() -> None:
    client_pipe, server_pipe = make_pipe_pair()
    thread = _serve_in_thread(RpcServer(Service, ServiceImpl()), server_pipe)
    seen: list[str] = []
    with RpcConnection(Service, client_pipe, lambda m: seen.append(m.message)) as svc:
        assert svc.logs(count=2) == 2
    thread.join(timeout=10)
    server_pipe.close()
    assert len(seen) == 2


def _check(description: ServiceDescription) -> None:
    assert description.protocol_name == "Service"
    add = description.methods["add"]
    assert add.method_type is MethodType.UNARY
    assert description.methods["countdown"].method_type is MethodType.STREAM
    assert description.methods["counted"].has_header
    assert not add.has_header


def test_introspect_takes_the_proxys_transport_on_every_byte_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in worker_env().items():  # the pool's workers import the tests package
        monkeypatch.setenv(key, value)
    server = RpcServer(Service, ServiceImpl(), enable_describe=True)
    with serve_pipe(Service, server) as svc:
        _check(introspect(svc._transport))  # type: ignore[attr-defined]  # as the seed writes it
        _check(introspect(svc))
        assert svc.add(a=1.0, b=1.0) == 2.0  # the proxy keeps working
    with connect(
        Service, [*WORKER, "service", "--describe"], env=worker_env(), stderr=StderrMode.PIPE
    ) as spawned:
        _check(introspect(spawned._transport))  # type: ignore[attr-defined]  # the proxy is typed as the Protocol
        assert spawned.greet(name="x") == "hello x!"
    with (
        WorkerPool(max_idle=1, stderr=StderrMode.DEVNULL) as pool,
        pool.connect(Service, [*WORKER, "service", "--describe"]) as pooled,
    ):
        _check(introspect(pooled._transport))  # type: ignore[attr-defined]  # the proxy is typed as the Protocol


def test_introspect_on_a_bare_channel() -> None:
    client_pipe, server_pipe = make_pipe_pair()
    thread = _serve_in_thread(RpcServer(Service, ServiceImpl(), enable_describe=True), server_pipe)
    _check(introspect(client_pipe))
    client_pipe.close()
    thread.join(timeout=10)
    server_pipe.close()
    with pytest.raises(TypeError, match="needs a proxy or a channel"):
        introspect(42)


def test_http_introspect_returns_the_same_types_as_introspect() -> None:
    server = RpcServer(Service, ServiceImpl(), enable_describe=True)
    with serve_pipe(Service, server) as svc:
        piped = introspect(svc)
    app = make_wsgi_app(server, signing_key=b"k" * 32)
    with serve_in_thread(app) as url:
        over_http = http_introspect(url)
        with http_connect(Service, url) as remote:
            via_proxy = introspect(remote._transport)  # type: ignore[attr-defined]  # typed as the Protocol
    _check(over_http)
    assert over_http == piped  # the same server: identical descriptions, field for field
    assert via_proxy == piped
