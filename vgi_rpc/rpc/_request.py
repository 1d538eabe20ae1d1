"""Request batches: building them from Python arguments, reading them back.

Spec section 5. Shared by the client (encode) and the server (decode); no
dispatch decisions here.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import pyarrow as pa

from vgi_rpc._errors import IPCError, ProtocolError
from vgi_rpc._flat_row import FlatRow, flat_layout
from vgi_rpc._ipc import Metadata
from vgi_rpc._ipc_reader import ReadPolicy
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.rpc._channel import Channel

ArrowArray: TypeAlias = "pa.Array[Any]"  # element type varies per column

# A parameterless request still carries one row (spec section 5).
ONE_EMPTY_ROW = pa.RecordBatch.from_arrays([pa.nulls(1)], names=["_"]).select([])


class Request:
    """A request batch as read from the wire, before routing.

    A canonical one-row request of flat columns arrives as a ``FlatRow``
    (``row``): its values are read already, and ``batch`` is only built
    (by pyarrow) when something asks for it.
    """

    __slots__ = ("batch", "extra_batches", "metadata", "rejected", "row")

    batch: pa.RecordBatch  # a row's is built on first access (``__getattr__``)

    def __init__(
        self,
        batch: pa.RecordBatch | FlatRow,
        metadata: Metadata,
        extra_batches: int,
        rejected: IPCError | None = None,
    ) -> None:
        if isinstance(batch, FlatRow):
            self.row: FlatRow | None = batch
        else:
            self.row = None
            self.batch = batch
        self.metadata = metadata
        self.extra_batches = extra_batches
        # Set when the batch failed the read policy; the stream was still consumed to its
        # end, so the connection stays usable and the server answers with an error.
        self.rejected = rejected

    def __getattr__(self, name: str) -> pa.RecordBatch:
        # Only reached while a row's ``batch`` slot is still empty: a plain slot read otherwise.
        if name != "batch" or self.row is None:
            raise AttributeError(name)
        self.batch = self.row.batch()
        return self.batch


def read_request(channel: Channel, policy: ReadPolicy) -> Request | None:
    """Read one whole request stream (through its EOS); ``None`` on a clean end of file.

    This is the server's decode boundary: the request batch is bounded and
    validated under ``policy``, and any further batches are skipped without
    being decoded. The stream is always consumed to its EOS marker, so a bad
    request never leaves bytes behind for the next one: a batch that fails
    the policy comes back as a ``Request`` whose ``rejected`` says why.

    Raises:
        IPCError: The bytes are not an Arrow IPC stream (the connection cannot
            be resynchronised) or hold no batch.
        TransportError: The peer closed the channel mid-stream.
    """
    reader = policy.open(channel.reader)
    if reader is None:
        return None
    try:
        first = reader.read(policy.validation, True)
    except IPCError as exc:
        try:
            reader.drain()
        except IPCError:
            raise exc from None  # the byte stream itself is broken: report the first fault
        return Request(ONE_EMPTY_ROW, reader.last_metadata or {}, 0, rejected=exc)
    if first is None:
        empty = IPCError("request stream holds no batch: expected exactly one request batch")
        return Request(ONE_EMPTY_ROW, {}, 0, rejected=empty)
    extra = reader.drain()
    batch, metadata = first
    return Request(batch, metadata or {}, extra)


def drain_stream(channel: Channel, policy: ReadPolicy) -> None:
    """Read and discard one whole IPC stream (e.g. the input of a stream that failed to start)."""
    reader = policy.open(channel.reader)
    if reader is not None:
        reader.drain()


def encode_arguments(info: RpcMethodInfo, arguments: dict[str, object]) -> pa.RecordBatch:
    """Build the one-row request batch for a call; validates every argument's Python type.

    Raises:
        TypeError: An argument has the wrong type, or ``None`` for a non-Optional parameter.
    """
    if not info.params:
        return ONE_EMPTY_ROW
    arrays = []
    for param in info.params:
        value = arguments[param.name]
        where = f"{info.name}(): argument {param.name!r}"
        if value is None:
            if not param.codec.nullable:
                raise TypeError(f"{where} is not Optional but got None")
            arrays.append(pa.array([None], type=param.field.type))
            continue
        converted = param.codec.to_arrow(value, where)
        try:
            arrays.append(param.build(converted))
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=info.params_schema)


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.utf8()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def _conform(column: ArrowArray, expected: pa.DataType, where: str) -> ArrowArray:
    """Accept any encoding of the expected type (index widths, large/view layouts, safe casts)."""
    actual = column.type
    if actual == expected or _plain(actual) == _plain(expected):
        return column
    try:
        return column.cast(expected, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise TypeError(f"{where} expects Arrow type {expected}, got {actual}") from exc


def _row_arguments(info: RpcMethodInfo, row: FlatRow) -> dict[str, object]:
    """``decode_arguments`` for a row read without pyarrow: its values are the arguments."""
    layout = flat_layout(info.params_schema)
    if layout is None or row.layout.signature != layout.signature:
        return decode_arguments(info, row.batch())  # other names or types: conform them
    kwargs: dict[str, object] = {}
    for param, value in zip(info.params, row.values, strict=True):
        if value is None:
            if not param.codec.nullable:
                raise TypeError(
                    f"{info.name}(): parameter {param.name!r} is not Optional but received null"
                )
            kwargs[param.name] = None
        else:
            kwargs[param.name] = param.codec.from_arrow(value)
    return kwargs


def decode_arguments(info: RpcMethodInfo, batch: pa.RecordBatch | FlatRow) -> dict[str, object]:
    """Turn a request batch into keyword arguments, applying Protocol defaults.

    Raises:
        ProtocolError: The batch does not have exactly one row.
        TypeError: A column is missing, has an incompatible type, is null for a
            non-Optional parameter, or is not a parameter of the method.
    """
    if isinstance(batch, FlatRow):
        return _row_arguments(info, batch)
    if not info.params and not batch.num_columns:
        return {}  # a parameterless call (its one empty row is not counted, as below)
    if batch.num_columns and batch.num_rows != 1:
        raise ProtocolError(
            f"{info.name}(): a request batch must have exactly 1 row, got {batch.num_rows}"
        )
    names = batch.schema.names
    known = {p.name for p in info.params}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TypeError(
            f"{info.name}() got unexpected parameters {unknown}; it takes {sorted(known)}"
        )
    kwargs: dict[str, object] = {}
    for param in info.params:
        where = f"{info.name}(): parameter {param.name!r}"
        try:
            index = names.index(param.name)
        except ValueError:
            if param.has_default:
                kwargs[param.name] = param.default
                continue
            raise TypeError(f"{where} is missing from the request") from None
        column = _conform(batch.column(index), param.field.type, where)
        value = column.to_pylist()[0]
        if value is None:
            if not param.codec.nullable:
                raise TypeError(f"{where} is not Optional but received null")
            kwargs[param.name] = None
            continue
        kwargs[param.name] = param.codec.from_arrow(value)
    return kwargs


__all__ = [
    "ONE_EMPTY_ROW",
    "Request",
    "decode_arguments",
    "drain_stream",
    "encode_arguments",
    "read_request",
]
