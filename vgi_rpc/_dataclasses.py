"""``ArrowSerializableDataclass``: a dataclass mixin with a cached Arrow schema.

A value serializes to a whole Arrow IPC stream holding one row (spec
section 4). Knows nothing of methods or the RPC wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

import pyarrow as pa

from vgi_rpc._arrow_codecs import build_dataclass, dataclass_field_codecs
from vgi_rpc._arrow_types import Codec, fields_schema
from vgi_rpc._errors import IPCError
from vgi_rpc._flat_row import FlatRow, flat_layout
from vgi_rpc._ipc_embedded import read_embedded_row

if TYPE_CHECKING:
    import dataclasses


class _SchemaDescriptor:
    """Computes a class's ``ARROW_SCHEMA`` on first access (after ``@dataclass`` ran)."""

    def __get__(self, instance: object, owner: type) -> pa.Schema:
        cached = owner.__dict__.get("__vgi_arrow_schema__")
        if cached is None:
            cached = fields_schema(dataclass_field_codecs(owner))
            type.__setattr__(owner, "__vgi_arrow_schema__", cached)
        assert isinstance(cached, pa.Schema)
        return cached


class ArrowSerializableDataclass:
    """Mixin for ``@dataclass`` classes that travel as Arrow.

    ``ARROW_SCHEMA`` is derived from the field annotations (see the type
    table in the docs) and cached on the class. Values round-trip through
    ``serialize_to_bytes`` / ``deserialize_from_bytes`` and can be used
    directly as RPC parameters, results and stream headers.
    """

    __vgi_arrow_dataclass__: ClassVar[bool] = True
    if TYPE_CHECKING:
        ARROW_SCHEMA: ClassVar[pa.Schema]
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    else:
        ARROW_SCHEMA = _SchemaDescriptor()

    def to_record_batch(self) -> pa.RecordBatch:
        """Return this value as a one-row ``RecordBatch`` on ``ARROW_SCHEMA``."""
        schema = type(self).ARROW_SCHEMA
        codecs = dataclass_field_codecs(type(self))
        cls_name = type(self).__name__
        arrays = []
        for (name, codec), field in zip(codecs, schema, strict=True):
            value = getattr(self, name)
            if value is None and not codec.nullable:
                raise TypeError(f"{cls_name}.{name} is not Optional but is None")
            py = None if value is None else codec.to_arrow(value, f"{cls_name}.{name}")
            arrays.append(pa.array([py], type=field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def serialize_to_bytes(self) -> bytes:
        """Serialize to an Arrow IPC stream: schema, one row, end-of-stream."""
        layout = flat_layout(type(self).ARROW_SCHEMA)
        rows = layout.writer() if layout is not None else None
        if rows is not None:  # flat fields: the same bytes, without building arrays
            cls_name = type(self).__name__
            values = []
            for name, codec in dataclass_field_codecs(type(self)):
                value = getattr(self, name)
                if value is None and not codec.nullable:
                    raise TypeError(f"{cls_name}.{name} is not Optional but is None")
                values.append(
                    None if value is None else codec.to_arrow(value, f"{cls_name}.{name}")
                )
            stream = rows.stream(values)
            if stream is not None:
                return stream
        batch = self.to_record_batch()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        return sink.getvalue().to_pybytes()

    @classmethod
    def from_record_batch(cls, batch: pa.RecordBatch) -> Self:
        """Rebuild a value from a one-row batch, matching columns by name."""
        if batch.num_rows != 1:
            raise IPCError(f"{cls.__name__}: expected a 1-row batch, got {batch.num_rows} rows")
        row = {name: batch.column(i).to_pylist()[0] for i, name in enumerate(batch.schema.names)}
        codecs: list[tuple[str, Codec]] = dataclass_field_codecs(cls)
        return build_dataclass(cls, codecs, row)  # type: ignore[return-value]  # build_dataclass returns cls(...)

    @classmethod
    def deserialize_from_bytes(cls, data: bytes | pa.Buffer) -> Self:
        """Rebuild a value from ``serialize_to_bytes`` output (or any equivalent stream)."""
        found = read_embedded_row(data, cls.__name__)
        if isinstance(found, FlatRow):
            row = dict(zip(found.layout.schema.names, found.values, strict=True))
            return build_dataclass(cls, dataclass_field_codecs(cls), row)  # type: ignore[return-value]  # cls(...)
        return cls.from_record_batch(found)


__all__ = ["ArrowSerializableDataclass"]
