"""Reaching a service and calling one of its methods, as described by its ``__describe__``.

The command knows no Protocol: it speaks the wire protocol from the
described schemas, over a worker's pipes (``--cmd``), a unix socket
(``--unix``) or HTTP (``--url``). Producer streams are ticked to their end;
exchange streams take their input batches from ``--input`` (an Arrow IPC
stream file, or JSON lines) or from JSON lines on stdin.
"""

from __future__ import annotations

import argparse
import io
import shlex
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TextIO

import pyarrow as pa

from vgi_rpc._errors import RpcError, TransportError
from vgi_rpc._ipc import StreamWriter
from vgi_rpc._ipc_reader import IpcStreamReader, open_stream_reader
from vgi_rpc._logs import Message
from vgi_rpc._methods import MethodType
from vgi_rpc.cli._output import StreamPrinter
from vgi_rpc.cli._values import UsageError, build_json_request, build_request, json_row_batches
from vgi_rpc.introspect import MethodDescription, ServiceDescription, list_protocols
from vgi_rpc.rpc import ProtocolSummary, RpcConnection
from vgi_rpc.transports import SocketChannel, StderrMode, WorkerProcess
from vgi_rpc.wire import EMPTY_SCHEMA, BatchKind, empty_batch, rpc_error_from_metadata

_ARROW_MAGIC = b"\xff\xff\xff\xff"


class _AnyService(Protocol):
    """Placeholder Protocol: the CLI learns methods from ``__describe__``."""


def _log_to_stderr(message: Message) -> None:
    extra = f" {message.extra}" if message.extra else ""
    sys.stderr.write(f"[{message.level.value}] {message.message}{extra}\n")
    sys.stderr.flush()


def open_target(args: argparse.Namespace) -> tuple[RpcConnection, Callable[[], object]]:
    """The connection ``--cmd`` / ``--unix`` / ``--url`` names, and how to close it."""
    given = [name for name in ("cmd", "unix", "url") if getattr(args, name, None)]
    if len(given) != 1:
        raise UsageError("give one of --cmd, --unix or --url (before or after the command)")
    on_log = _log_to_stderr if args.verbose else None
    if args.url:
        from vgi_rpc.http import HttpConnection, HttpTransport

        transport = HttpTransport(args.url)
        connection = HttpConnection(_AnyService, transport, prefix=args.prefix, on_log=on_log)
        return connection, transport.close
    if args.unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(args.unix)
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot connect to {args.unix}: {exc}") from exc
        channel = SocketChannel(sock, peer=args.unix)
        return RpcConnection(_AnyService, channel, on_log), channel.close
    # --verbose lets the worker's own stderr through; otherwise its tail explains a crash
    stderr = StderrMode.INHERIT if args.verbose else StderrMode.PIPE
    worker = WorkerProcess(shlex.split(args.cmd), stderr=stderr)
    return RpcConnection(_AnyService, worker.channel, on_log), worker.close


def describe(conn: RpcConnection) -> ServiceDescription:
    """The service's description; it must answer ``__describe__``."""
    try:
        description = conn.describe()
    except RpcError as exc:
        if exc.error_kind == "method_not_implemented":
            raise UsageError(
                "the worker does not answer __describe__; "
                "start its RpcServer with enable_describe=True"
            ) from exc
        raise
    # Speak the server's application protocol version, learned from __describe__.
    conn.protocol_version = description.protocol_version
    return description


def hosted_protocols(conn: RpcConnection) -> list[ProtocolSummary]:
    """What a second-generation server hosts (empty when it does not offer reflection)."""
    try:
        return list_protocols(conn).protocols
    except RpcError:
        return []


def _request(
    method: MethodDescription, args: argparse.Namespace, description: ServiceDescription
) -> pa.RecordBatch:
    defaults = description.defaults.get(method.name)
    if args.json is not None:
        if args.assignments:
            raise UsageError("give parameters as key=value or as --json, not both")
        return build_json_request(method, args.json, defaults)
    return build_request(method, args.assignments, defaults)


