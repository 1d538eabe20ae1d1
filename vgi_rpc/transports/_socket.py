"""Unix-domain and TCP socket transports: raw IPC framing, one connection per client.

``serve_unix`` / ``serve_tcp`` accept connections and run the shared
dispatch loop on each (one at a time, or on a thread each with a cap);
``unix_connect`` / ``tcp_connect`` give a typed proxy. Moves bytes only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import stat
import struct
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import (
    Chunk,
    IpcValidation,
    buffered_reader,
    write_chunks_to_fd,
    write_chunks_vectored,
)
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER, Message
from vgi_rpc.rpc import (
    DEFAULT_SHM_MAX_SIZE,
    ChannelCapabilities,
    Connected,
    RpcConnection,
    RpcServer,
    SegmentOffer,
    make_proxy,
)
from vgi_rpc.transports._shm import check_shm_size, end_shm, segment_offer, start_shm

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig

P = TypeVar("P")
_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)


class SocketChannel:
    """A ``Channel`` over a connected stream socket."""

    def __init__(
        self, sock: socket.socket, *, peer: str = "", segment_offer: SegmentOffer | None = None
    ) -> None:
        self._sock = sock
        self._offer = segment_offer
        # A blocking socket is read like a pipe: FileIO's C read loop costs a fraction of
        # SocketIO's Python one. A socket with a timeout is non-blocking underneath, and
        # only SocketIO waits out EAGAIN on it.
        self._as_fd = sock.gettimeout() is None and os.name == "posix"  # a socket is an fd there
        if self._as_fd:
            self._reader = buffered_reader(sock.fileno())
        else:
            # typeshed parametrises BufferedReader by its raw stream; the Channel contract
            # only needs the buffered-reader methods, so it is used as such.
            self._reader = cast(
                "io.BufferedReader", io.BufferedReader(socket.SocketIO(sock, "rb"), 1 << 16)
            )
        self.peer = peer or _peer_name(sock)
        self._closed = False

    @property
    def reader(self) -> io.BufferedReader:
        """Buffered reader over the socket."""
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Send all chunks with ``sendmsg`` (gathering, no copy)."""
        try:
            if self._as_fd:
                write_chunks_to_fd(self._sock.fileno(), chunks)
            else:
                write_chunks_vectored(self._sock.sendmsg, chunks)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self.peer_failure(f"the peer stopped reading: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"sending to {self.peer} failed: {exc}") from exc

    def peer_failure(self, detail: str) -> TransportError:
        """The error describing a vanished peer."""
        return TransportError(f"connection to {self.peer} lost: {detail}")

    def capabilities(self) -> ChannelCapabilities:
        """On a unix socket, the peer's user id (``SO_PEERCRED``), and any segment offer."""
        return ChannelCapabilities(peer_uid=_peer_uid(self._sock), segment_offer=self._offer)

    def close(self) -> None:
        """Shut the connection down and close the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self._sock.close()


_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _peer_uid(sock: socket.socket) -> int | None:
    """The uid of a unix socket's peer (Linux ``SO_PEERCRED``); ``None`` elsewhere."""
    option = getattr(socket, "SO_PEERCRED", None)
    if sock.family != socket.AF_UNIX or option is None:
        return None
    try:
        return int(_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))[1])
    except OSError:
        return None


def _peer_name(sock: socket.socket) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return "peer"
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else (name or "unix socket")


