"""Wire batches in and out: validate what a client sent, shape what it gets back.

Owns the column conventions (``id`` utf8, ``vector`` fixed_size_list<float32>,
``metadata`` struct) and every check on untrusted input before anything is
allocated from it. Knows nothing of faiss, the log or the RPC layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc.services.vectorindex import _metatypes
from vgi_rpc.services.vectorindex._errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidVectorError,
)

MAX_BATCH_ROWS = 1_000_000
MAX_ID_BYTES = 512
MAX_TOP_K = 10_000
MAX_QUERIES = 100_000
MAX_ANSWER_BYTES = 512 << 20  # one query answer, or one batch of query_stream
MAX_METADATA_FIELDS = 1_000  # per batch, and per namespace (nested fields count)
MAX_ROW_METADATA_BYTES = 64 << 10  # one row's metadata
MAX_EXPANSION_BYTES = 256 << 20  # null-filling (new fields, map keys) one request may cause


def vector_type(dim: int) -> pa.DataType:
    """The wire type of a vector column."""
    return pa.list_(pa.float32(), dim)


def check_ids(ids: Sequence[str] | pa.Array[Any], what: str = "ids") -> list[str]:
    """Ids as a list: non-null, non-empty, at most 512 bytes, no duplicates."""
    if len(ids) > MAX_BATCH_ROWS:
        raise InvalidArgumentError(f"{len(ids)} {what}; at most {MAX_BATCH_ROWS} per call")
    raw = ids.to_pylist() if isinstance(ids, pa.Array) else list(ids)
    seen: set[str] = set()
    values: list[str] = []
    for value in raw:
        if not isinstance(value, str) or not value:
            raise InvalidArgumentError(f"{what} must be non-empty strings, got {value!r}")
        values.append(value)
        if len(value) > MAX_ID_BYTES // 4 and len(value.encode()) > MAX_ID_BYTES:
            raise InvalidArgumentError(f"id {value[:40]!r}... is longer than {MAX_ID_BYTES} bytes")
        if value in seen:
            raise DuplicateIdError(f"id {value!r} appears more than once in one batch")
        seen.add(value)
    return values


def vectors_to_numpy(
    column: pa.Array[Any] | pa.ChunkedArray[Any], dim: int
) -> npt.NDArray[np.float32]:
    """A vector column as an ``(n, dim)`` float32 array; every value finite."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise DimensionMismatchError(f"vectors have dimension {t.list_size}, the index {dim}")
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(column)
        bad = (
            pc.any(pc.not_equal(lengths, pa.scalar(dim, pa.int32()))).as_py()
            if len(column)
            else False
        )
        if bad:
            raise DimensionMismatchError(f"some vectors do not have the index dimension {dim}")
    else:
        raise InvalidArgumentError(f"vector column must be fixed_size_list<float32>, got {t}")
    if not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise InvalidArgumentError(f"vector values must be numbers, got {t.value_type}")
    if column.null_count:
        raise InvalidVectorError("a vector is null")
    values = pc.list_flatten(column)
    if values.null_count:
        raise InvalidVectorError("a vector holds a null value")
    array = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    with np.errstate(over="ignore"):
        if not np.isfinite(array).all():
            raise InvalidVectorError("vectors must be finite: found NaN or infinity")
    result: npt.NDArray[np.float32] = array.reshape(len(column), dim)
    return result


def check_metadata(
    column: pa.Array[Any] | pa.ChunkedArray[Any] | None, rows: int
) -> pa.Array[Any] | None:
    """A metadata column: a struct with one entry per row (null rows become empty)."""
    if column is None:
        return None
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_map(column.type) and pa.types.is_string(column.type.key_type):
        column = map_to_struct(column)
    if not pa.types.is_struct(column.type):
        raise InvalidArgumentError(
            f"metadata must be a struct or map<string, _> column, got {column.type}"
        )
    if len(column) != rows:
        raise InvalidArgumentError(f"{len(column)} metadata rows for {rows} vectors")
    for field in column.type:
        if not field.name or field.name.startswith("$"):
            raise InvalidArgumentError(f"bad metadata field name {field.name!r}")
    fields = _metatypes.check_type(column.type)
    if fields > MAX_METADATA_FIELDS:
        raise InvalidArgumentError(
            f"metadata has {fields} fields (nested ones included); at most {MAX_METADATA_FIELDS}"
        )
    if rows:
        sizes = _metatypes.variable_bytes(column)
        biggest = _metatypes.fixed_bytes(column.type) + int(sizes.max())
        if biggest > MAX_ROW_METADATA_BYTES:
            row = int(sizes.argmax())
            raise InvalidArgumentError(
                f"metadata of row {row} takes {biggest} bytes; at most "
                f"{_size(MAX_ROW_METADATA_BYTES)} per row"
            )
    return column


