"""waitress tuned for Arrow bodies: large requests into Arrow's memory pool, small answers in one send.

waitress collects every request body in a ``BytesIO`` before it calls the
app; for a body of tens of MiB that is fresh memory per request (every page
faulted in and given back afterwards) and a second copy when the app reads
it. Here a body of known length goes into one pooled buffer of that length
(Arrow's allocator reuses freed pages), and the app takes that buffer as its
request without copying it (``PooledBodyFile.take``).

waitress also sends a response's head and its body in two writes; for a small
answer that is two TCP segments and two wake-ups of the client instead of one,
so a small body leaves together with its head.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import FixedStreamReceiver
from waitress.task import WSGITask

POOLED_FROM = 1 << 20  # smaller bodies stay in waitress's own buffer
COALESCE_UP_TO = 64 * 1024  # a body this small leaves in the same write as the head


class PooledBodyFile(io.RawIOBase):
    """``wsgi.input`` over a received body; ``take()`` hands over the buffer itself."""

    def __init__(self, body: pa.Buffer) -> None:
        self._body: pa.Buffer | None = body
        self._position = 0

    def take(self) -> pa.Buffer:
        """The whole body, not copied; the file is empty afterwards."""
        body, self._body = self._body, None
        if body is None:
            raise ValueError("the request body was already taken")
        return body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._body is None:
            return 0
        target = memoryview(buffer).cast("B")
        source = memoryview(self._body).cast("B")
        count = min(target.nbytes, source.nbytes - self._position)
        target[:count] = source[self._position : self._position + count]
        self._position += count
        return count


class _PooledBody:
    """waitress's body-buffer interface over one pooled buffer of the announced length."""

    def __init__(self, length: int) -> None:
        self._buffer = pa.allocate_buffer(length)
        self._view = memoryview(self._buffer).cast("B")
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    def __bool__(self) -> bool:
        return True

    def append(self, data: bytes) -> None:
        # FixedStreamReceiver never appends past the announced length
        end = self._filled + len(data)
        self._view[self._filled : end] = data
        self._filled = end

    def getfile(self) -> PooledBodyFile:
        return PooledBodyFile(self._buffer.slice(0, self._filled))

    def close(self) -> None:
        self._view = memoryview(b"")
        self._buffer = pa.py_buffer(b"")


class _PooledParser(HTTPRequestParser):  # type: ignore[misc]
    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        length: int = self.content_length
        receiver: Any = getattr(self, "body_rcv", None)
        if (
            isinstance(receiver, FixedStreamReceiver)
            and POOLED_FROM <= length < self.adj.max_request_body_size
            and length <= self.adj.inbuf_overflow  # the bound on a body held in memory
        ):
            self.body_rcv = FixedStreamReceiver(length, _PooledBody(length))


class _CoalescingTask(WSGITask):  # type: ignore[misc]
    def write(self, data: Any) -> None:
        started: bool = getattr(self, "wrote_header", False)
        if started or not data or not isinstance(data, bytes) or not self.complete:
            super().write(data)
            return
        head: bytes = self.build_response_header()
        self.wrote_header = True
        whole = not self.chunked_response and self.content_length == len(data)
        if self.has_body and whole and len(data) <= COALESCE_UP_TO:
            self.content_bytes_written = len(data)
            self.channel.write_soon(head + data)
        else:
            self.channel.write_soon(head)
            super().write(data)  # the head is out: the body as waitress would write it


class PooledChannel(HTTPChannel):  # type: ignore[misc]
    """An ``HTTPChannel`` for Arrow bodies: large requests pooled, small answers in one send."""

    parser_class = _PooledParser
    task_class = _CoalescingTask


def use_pooled_bodies(server: Any) -> None:
    """Make a server from ``waitress.create_server`` (one socket or several) use ``PooledChannel``."""
    servers = [server, *getattr(server, "map", {}).values()]
    for each in servers:
        if hasattr(each, "channel_class"):
            each.channel_class = PooledChannel


__all__ = ["POOLED_FROM", "PooledBodyFile", "PooledChannel", "use_pooled_bodies"]
