"""Answers as Arrow: query results, fetched and exported rows, upsert acks.

Owns the output column layout. Reads an engine; never changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc.services.vectorindex._batches import vector_type, vectors_array
from vgi_rpc.services.vectorindex._engine import Engine

UPSERT_ACK = pa.schema([pa.field("offset", pa.int64()), pa.field("count", pa.int64())])


def project_struct(array: pa.Array[Any], target: pa.StructType) -> pa.Array[Any]:
    """``array`` with exactly ``target``'s fields (missing ones null, extra ones dropped)."""
    if array.type == target:
        return array
    children = []
    for field in target:
        index = array.type.get_field_index(field.name)
        if index < 0:
            children.append(pa.nulls(len(array), field.type))
        else:
            children.append(pc.struct_field(array, [index]).cast(field.type))
    mask = array.is_null() if array.null_count else None
    return pa.StructArray.from_arrays(children, fields=list(target), mask=mask)


def rows_schema(dim: int, meta_type: pa.DataType) -> pa.Schema:
    """Schema of fetched and exported rows."""
    return pa.schema([("id", pa.utf8()), ("vector", vector_type(dim)), ("metadata", meta_type)])


def rows_batch(engine: Engine, rows: Sequence[int], meta_type: pa.StructType) -> pa.RecordBatch:
    """Rows by position as ``id``, ``vector``, ``metadata``."""
    index = np.asarray(rows, dtype=np.int64)
    ids = engine.ids.take(pa.array(index, pa.int64()))
    vectors = vectors_array(engine.vectors_of(index).reshape(len(index), engine.config.dim))
    meta = project_struct(engine.metadata.take(pa.array(index, pa.int64())), meta_type)
    return pa.RecordBatch.from_arrays(
        [ids, vectors, meta], schema=rows_schema(engine.config.dim, meta_type)
    )


def query_schema(dim: int, include: tuple[bool, bool], meta_type: pa.DataType) -> pa.Schema:
    """Schema of query results."""
    fields: list[pa.Field[Any]] = [
        pa.field("query", pa.int32()),
        pa.field("rank", pa.int32()),
        pa.field("id", pa.utf8()),
        pa.field("score", pa.float32()),
    ]
    if include[0]:
        fields.append(pa.field("vector", vector_type(dim)))
    if include[1]:
        fields.append(pa.field("metadata", meta_type))
    return pa.schema(fields)


def query_batch(
    engine: Engine,
    rows: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    first_query: int,
    include: tuple[bool, bool],
    meta_type: pa.StructType,
) -> pa.RecordBatch:
    """One row per match: query index, rank, id, score (+ vector, metadata)."""
    nq, k = rows.shape
    flat = rows.reshape(-1)
    columns: list[pa.Array[Any]] = [
        pa.array(np.repeat(np.arange(first_query, first_query + nq, dtype=np.int32), k)),
        pa.array(np.tile(np.arange(k, dtype=np.int32), nq)),
        engine.ids.take(pa.array(flat, pa.int64())),
        pa.array(scores.reshape(-1), pa.float32()),
    ]
    if include[0]:
        columns.append(vectors_array(engine.vectors_of(flat).reshape(len(flat), engine.config.dim)))
    if include[1]:
        columns.append(project_struct(engine.metadata.take(pa.array(flat, pa.int64())), meta_type))
    return pa.RecordBatch.from_arrays(
        columns, schema=query_schema(engine.config.dim, include, meta_type)
    )
