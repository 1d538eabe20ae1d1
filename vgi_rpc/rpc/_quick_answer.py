"""A unary call's plain answer read straight out of the channel's buffer.

Most answers to a small call are the same schema message, one flat row with
no metadata, and the end-of-stream marker: exactly the bytes our server
writes for the method's result. When the buffered bytes start that way, the
row is decoded in place (every check of the flat codec applies) and the
answer consumed; anything else (logs, errors, pointers, another server's
spelling, an answer not yet wholly read) is left untouched for the general
reader.
"""

from __future__ import annotations

import io
import logging
from typing import Final

from vgi_rpc._flat_row import EOS, FlatLayout, flat_layout
from vgi_rpc._ipc import encode_stream
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.rpc._wire_log import wire_batch_log
from vgi_rpc.wire import empty_batch

MISS: Final = object()
"""``read_plain_answer``'s result when the general reader must read the answer."""

_CONTINUATION = b"\xff\xff\xff\xff"
_MAX_HEADER = 4096


class AnswerShape:
    """What the plain answer of one method looks like on the wire."""

    __slots__ = ("head", "layout")

    def __init__(self, head: bytes, layout: FlatLayout | None) -> None:
        self.head = head  # the schema message (for no result: the whole answer)
        self.layout = layout


def answer_shape(info: RpcMethodInfo) -> AnswerShape | None:
    """The plain answer's shape, or ``None`` when this method's answers are never plain."""
    if info.is_stream:
        return None
    if info.result_codec is None:  # no result: a zero-column row, the same bytes every time
        schema = info.result_schema
        whole = encode_stream(schema, [(empty_batch(schema), None)]).to_pybytes()
        return AnswerShape(whole, None)
    layout = flat_layout(info.result_schema)
    writer = layout.writer() if layout is not None else None
    if layout is None or writer is None or len(layout.columns) != 1:
        return None
    return AnswerShape(writer.schema_message, layout)


def read_plain_answer(reader: io.BufferedReader, shape: AnswerShape) -> object:
    """The answer's one value (``None`` for no result) if it is plain and wholly buffered, else ``MISS``.

    Nothing is consumed on ``MISS``.
    """
    if wire_batch_log.isEnabledFor(logging.DEBUG):
        return MISS
    try:
        buffered = reader.peek(1)
    except (OSError, ValueError):
        return MISS  # the general reader meets the same failure and reports it
    head = shape.head
    if not buffered.startswith(head):
        return MISS
    layout = shape.layout
    if layout is None:
        reader.read(len(head))
        return None
    start = len(head)
    if buffered[start : start + 4] != _CONTINUATION:
        return MISS
    header_length = int.from_bytes(buffered[start + 4 : start + 8], "little", signed=True)
    if not 0 < header_length <= _MAX_HEADER:
        return MISS
    header = buffered[start + 8 : start + 8 + header_length]
    plan = layout.plan(header, None)  # only a header without metadata, byte for byte ours
    if plan is None:
        return MISS
    end = start + plan[-1][0]
    if buffered[end : end + 8] != EOS:
        return MISS  # more batches follow, or the answer is not all here yet
    values = layout.decode(header, buffered[start:end], None)
    if values is None:
        return MISS
    reader.read(end + 8)
    return values[0]


__all__ = ["MISS", "AnswerShape", "answer_shape", "read_plain_answer"]
