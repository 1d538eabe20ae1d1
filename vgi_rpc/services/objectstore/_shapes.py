"""Validated stream shapes: a put like one already checked in full is checked by its edges.

A stream of one batch whose columns are all fixed-width primitives without
nulls is ``head + body + tail``, and nothing in ``body`` can make it
malformed: every length, offset and type is in ``head`` (schema and batch
header), and any bytes are a valid int, float or bool. So once such a
stream has passed the full check, another of the same size with the same
``head`` and ``tail`` is well-formed too, whatever its body; comparing
those edges (a few hundred bytes read with ``pread``) replaces parsing it.
Streams of any other kind are always checked in full.
"""

from __future__ import annotations

import dataclasses
import os
import threading

import pyarrow as pa

_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_MAX_SHAPES = 64
_MAX_HEAD = 64 << 10


@dataclasses.dataclass(frozen=True, slots=True)
class _Shape:
    head: bytes
    tail: bytes
    typename: str


def _free_body(schema: pa.Schema, batch: pa.RecordBatch) -> bool:
    """Whether no byte of the batch's body can make the stream malformed."""
    for field, column in zip(schema, batch.columns, strict=True):
        if not pa.types.is_primitive(field.type) or pa.types.is_boolean(field.type):
            return False  # (booleans too: keep the rule to whole-byte values)
        if column.null_count or column.buffers()[0] is not None:
            return False
    return True


class StreamShapes:
    """Edges of streams that passed the full check, by size (at most a few dozen)."""

    def __init__(self) -> None:
        self._shapes: dict[int, list[_Shape]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def known(self, fd: int, size: int) -> str | None:
        """The type name when the open file ``fd`` (``size`` bytes) holds a stream of a known shape."""
        with self._lock:
            shapes = self._shapes.get(size)
        for shape in shapes or ():
            head = os.pread(fd, len(shape.head), 0)
            tail = os.pread(fd, len(shape.tail), size - len(shape.tail))
            if head == shape.head and tail == shape.tail:
                return shape.typename
        return None

    def known_sizes(self) -> list[int]:
        """Sizes of the shapes learned so far."""
        with self._lock:
            return sorted(self._shapes)

    def learn(self, data: pa.Buffer, typename: str) -> None:
        """Remember the shape of ``data``, a stream that just passed the full check."""
        reader = pa.BufferReader(data)
        try:
            schema_message = pa.ipc.read_message(reader)
            batch_message = pa.ipc.read_message(reader)
            body_end = reader.tell()
            if data.size - body_end != len(_EOS):
                return  # not exactly one batch then the end of the stream
            tail = data.slice(body_end).to_pybytes()
            schema = pa.ipc.read_schema(schema_message)
            batch = pa.ipc.read_record_batch(batch_message, schema)
        except (pa.ArrowException, OSError, ValueError):
            return
        body_start = body_end - (batch_message.body.size if batch_message.body else 0)
        if tail != _EOS or body_start > _MAX_HEAD or not _free_body(schema, batch):
            return
        shape = _Shape(data.slice(0, body_start).to_pybytes(), tail, typename)
        with self._lock:
            if self._count >= _MAX_SHAPES:
                self._shapes.clear()
                self._count = 0
            same = self._shapes.setdefault(data.size, [])
            if shape not in same:
                same.append(shape)
                self._count += 1


__all__ = ["StreamShapes"]