def map_to_struct(column: pa.Array[Any]) -> pa.Array[Any]:
    """A map<string, V> column as a struct with one V field per key seen (absent: null)."""
    maps: Any = column  # a MapArray
    keys = pc.unique(maps.keys).to_pylist()  # in order of first appearance
    if len(keys) > MAX_METADATA_FIELDS:
        raise InvalidArgumentError(
            f"metadata maps use {len(keys)} distinct keys; at most {MAX_METADATA_FIELDS}"
        )
    value_type = column.type.item_type
    _metatypes.check_type(value_type, "map value")
    cost = len(column) * len(keys) * _metatypes.null_fill_bytes(value_type)
    if cost > MAX_EXPANSION_BYTES:  # every row gets every key's field
        raise InvalidArgumentError(
            f"metadata maps of {len(column)} rows with {len(keys)} distinct keys would take "
            f"{_size(cost)} as fields; at most {_size(MAX_EXPANSION_BYTES)}: "
            "send fewer rows per batch or fewer distinct keys"
        )
    rows = maps.to_pylist(maps_as_pydicts="strict")
    return pa.array(rows, pa.struct([pa.field(str(k), value_type) for k in keys]))


def check_top_k(top_k: int) -> None:
    """``top_k`` must be 1..10,000."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgumentError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")


def check_answer_size(queries: int, hits_per_query: int, hit_bytes: int) -> None:
    """An answer (every match of every query, or every fetched row) must stay under 512 MiB.

    It is built in memory: without the bound a small request (100,000
    two-float queries, top_k 10,000) would make the server build a billion rows.
    """
    hits = queries * hits_per_query
    if hits * hit_bytes > MAX_ANSWER_BYTES:
        what = f"{queries} queries x {hits_per_query} matches is " if hits_per_query > 1 else ""
        raise InvalidArgumentError(
            f"{what}{hits} rows (about {_size(hits * hit_bytes)}); one answer holds at most "
            f"{_size(MAX_ANSWER_BYTES)}: ask for fewer rows (query_stream and export stream them)"
        )


def check_answer_bytes(rows: int, total: int) -> None:
    """The exact size of an answer about to be built (rows x their own sizes) must fit."""
    if total > MAX_ANSWER_BYTES:
        raise InvalidArgumentError(
            f"{rows} rows (about {_size(total)}); one answer holds at most "
            f"{_size(MAX_ANSWER_BYTES)}: ask for fewer rows (query_stream and export stream them)"
        )


def leading_that_fit(sizes: npt.NDArray[np.int64]) -> int:
    """How many leading entries of ``sizes`` fit one answer together (0: not even the first)."""
    return int(np.searchsorted(np.cumsum(sizes), MAX_ANSWER_BYTES, side="right"))


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count >> 10} KiB"


def queries_per_answer(hits_per_query: int, hit_bytes: int) -> int:
    """How many queries fit one answer (at least 1: a single query too large is refused)."""
    return max(1, MAX_ANSWER_BYTES // max(1, hits_per_query * hit_bytes))


def query_vectors(batch: pa.RecordBatch, dim: int) -> npt.NDArray[np.float32]:
    """The query vectors of a request batch (column ``vector``)."""
    if batch.schema.get_field_index("vector") < 0:
        raise InvalidArgumentError(f"query batch needs a 'vector' column, has {batch.schema.names}")
    if batch.num_rows > MAX_QUERIES:
        raise InvalidArgumentError(f"{batch.num_rows} query vectors; at most {MAX_QUERIES}")
    return vectors_to_numpy(batch.column("vector"), dim)


def upsert_columns(
    batch: pa.RecordBatch, dim: int
) -> tuple[list[str], npt.NDArray[np.float32], pa.Array[Any] | None]:
    """Validate an upsert batch (``id``, ``vector``, optional ``metadata``)."""
    names = batch.schema.names
    if "id" not in names or "vector" not in names:
        raise InvalidArgumentError(f"upsert batch needs 'id' and 'vector' columns, has {names}")
    extra = set(names) - {"id", "vector", "metadata"}
    if extra:
        raise InvalidArgumentError(f"unexpected upsert columns {sorted(extra)}")
    if batch.num_rows > MAX_BATCH_ROWS:
        raise InvalidArgumentError(f"{batch.num_rows} rows; at most {MAX_BATCH_ROWS} per batch")
    id_col = batch.column("id")
    if not (pa.types.is_string(id_col.type) or pa.types.is_large_string(id_col.type)):
        raise InvalidArgumentError(f"ids must be strings, got {id_col.type}")
    ids = check_ids(id_col)
    vectors = vectors_to_numpy(batch.column("vector"), dim)
    meta = check_metadata(batch.column("metadata") if "metadata" in names else None, len(ids))
    return ids, vectors, meta


def vectors_array(vectors: npt.NDArray[np.float32]) -> pa.Array[Any]:
    """An ``(n, dim)`` array as a fixed_size_list<float32> column."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim)
