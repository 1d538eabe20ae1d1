"""The client's keep-alive connections: reuse, server-side closes, concurrent callers."""

from __future__ import annotations

import gc
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests._services import Service, ServiceImpl
from tests.conftest import serve_wsgi
from vgi_rpc import RpcServer, TransportError
from vgi_rpc.http import http_connect, make_wsgi_app

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Recorder:
    """Wraps the app and records each request's client port."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.ports: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            self.ports.append(str(environ["REMOTE_PORT"]))
        return self.app(environ, start_response)


@contextmanager
def _served() -> Iterator[tuple[str, _Recorder]]:
    recorder = _Recorder(make_wsgi_app(RpcServer(Service, ServiceImpl())))
    with serve_wsgi(recorder) as url:
        yield url, recorder


@contextmanager
def _served_by_wsgiref(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, _Recorder]]:
    """The standard library's server: HTTP/1.0, so it closes the connection after each response."""

    class Quiet(WSGIRequestHandler):
        def get_environ(self) -> dict[str, Any]:
            return {**super().get_environ(), "REMOTE_PORT": str(self.client_address[1])}

        def log_message(self, *args: Any) -> None:
            pass

    recorder = _Recorder(make_wsgi_app(RpcServer(Service, ServiceImpl())))
    server = make_server("127.0.0.1", 0, recorder, handler_class=Quiet)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_sequential_calls_share_one_connection() -> None:
    with _served() as (url, recorder), http_connect(Service, url) as svc:
        for i in range(20):
            assert svc.add(a=float(i), b=1.0) == i + 1.0
    assert len(recorder.ports) == 20
    assert len(set(recorder.ports)) == 1


def test_a_server_that_closes_after_each_response_gets_a_new_connection_each_call() -> None:
    with _served_by_wsgiref() as (url, recorder), http_connect(Service, url) as svc:
        for i in range(5):
            assert svc.add(a=float(i), b=2.0) == i + 2.0
    assert len(set(recorder.ports)) == 5


def test_an_idle_connection_the_server_dropped_is_replaced() -> None:
    with _served() as (url, recorder), http_connect(Service, url) as svc:
        assert svc.greet(name="a") == "hello a!"
        # Close the server side of the kept-alive connection, as a restarted or timed-out
        # server would, while the client holds it idle.
        for sock in _server_side_sockets(recorder.ports[0]):
            sock.shutdown(socket.SHUT_RDWR)
        time.sleep(0.2)
        assert svc.greet(name="b") == "hello b!"
    assert len(set(recorder.ports)) == 2


def test_concurrent_callers_on_one_proxy_each_get_a_connection() -> None:
    errors: list[BaseException] = []
    with _served() as (url, recorder), http_connect(Service, url) as svc:

        def work(offset: int) -> None:
            try:
                for i in range(25):
                    assert svc.add(a=float(offset), b=float(i)) == offset + i
            except BaseException as exc:  # reported below, on the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n * 100,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(recorder.ports) == 100
    assert 1 <= len(set(recorder.ports)) <= 4


def _server_side_sockets(client_port: str) -> list[socket.socket]:
    """The waitress channel sockets connected to ``client_port`` (found through the GC)."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket) and obj.fileno() != -1:
            try:
                peer = obj.getpeername()
            except OSError:
                continue
            if isinstance(peer, tuple) and str(peer[1]) == client_port:
                found.append(obj)
    assert found, f"no server socket connected to port {client_port}"
    return found


def _self_signed(directory: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    import datetime as dt
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def test_https_verifies_the_server_with_the_given_context(tmp_path: Any) -> None:
    cert, key = _self_signed(str(tmp_path))
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    with _served_by_wsgiref(tls=server_side) as (url, recorder):
        https = url.replace("http://", "https://")
        trusting = ssl.create_default_context(cafile=cert)
        with http_connect(Service, https, ssl_context=trusting) as svc:
            assert svc.add(a=1.0, b=2.0) == 3.0
            assert [b.batch.to_pydict()["value"][0] for b in svc.countdown(n=2)] == [2, 1]
        with (
            http_connect(Service, https) as svc,  # the system's CAs do not know this certificate
            pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            svc.noop()
    assert len(recorder.ports) >= 3
