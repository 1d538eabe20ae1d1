"""In-process pipe transport: the server runs on a thread, the client gets a proxy."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from vgi_rpc._ipc import IpcValidation
from vgi_rpc._logs import Message
from vgi_rpc.rpc import (
    DEFAULT_SHM_MAX_SIZE,
    Channel,
    Connected,
    RpcConnection,
    RpcServer,
    SegmentOffer,
    make_proxy,
)
from vgi_rpc.shm import ShmSegment
from vgi_rpc.transports._fd import FdChannel, widen_pipe
from vgi_rpc.transports._shm import ShmPipeTransport, check_shm_size, end_shm, segment_offer

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig

P = TypeVar("P")


def make_pipe_pair() -> tuple[FdChannel, FdChannel]:
    """Two connected channels over two OS pipes: (client side, server side)."""
    return _pipe_pair(None)


def _pipe_pair(offer: SegmentOffer | None) -> tuple[FdChannel, FdChannel]:
    to_server_r, to_server_w = os.pipe()
    to_client_r, to_client_w = os.pipe()
    widen_pipe(to_server_w)
    widen_pipe(to_client_w)
    client = FdChannel(to_client_r, to_server_w, segment_offer=offer)
    return client, FdChannel(to_server_r, to_client_w)


def serve_pipe(
    protocol: type[P],
    implementation: object,
    *,
    on_log: Callable[[Message], None] | None = None,
    external_location: ExternalLocationConfig | None = None,
    ipc_validation: IpcValidation | None = None,
    shm_size: int | None = None,
    shm_max_size: int = DEFAULT_SHM_MAX_SIZE,
) -> Connected[P]:
    """Serve ``implementation`` on a background thread and return a context manager of its proxy.

    ``with serve_pipe(Calculator, CalculatorImpl()) as calc: calc.add(a=1.0, b=2.0)``.
    Leaving the block closes the pipes and joins the server thread. Shared
    memory is automatic (a segment set up by the first large batch, grown up to
    ``shm_max_size``); ``shm_size=0`` turns it off; with ``shm_size=N`` both ends
    share one segment of N bytes from the start (``ShmPipeTransport``). Segments
    are removed when the block ends. ``implementation`` may also be an
    ``RpcServer`` built beforehand (with observers, say: ``instrument_server``).
    ``external_location`` (``vgi_rpc.external``) is given to both ends.
    """
    check_shm_size(shm_size, shm_max_size)
    validation = ipc_validation or IpcValidation.FULL
    server = (
        implementation
        if isinstance(implementation, RpcServer)
        else RpcServer(
            protocol,
            implementation,
            ipc_validation=validation,
            external_location=external_location,
        )
    )
    client_side: Channel
    server_side: Channel
    client_side, server_side = _pipe_pair(segment_offer(shm_size, shm_max_size))
    segment = ShmSegment.create(shm_size) if shm_size else None
    if segment is not None:
        client_side = ShmPipeTransport(client_side, segment)
        server_side = ShmPipeTransport(server_side, segment)

    def run() -> None:
        try:
            server.serve(server_side)
        finally:
            server_side.close()

    thread = threading.Thread(
        target=run, name=f"vgi_rpc-serve_pipe-{protocol.__name__}", daemon=True
    )
    thread.start()
    connection = RpcConnection(
        protocol,
        client_side,
        on_log=on_log,
        ipc_validation=validation,
        external_location=external_location,
    )

    def close() -> None:
        try:
            connection.close()
            thread.join(timeout=10)
        finally:
            end_shm(segment)

    return Connected(make_proxy(protocol, connection), close)


__all__ = ["make_pipe_pair", "serve_pipe"]
