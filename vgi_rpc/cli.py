"""The ``vgi-rpc`` command: describe a service, call one of its methods, or serve one.

    vgi-rpc describe --cmd "python worker.py" [--format table|json]
    vgi-rpc describe --url http://127.0.0.1:8000 [--prefix /vgi]
    vgi-rpc call --cmd "python worker.py" METHOD key=value ... [--format table|json]
    vgi-rpc serve module:Protocol module:Implementation [--port 8000] [--host 127.0.0.1]
    vgi-rpc vectorindex serve [--socket PATH | --http HOST:PORT | --tcp HOST:PORT] [--store DIR]

Works against any worker that answers ``__describe__`` (ours with
``enable_describe=True``, or another implementation's). Arguments are parsed
by the parameter's Arrow type: numbers, ``true``/``false``, ISO dates and
times, JSON for lists, maps and structs, anything else as a string.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import decimal
import json
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TextIO

import pyarrow as pa

from vgi_rpc._errors import RpcError, VgiRpcError
from vgi_rpc._ipc import StreamWriter
from vgi_rpc._ipc_reader import open_stream_reader
from vgi_rpc._methods import MethodType
from vgi_rpc.introspect import (
    MethodDescription,
    ServiceDescription,
    list_protocols,
    schema_object,
)
from vgi_rpc.options import add_limit_options
from vgi_rpc.rpc import ONE_EMPTY_ROW, ProtocolSummary, RpcConnection
from vgi_rpc.transports import StderrMode, WorkerProcess
from vgi_rpc.wire import EMPTY_SCHEMA, BatchKind, empty_batch, rpc_error_from_metadata


class _AnyService(Protocol):
    """Placeholder Protocol: the CLI learns methods from ``__describe__``."""


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("expected true or false")
    return lowered in ("true", "1", "yes")


def _parse_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:]) if text.startswith("0x") else text.encode()


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


_PARSERS: list[tuple[Callable[[pa.DataType], bool], Callable[[str], object]]] = [
    (pa.types.is_integer, lambda text: int(text, 0)),
    (pa.types.is_floating, float),
    (pa.types.is_boolean, _parse_bool),
    (pa.types.is_decimal, decimal.Decimal),
    (pa.types.is_timestamp, dt.datetime.fromisoformat),
    (pa.types.is_date, dt.date.fromisoformat),
    (pa.types.is_time, dt.time.fromisoformat),
    (_is_binary, _parse_bytes),
    (_is_text, str),
]


def _parse_value(text: str, field: pa.Field[pa.DataType]) -> object:
    """Parse one ``key=value`` value as the parameter's Arrow type (JSON for nested types)."""
    if text.lower() in ("null", "none") and field.nullable:
        return None
    t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    try:
        for matches, parse in _PARSERS:
            if matches(t):
                return parse(text)
        value = json.loads(text)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise UsageError(f"{field.name}={text!r}: not a valid {field.type} ({exc})") from None
    return list(value.items()) if pa.types.is_map(t) and isinstance(value, dict) else value


