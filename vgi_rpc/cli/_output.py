"""What ``vgi-rpc`` prints: tables for people, JSON for scripts, Arrow IPC for programs.

The JSON shapes are the reference command's: a unary result is one object
per row (``null`` for a method without a result), a stream is one object per
row (a header first, as ``{"__header__": {...}}``), a failure is
``{"error": {"type", "message", "traceback"}}`` on stderr. ``auto`` is a
table for ``describe`` and ``loggers`` on a terminal and JSON otherwise; for
``call`` it is JSON, indented on a terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO, cast

import pyarrow as pa

from vgi_rpc._errors import RpcError
from vgi_rpc._logs import LOGGERS
from vgi_rpc.cli._values import UsageError, plain, rows
from vgi_rpc.introspect import MethodDescription, ServiceDescription, schema_object
from vgi_rpc.rpc import ProtocolSummary

FORMATS = ("auto", "table", "json", "arrow")


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class Output:
    """Where and how results go: ``--format`` and ``--output`` resolved once."""

    def __init__(self, fmt: str, path: str | None, out: TextIO) -> None:
        self.format = fmt
        self.path = path
        self._out = out
        self._file: TextIO | None = None
        self.terminal = path is None and _is_tty(out)

    def text_format(self, *, prefer_table: bool) -> str:
        """``table`` or ``json`` for this command (``auto`` resolved)."""
        if self.format == "auto":
            return "table" if prefer_table and self.terminal else "json"
        return self.format

    @contextlib.contextmanager
    def text(self) -> Iterator[TextIO]:
        """The text stream to write to (``--output`` opened for the duration)."""
        if self.path is None:
            yield self._out
            return
        with open(self.path, "w", encoding="utf-8") as handle:
            yield handle

    @contextlib.contextmanager
    def binary(self) -> Iterator[BinaryIO]:
        """The binary stream for ``--format arrow``."""
        if self.path is not None:
            with open(self.path, "wb") as handle:
                yield handle
            return
        buffer = getattr(self._out, "buffer", None)
        if buffer is None:
            raise UsageError("--format arrow needs --output FILE here (no binary stdout)")
        if self.terminal:
            sys.stderr.write("vgi-rpc: writing Arrow IPC to a terminal; use --output FILE\n")
        self._out.flush()
        yield buffer
        buffer.flush()

    def json_line(self, stream: TextIO, value: object) -> None:
        """One JSON document (indented on a terminal)."""
        indent = 2 if self.terminal and self.format == "auto" else None
        stream.write(json.dumps(value, ensure_ascii=False, indent=indent, default=str) + "\n")
        stream.flush()


def print_table(
    records: list[dict[str, object]], names: list[str], out: TextIO, *, header: bool = True
) -> None:
    """Aligned columns, under a header line unless ``header`` is false."""
    cells = [
        [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in r.values()]
        for r in records
    ]
    widths = [max([len(n), *(len(c[i]) for c in cells)]) for i, n in enumerate(names)]
    if header:
        out.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip() + "\n")
    for c in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() + "\n")


class StreamPrinter:
    """Writes a call's output as it arrives: rows as JSON lines, tables, or one IPC stream."""

    def __init__(self, output: Output, text: TextIO | None, binary: BinaryIO | None) -> None:
        self._output = output
        self._fmt = "arrow" if binary is not None else output.text_format(prefer_table=False)
        self._text = text
        self._binary = binary
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None

    def header(self, batch: pa.RecordBatch) -> None:
        """A stream's header row, before its data."""
        if self._binary is not None:
            with pa.ipc.new_stream(cast(io.IOBase, self._binary), batch.schema) as writer:
                writer.write_batch(batch)
            return
        assert self._text is not None
        values = rows(batch)[0] if batch.num_rows else {}
        if self._fmt == "json":
            self._output.json_line(self._text, {"__header__": values})
        else:
            self._text.write("header:\n")
            for key, value in values.items():
                self._text.write(f"  {key}: {value}\n")

    def batch(self, batch: pa.RecordBatch) -> None:
        """One output batch."""
        if self._binary is not None:
            if self._writer is None:
                self._writer = pa.ipc.new_stream(cast(io.IOBase, self._binary), batch.schema)
            self._writer.write_batch(batch)
            return
        assert self._text is not None
        if self._fmt == "json":
            for row in rows(batch):
                self._output.json_line(self._text, row)
            return
        new_schema = self._schema is None or not batch.schema.equals(self._schema)
        print_table(rows(batch), batch.schema.names, self._text, header=new_schema)
        self._schema = batch.schema

    def result(self, batch: pa.RecordBatch | None) -> None:
        """A unary result (``None`` or no columns: the method returns nothing)."""
        if batch is None or not batch.num_columns:
            if self._binary is not None:
                self.batch(pa.record_batch({}))
            elif self._fmt == "json":
                assert self._text is not None
                self._output.json_line(self._text, None)
            else:
                assert self._text is not None
                self._text.write("(no result)\n")
            return
        self.batch(batch)

    def close(self) -> None:
        """End the IPC stream, if one was started."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _fields(schema: pa.Schema | None) -> list[dict[str, object]] | None:
    if schema is None:
        return None
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def _method_json(m: MethodDescription, doc: str) -> dict[str, object]:
    return {
        # the reference command's keys
        "method_type": m.method_type.value,
        "has_return": m.has_return,
        "params_schema": str(m.params_schema),
        "result_schema": str(m.result_schema),
        # ours
        "name": m.name,
        "is_exchange": m.is_exchange,
        "has_header": m.has_header,
        "doc": doc,
        "params": _fields(m.params_schema),
        "result": _fields(m.result_schema),
        "header": _fields(m.header_schema),
        "request_json_schema": schema_object(m.params_schema),
        "response_json_schema": schema_object(m.result_schema),
    }


def describe_json(
    description: ServiceDescription, hosted: list[ProtocolSummary]
) -> dict[str, object]:
    """``describe --format json``: the reference's document, with our additions."""
    document: dict[str, object] = {
        "protocol_name": description.protocol_name,
        "server_id": description.server_id,
        "request_version": description.request_version,
        "describe_version": description.describe_version,
        "protocol_hash": description.protocol_hash,
        "protocol_version": description.protocol_version or "",
        "doc": description.docs.get("", ""),
        "methods": {
            name: _method_json(m, description.docs.get(name, ""))
            for name, m in sorted(description.methods.items())
        },
    }
    if hosted:
        document["protocols"] = [
            {
                "protocol": p.protocol,
                "protocol_version": p.protocol_version,
                "protocol_hash": p.protocol_hash,
            }
            for p in hosted
        ]
    return document


