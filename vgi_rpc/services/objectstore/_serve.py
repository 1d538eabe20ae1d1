"""Running the object store: on a unix socket, TCP and HTTP at once, in threads or blocking."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import threading
from collections.abc import Iterator

import pyarrow.fs as pafs

from vgi_rpc import RpcServer, SocketServer, tcp_server, unix_server
from vgi_rpc.rpc import Channel
from vgi_rpc.services.objectstore._store import Store
from vgi_rpc.services.objectstore.client import default_socket
from vgi_rpc.services.objectstore.protocol import ObjectStore
from vgi_rpc.services.objectstore.server import MAX_CHUNK, WARM_IDLE, ObjectStoreServer

MAX_CONNECTIONS = 1024


class TrackingRpcServer(RpcServer):
    """An ``RpcServer`` for the object store that frees a connection's pending puts when it ends."""

    def __init__(self, implementation: ObjectStoreServer) -> None:
        super().__init__(ObjectStore, implementation, enable_describe=True)
        self.store_server = implementation

    def serve(self, channel: Channel) -> None:
        """Serve one connection; afterwards free the puts it left pending."""
        connection = self.store_server.connection_opened()
        try:
            super().serve(channel)
        finally:
            self.store_server.connection_closed(connection)


@dataclasses.dataclass(frozen=True)
class RunningStore:
    """Where a started object store listens (``None`` for a listener not asked for)."""

    server: ObjectStoreServer
    socket: str | None
    tcp: tuple[str, int] | None
    url: str | None


def parse_size(text: str) -> int:
    """``2GiB``, ``512MiB``, ``1G``, ``1000`` -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        return int(float(number) * factor)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 2GiB, 512MiB)") from None


def _store(store: str | Store | tuple[pafs.FileSystem, str] | None) -> Store | None:
    if store is None or isinstance(store, Store):
        return store
    return Store(store)


@contextlib.contextmanager
def start(
    *,
    socket: str | None = None,
    tcp: tuple[str, int] | None = None,
    http: tuple[str, int] | None = None,
    memory: int = 2 << 30,
    store: str | Store | tuple[pafs.FileSystem, str] | None = None,
    signing_key: bytes | None = None,
    warm: int | None = None,
    warm_idle: float = WARM_IDLE,
) -> Iterator[RunningStore]:
    """Serve an object store on background threads; everything stops when the block ends.

    ``warm`` / ``warm_idle``: see ``ObjectStoreServer``.
    """
    implementation = ObjectStoreServer(
        memory_limit=memory, store=_store(store), warm=warm, warm_idle=warm_idle
    )
    rpc = TrackingRpcServer(implementation)
    listeners: list[SocketServer] = []
    threads: list[threading.Thread] = []
    with contextlib.ExitStack() as stack:
        stack.callback(implementation.close)

        def run(listening: SocketServer) -> None:
            listeners.append(listening)
            thread = threading.Thread(
                target=listening.serve_forever, name="objectstore", daemon=True
            )
            thread.start()
            threads.append(thread)

        if socket is not None:
            run(unix_server(rpc, socket, threaded=True, max_connections=MAX_CONNECTIONS))
        tcp_address = None
        if tcp is not None:
            run(tcp_server(rpc, tcp[0], tcp[1], threaded=True, max_connections=MAX_CONNECTIONS))
            host, port = listeners[-1].address.rsplit(":", 1)
            tcp_address = (host, int(port))
        url = None
        if http is not None:
            from vgi_rpc.http import make_wsgi_app, serve_in_thread

            app = make_wsgi_app(
                rpc,
                prefix="/vgi",
                signing_key=signing_key or secrets.token_bytes(32),
                max_request_bytes=MAX_CHUNK + (1 << 20),  # a write chunk and its envelope
                max_stream_response_bytes=32 << 20,  # a get moves several chunks per response
            )
            url = stack.enter_context(serve_in_thread(app, host=http[0], port=http[1], threads=32))
        try:
            yield RunningStore(implementation, socket, tcp_address, url)
        finally:
            implementation.close()  # wakes name waiters, so their connections can end
            for listening in listeners:
                listening.close()
            for thread in threads:
                thread.join(timeout=10)


def serve(
    *,
    socket: str | None = None,
    tcp: tuple[str, int] | None = None,
    http: tuple[str, int] | None = None,
    memory: int = 2 << 30,
    store: str | Store | None = None,
    announce: bool = True,
    warm: int | None = None,
    warm_idle: float = WARM_IDLE,
) -> None:
    """Serve until interrupted or SIGTERM (the default: the default socket, a local store)."""
    if socket is None and tcp is None and http is None:
        socket = default_socket()
    if store is None:
        store = os.path.join(os.path.expanduser("~"), ".local", "share", "vgi-objectstore")
    key = os.environ.get("VGI_RPC_SIGNING_KEY")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        with start(
            socket=socket,
            tcp=tcp,
            http=http,
            memory=memory,
            store=store,
            signing_key=key.encode() if key else None,
            warm=warm,
            warm_idle=warm_idle,
        ) as running:
            if announce:
                if running.socket:
                    print(f"UNIX:{running.socket}", flush=True)
                if running.tcp:
                    print(f"TCP:{running.tcp[0]}:{running.tcp[1]}", flush=True)
                if running.url:
                    print(f"HTTP:{running.url}/vgi", flush=True)
                print(
                    f"STORE:{running.server.store.uri if running.server.store else ''}", flush=True
                )
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["RunningStore", "TrackingRpcServer", "parse_size", "serve", "start"]