def _inputs(args: argparse.Namespace, stdin: TextIO) -> Iterator[pa.RecordBatch]:
    """Exchange input batches: ``--input FILE`` (Arrow IPC or JSON lines), else JSON lines on stdin."""
    if args.input in (None, "-"):
        yield from json_row_batches(stdin)
        return
    try:
        with open(args.input, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"--input {args.input}: {exc}") from None
    if data[:4] == _ARROW_MAGIC:
        try:
            yield from pa.ipc.open_stream(data)
        except pa.ArrowInvalid as exc:
            raise UsageError(
                f"--input {args.input}: not a readable Arrow IPC stream ({exc})"
            ) from None
        return
    yield from json_row_batches(io.StringIO(data.decode("utf-8", "replace")))


def run_call(
    conn: RpcConnection,
    description: ServiceDescription,
    args: argparse.Namespace,
    printer: StreamPrinter,
    stdin: TextIO,
) -> None:
    """``vgi-rpc call METHOD ...``: send the request, print what comes back."""
    method = description.methods.get(args.method)
    if method is None:
        raise UsageError(f"unknown method {args.method!r}; methods: {sorted(description.methods)}")
    request = _request(method, args, description)
    if method.method_type is MethodType.UNARY:
        conn.send_request(method.name, request)
        data, _, error = conn.read_response(method.name)
        if error is not None:
            raise error
        printer.result(data)
        return
    exchange = bool(method.is_exchange) or args.input is not None
    inputs = _inputs(args, stdin) if exchange else None
    if args.url:
        _http_stream(conn, method, request, printer, inputs)
    else:
        _byte_stream(conn, method, request, printer, inputs)


def _http_stream(
    conn: RpcConnection,
    method: MethodDescription,
    request: pa.RecordBatch,
    printer: StreamPrinter,
    inputs: Iterable[pa.RecordBatch] | None,
) -> None:
    """A stream over HTTP: each turn is a POST that carries the server's state token."""
    from vgi_rpc.http import HttpConnection, HttpStreamSession

    assert isinstance(conn, HttpConnection)
    session = HttpStreamSession(conn, method.name, request, expects_header=method.has_header)
    if isinstance(session.header, pa.RecordBatch):
        printer.header(session.header)
    if inputs is None:
        for item in session:
            printer.batch(item.batch)
        return
    for batch in inputs:
        printer.batch(session.exchange(batch).batch)
    session.close()


def _byte_stream(
    conn: RpcConnection,
    method: MethodDescription,
    request: pa.RecordBatch,
    printer: StreamPrinter,
    inputs: Iterable[pa.RecordBatch] | None,
) -> None:
    """A stream over a pipe or socket, lockstep: one input (or tick) out, one batch back."""
    conn.send_request(method.name, request)
    if method.has_header:
        header, _, error = conn.read_response(method.name)
        if error is not None:
            raise error
        if header is not None:
            printer.header(header)
    ticks = iter(lambda: empty_batch(EMPTY_SCHEMA), None) if inputs is None else iter(inputs)
    writer: StreamWriter | None = None
    output: IpcStreamReader | None = None
    try:
        for batch in ticks:
            if writer is None:
                writer = StreamWriter(conn.channel, batch.schema)
            writer.write(batch, flush=True)
            output = output or _open_output(conn, method.name)
            item = conn.read_batch(output, method.name)
            if item is None:
                return  # the producer finished
            kind, answer, metadata = item
            if kind is BatchKind.ERROR:
                raise rpc_error_from_metadata(metadata or {})
            printer.batch(answer)
    finally:
        (writer or StreamWriter(conn.channel, EMPTY_SCHEMA)).close()
    # every input was answered: the server ends its output after our input's end
    output = output or _open_output(conn, method.name)
    while (item := conn.read_batch(output, method.name)) is not None:
        if item[0] is BatchKind.ERROR:
            raise rpc_error_from_metadata(item[2] or {})


def _open_output(conn: RpcConnection, name: str) -> IpcStreamReader:
    reader = open_stream_reader(conn.channel.reader)
    if reader is None:
        raise conn.channel.peer_failure(f"{name}(): the server closed the connection")
    return reader


__all__ = ["describe", "hosted_protocols", "open_target", "run_call"]