class SocketServer:
    """A listening socket that serves every accepted connection with one ``RpcServer``.

    Args:
        server: The dispatcher.
        listener: A bound, listening socket (owned from now on).
        threaded: Serve connections concurrently, one thread each.
        max_connections: With ``threaded``, refuse connections beyond this many.
        unix_path: The socket file to remove on close.
    """

    def __init__(
        self,
        server: RpcServer,
        listener: socket.socket,
        *,
        threaded: bool = False,
        max_connections: int | None = None,
        unix_path: str | None = None,
    ) -> None:
        self.server = server
        self.listener = listener
        self.threaded = threaded
        self.unix_path = unix_path
        self._slots = threading.BoundedSemaphore(max_connections) if max_connections else None
        self._threads: set[threading.Thread] = set()
        self._channels: set[SocketChannel] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def address(self) -> str:
        """``host:port`` for TCP, the path for a unix socket."""
        name = self.listener.getsockname()
        return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)

    def serve_forever(self) -> None:
        """Accept and serve connections until ``close()``."""
        while not self._closed.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                raise
            self._tune(sock)
            if not self.threaded:
                self._serve_connection(sock)
                continue
            if self._slots is not None and not self._slots.acquire(blocking=False):
                _log.warning("refusing connection: %d connections already open", len(self._threads))
                sock.close()
                continue
            thread = threading.Thread(target=self._serve_connection, args=(sock,), daemon=True)
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def _tune(self, sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve_connection(self, sock: socket.socket) -> None:
        channel = SocketChannel(sock)
        with self._lock:
            self._channels.add(channel)
        _log.debug("connection from %s", channel.peer)
        try:
            self.server.serve(channel)
        finally:
            channel.close()
            with self._lock:
                self._channels.discard(channel)
                self._threads.discard(threading.current_thread())
            if self.threaded and self._slots is not None:
                self._slots.release()

    def close(self) -> None:
        """Stop accepting, end open connections, remove the socket file."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            channels = list(self._channels)
            threads = list(self._threads)
        for channel in channels:
            channel.close()
        for thread in threads:
            thread.join(timeout=5)
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)


def _unlink_stale_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise TransportError(f"{path} exists and is not a socket; refusing to replace it")
    os.unlink(path)


def unix_server(
    server: RpcServer, path: str, *, threaded: bool = False, max_connections: int | None = None
) -> SocketServer:
    """Bind and listen on a unix socket at ``path`` (replacing a stale socket file)."""
    _unlink_stale_socket(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    return SocketServer(
        server, listener, threaded=threaded, max_connections=max_connections, unix_path=path
    )


def tcp_server(
    server: RpcServer,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    threaded: bool = False,
    max_connections: int | None = None,
) -> SocketServer:
    """Bind and listen on ``host:port`` (loopback by default; port 0 picks a free one)."""
    listener = socket.create_server((host, port), reuse_port=False, backlog=64)
    return SocketServer(server, listener, threaded=threaded, max_connections=max_connections)


def _run_until_stopped(listening: SocketServer) -> None:
    """Serve until interrupted or sent SIGTERM, then clean up (socket file, connections)."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        listening.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        listening.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def serve_unix(
    server: RpcServer,
    path: str,
    *,
    threaded: bool = False,
    max_connections: int | None = None,
    on_bound: Callable[[str], None] | None = None,
) -> None:
    """Serve on a unix socket until interrupted; the socket file is removed on exit.

    ``on_bound(path)`` is called once the socket accepts connections.
    """
    listening = unix_server(server, path, threaded=threaded, max_connections=max_connections)
    if on_bound is not None:
        on_bound(path)
    _run_until_stopped(listening)


def serve_tcp(
    server: RpcServer,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    threaded: bool = False,
    max_connections: int | None = None,
    on_bound: Callable[[str, int], None] | None = None,
) -> None:
    """Serve on TCP until interrupted; ``on_bound(host, port)`` reports the bound address."""
    listening = tcp_server(server, host, port, threaded=threaded, max_connections=max_connections)
    if on_bound is not None:
        bound_host, bound_port = listening.listener.getsockname()[:2]
        on_bound(bound_host, bound_port)
    _run_until_stopped(listening)


def _connected(
    protocol: type[P],
    sock: socket.socket,
    on_log: Callable[[Message], None] | None,
    ipc_validation: IpcValidation,
    shm_size: int | None = 0,
    shm_max_size: int = DEFAULT_SHM_MAX_SIZE,
    external_location: ExternalLocationConfig | None = None,
) -> Connected[P]:
    offer = segment_offer(shm_size, shm_max_size)
    if offer is not None and _peer_uid(sock) != os.geteuid():
        offer = None  # shared memory only with a peer proven to run as our user on this host
    channel = SocketChannel(sock, segment_offer=offer)
    connection = RpcConnection(
        protocol,
        channel,
        on_log=on_log,
        ipc_validation=ipc_validation,
        external_location=external_location,
    )
    segment = None
    if shm_size:
        try:
            segment = start_shm(connection, shm_size)
        except BaseException:
            connection.close()
            raise

    def close() -> None:
        try:
            connection.close()
        finally:
            end_shm(segment)

    return Connected(make_proxy(protocol, connection), close)


def unix_connect(
    protocol: type[P],
    path: str,
    *,
    on_log: Callable[[Message], None] | None = None,
    ipc_validation: IpcValidation = IpcValidation.FULL,
    shm_size: int | None = None,
    shm_max_size: int = DEFAULT_SHM_MAX_SIZE,
    external_location: ExternalLocationConfig | None = None,
) -> Connected[P]:
    """Connect to a unix-socket server; a context manager of a proxy typed as ``protocol``.

    The server is on this host, so shared memory works as with ``connect``:
    automatic when the server runs as our user (``SO_PEERCRED``), off with
    ``shm_size=0``, one segment of ``shm_size`` bytes made up front otherwise.
    """
    check_shm_size(shm_size, shm_max_size)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot connect to unix socket {path}: {exc}") from exc
    return _connected(
        protocol, sock, on_log, ipc_validation, shm_size, shm_max_size, external_location
    )


def tcp_connect(
    protocol: type[P],
    host: str,
    port: int,
    *,
    on_log: Callable[[Message], None] | None = None,
    ipc_validation: IpcValidation = IpcValidation.FULL,
    timeout: float | None = 10.0,
    external_location: ExternalLocationConfig | None = None,
) -> Connected[P]:
    """Connect to a TCP server; a context manager of a proxy typed as ``protocol``.

    ``external_location`` works as with ``connect`` (``vgi_rpc.external``).
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return _connected(protocol, sock, on_log, ipc_validation, external_location=external_location)


__all__ = [
    "SocketChannel",
    "SocketServer",
    "serve_tcp",
    "serve_unix",
    "tcp_connect",
    "tcp_server",
    "unix_connect",
    "unix_server",
]