def print_describe(
    output: Output, description: ServiceDescription, hosted: list[ProtocolSummary]
) -> None:
    """``vgi-rpc describe``."""
    with output.text() as out:
        if output.text_format(prefer_table=True) == "table":
            out.write(str(description) + "\n")
            for summary in hosted:
                version = f" {summary.protocol_version}" if summary.protocol_version else ""
                out.write(f"hosted: {summary.protocol}{version} ({summary.protocol_hash[:16]})\n")
        else:
            output.json_line(out, describe_json(description, hosted))


def print_loggers(output: Output) -> None:
    """``vgi-rpc loggers``: every logger name, what it carries, when to turn it on."""
    records: list[dict[str, object]] = [
        {"name": name, "description": what, "scenario": when} for name, what, when in LOGGERS
    ]
    with output.text() as out:
        if output.text_format(prefer_table=True) == "table":
            print_table(records, ["name", "description", "scenario"], out)
        else:
            output.json_line(out, records)


def print_error(output: Output, exc: RpcError) -> None:
    """A failure the other side reported: JSON on stderr for scripts, a line for people."""
    if output.text_format(prefer_table=False) == "table":
        sys.stderr.write(f"vgi-rpc: {exc.error_type}: {exc.error_message}\n")
        return
    error: dict[str, object] = {"type": exc.error_type, "message": exc.error_message}
    if exc.remote_traceback:
        error["traceback"] = exc.remote_traceback
    sys.stderr.write(json.dumps({"error": plain(error)}, default=str) + "\n")


__all__ = [
    "FORMATS",
    "Output",
    "StreamPrinter",
    "describe_json",
    "print_describe",
    "print_error",
    "print_loggers",
    "print_table",
]