def build_request(
    method: MethodDescription, assignments: Sequence[str], defaults: dict[str, object] | None = None
) -> pa.RecordBatch:
    """The request batch for ``METHOD key=value ...``, typed by the described parameter schema.

    Parameters left out take the server's advertised defaults (our describe
    extension), else null when nullable; anything else is a usage error.
    """
    defaults = defaults or {}
    schema = method.params_schema
    given: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"argument {item!r} is not key=value")
        if schema.get_field_index(key) < 0:
            raise UsageError(
                f"{method.name}() has no parameter {key!r}; parameters: {schema.names}"
            )
        given[key] = value
    missing = [
        f.name for f in schema if f.name not in given and f.name not in defaults and not f.nullable
    ]
    if missing:
        raise UsageError(f"{method.name}() needs {', '.join(m + '=...' for m in missing)}")
    if not len(schema):
        return ONE_EMPTY_ROW
    arrays = []
    for field in schema:
        parsed: object = (
            _parse_value(given[field.name], field)
            if field.name in given
            else defaults.get(field.name)
        )
        try:
            arrays.append(pa.array([parsed], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise UsageError(
                f"{field.name}: {given.get(field.name)!r} does not fit {field.type}: {exc}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _plain(value: object) -> object:
    """Make decoded values JSON-friendly; nested IPC payloads (dataclasses) are opened."""
    if isinstance(value, bytes):
        if value[:4] == b"\xff\xff\xff\xff":
            try:
                rows = pa.ipc.open_stream(value).read_all().to_pylist()
                return _plain(rows[0] if len(rows) == 1 else rows)
            except (pa.ArrowInvalid, OSError):
                pass
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.time | dt.timedelta | decimal.Decimal):
        return str(value)
    return value


def _print_table(batch: pa.RecordBatch, out: TextIO, *, header: bool = True) -> None:
    rows = [
        [
            json.dumps(_plain(v), ensure_ascii=False) if not isinstance(v, str) else v
            for v in row.values()
        ]
        for row in batch.to_pylist()
    ]
    names = batch.schema.names
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
    if header:
        out.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip() + "\n")
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _fields(schema: pa.Schema | None) -> list[dict[str, object]] | None:
    if schema is None:
        return None
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def _method_json(m: MethodDescription, doc: str) -> dict[str, object]:
    return {
        "name": m.name,
        "method_type": m.method_type.value,
        "is_exchange": m.is_exchange,
        "doc": doc,
        "params": _fields(m.params_schema),
        "result": _fields(m.result_schema),
        "header": _fields(m.header_schema),
        "request_json_schema": schema_object(m.params_schema),
        "response_json_schema": schema_object(m.result_schema),
    }


def _hosted_protocols(conn: RpcConnection) -> list[ProtocolSummary]:
    """What a second-generation server hosts (empty when it does not offer reflection)."""
    try:
        return list_protocols(conn).protocols
    except RpcError:
        return []


def _describe_json(description: ServiceDescription) -> dict[str, object]:
    return {
        "protocol_name": description.protocol_name,
        "protocol_version": description.protocol_version,
        "protocol_hash": description.protocol_hash,
        "describe_version": description.describe_version,
        "server_id": description.server_id,
        "doc": description.docs.get("", ""),
        "methods": [
            _method_json(m, description.docs.get(m.name, "")) for m in description.methods.values()
        ],
    }


class _Printer:
    """Writes batches as they arrive: a table (column header once per schema) or JSON lines."""

    def __init__(self, fmt: str, out: TextIO) -> None:
        self._fmt = fmt
        self._out = out
        self._schema: pa.Schema | None = None

    def emit(self, batch: pa.RecordBatch, label: str = "") -> None:
        rows = _plain(batch.to_pylist())
        if self._fmt == "json":
            self._out.write(json.dumps({label: rows} if label else rows, ensure_ascii=False) + "\n")
            return
        if label:
            self._out.write(f"{label}:\n")
        show_header = label != "" or self._schema is None or not batch.schema.equals(self._schema)
        _print_table(batch, self._out, header=show_header)
        self._schema = None if label else batch.schema


def _run_call(
    conn: RpcConnection, description: ServiceDescription, args: argparse.Namespace, out: TextIO
) -> None:
    method = description.methods.get(args.method)
    if method is None:
        raise UsageError(f"unknown method {args.method!r}; methods: {sorted(description.methods)}")
    request = build_request(method, args.assignments, description.defaults.get(method.name))
    printer = _Printer(args.format, out)
    if method.method_type is MethodType.UNARY:
        conn.send_request(method.name, request)
        data, _, error = conn.read_response(method.name)
        if error is not None:
            raise error
        if data is not None and data.num_columns:
            printer.emit(data)
        else:
            out.write("(no result)\n" if args.format == "table" else "null\n")
        return
    if method.is_exchange:
        raise UsageError(f"{method.name}() is an exchange stream; the CLI can only call producers")
    if args.url:
        _print_http_producer(conn, method, request, printer)
        return
    conn.send_request(method.name, request)
    if method.header_schema is not None:
        header, _, error = conn.read_response(method.name)
        if error is not None:
            raise error
        if header is not None:
            printer.emit(header, label="header")
    for batch in _produce(conn, method.name):
        printer.emit(batch)


def _print_http_producer(
    conn: RpcConnection, method: MethodDescription, request: pa.RecordBatch, printer: _Printer
) -> None:
    """Run a producer over HTTP: each turn is a POST that carries the server's state token."""
    from vgi_rpc.http import HttpConnection, HttpStreamSession

    assert isinstance(conn, HttpConnection)
    session = HttpStreamSession(
        conn, method.name, request, expects_header=method.header_schema is not None
    )
    if isinstance(session.header, pa.RecordBatch):
        printer.emit(session.header, label="header")
    for item in session:
        printer.emit(item.batch)


def _produce(conn: RpcConnection, name: str) -> Iterator[pa.RecordBatch]:
    """Tick a producer stream to its end, yielding each data batch."""
    ticks = StreamWriter(conn.channel, EMPTY_SCHEMA)
    output = None
    try:
        while True:
            ticks.write(empty_batch(EMPTY_SCHEMA), flush=True)
            if output is None:
                output = open_stream_reader(conn.channel.reader)
                if output is None:
                    raise conn.channel.peer_failure(f"{name}(): the server closed the connection")
            item = conn.read_batch(output, name)
            if item is None:
                return
            kind, batch, metadata = item
            if kind is BatchKind.ERROR:
                raise rpc_error_from_metadata(metadata or {})
            yield batch
    finally:
        ticks.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgi-rpc", description="Describe or call a vgi-rpc service."
    )
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group(required=True)
    where.add_argument("--cmd", "-c", help="worker command (spoken to over stdin/stdout)")
    where.add_argument("--url", "-u", help="HTTP server base URL (e.g. http://127.0.0.1:8000)")
    common.add_argument("--prefix", default="/vgi", help="with --url: URL prefix (default /vgi)")
    common.add_argument("--format", "-f", choices=("table", "json"), default="table")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("describe", parents=[common], help="list the service's methods")
    call = sub.add_parser("call", parents=[common], help="call a method")
    call.add_argument("method")
    call.add_argument("assignments", nargs="*", metavar="key=value")
    serve = sub.add_parser("serve", help="serve an implementation over HTTP (waitress)")
    serve.add_argument("protocol", metavar="module:Protocol")
    serve.add_argument("implementation", metavar="module:Implementation")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    serve.add_argument("--prefix", default="/vgi", help="URL prefix (default /vgi)")
    serve.add_argument("--threads", type=int, default=4, help="waitress worker threads")
    serve.add_argument("--describe", action="store_true", help="answer __describe__")
    serve.add_argument("--max-response-bytes", type=int, metavar="N")
    add_limit_options(serve)
    from vgi_rpc.services.vectorindex.cli import add_vectorindex_command

    add_vectorindex_command(sub)
    with contextlib.suppress(ImportError):  # the services extra (numpy) may be absent
        from vgi_rpc.services.objectstore import register_cli as register_objectstore

        register_objectstore(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from vgi_rpc.http import serve_command

    try:
        serve_command(args)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        sys.stderr.write(f"vgi-rpc serve: {exc}\n")
        return 2
    return 0


def _open(args: argparse.Namespace) -> tuple[RpcConnection, Callable[[], object]]:
    if args.url:
        from vgi_rpc.http import HttpConnection, HttpTransport

        transport = HttpTransport(args.url)
        return HttpConnection(_AnyService, transport, prefix=args.prefix), transport.close
    worker = WorkerProcess(shlex.split(args.cmd), stderr=StderrMode.PIPE)
    return RpcConnection(_AnyService, worker.channel), worker.close


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``vgi-rpc`` console script; returns the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    if getattr(args, "run", None) is not None:  # a service's sub-command
        return int(args.run(args))
    if args.command == "serve":
        return _serve(args)
    if args.command == "vectorindex":
        from vgi_rpc.services.vectorindex.cli import serve as serve_vectorindex

        return serve_vectorindex(args)
    conn, close = _open(args)
    try:
        try:
            description = conn.describe()
        except RpcError as exc:
            if exc.error_kind == "method_not_implemented":
                raise UsageError(
                    "the worker does not answer __describe__; start its RpcServer with enable_describe=True"
                ) from exc
            raise
        # Speak the server's application protocol version, learned from __describe__.
        conn.protocol_version = description.protocol_version
        if args.command == "describe":
            hosted = _hosted_protocols(conn)
            if args.format == "json":
                document = _describe_json(description)
                if hosted:
                    document["protocols"] = [dataclasses.asdict(p) for p in hosted]
                out.write(json.dumps(document, indent=2) + "\n")
            else:
                out.write(str(description) + "\n")
                for summary in hosted:
                    version = f" {summary.protocol_version}" if summary.protocol_version else ""
                    out.write(
                        f"hosted: {summary.protocol}{version} ({summary.protocol_hash[:16]})\n"
                    )
            return 0
        _run_call(conn, description, args, out)
        return 0
    except UsageError as exc:
        sys.stderr.write(f"vgi-rpc: {exc}\n")
        return 2
    except VgiRpcError as exc:
        sys.stderr.write(f"vgi-rpc: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        close()


if __name__ == "__main__":
    sys.exit(main())
