"""Fuzz target child: serves each input it is sent on a fresh in-memory channel.

``python scripts/fuzz_pipe_child.py SEGMENT_NAME``. Frames on stdin are
``<IQIIB`` (sequence, reply limit, input length, shm length, flags) then the
input and the shared-memory bytes; for each, ``RpcServer.serve`` runs on a
channel whose reader is ``io.BufferedReader(io.BytesIO(input))``, and the answer
``<IBQI`` (sequence, status, reply bytes, detail length) plus the detail goes
to stdout. Status 0: served; 1: an exception escaped ``serve``; 2: the reply
passed the limit (the channel then fails like a vanished peer).
Flags: 1 the channel carries the segment (declared by ``channel.capabilities()``), 2 install the bytes
into the segment first, 4 send the reply bytes back as the detail (for replays).
"""

from __future__ import annotations

import faulthandler
import io
import logging
import os
import struct
import sys
import traceback
from collections.abc import Sequence
from typing import cast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from conformance.impl import ConformanceImpl  # noqa: E402
from conformance.protocol import ConformanceService  # noqa: E402
from vgi_rpc import RpcServer  # noqa: E402
from vgi_rpc._errors import TransportError  # noqa: E402
from vgi_rpc._ipc import Chunk  # noqa: E402
from vgi_rpc.rpc import ChannelCapabilities  # noqa: E402
from vgi_rpc.shm import ShmSegment  # noqa: E402

REQUEST = struct.Struct("<IQIIB")
ANSWER = struct.Struct("<IBQI")
FLAG_STATIC_SHM = 1
FLAG_INSTALL_SHM = 2
FLAG_KEEP_REPLY = 4


class ReplyLimitError(TransportError):
    """The reply passed the limit the parent set."""


class MemoryChannel:
    """A channel over one input: reads from memory, counts what is written."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._reader = cast(io.BufferedReader, io.BufferedReader(io.BytesIO(data)))
        self.limit = limit
        self.written = 0
        self.over = False
        self.kept: list[bytes] | None = None

    @property
    def reader(self) -> io.BufferedReader:
        """The input."""
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Count; fail like a vanished peer past the limit."""
        for chunk in chunks:
            self.written += memoryview(chunk).nbytes
            if self.kept is not None:
                self.kept.append(memoryview(chunk).tobytes())
        if self.written > self.limit:
            self.over = True
            raise ReplyLimitError(f"reply passed {self.limit} bytes")

    def peer_failure(self, detail: str) -> TransportError:
        """A vanished peer."""
        return TransportError(detail)

    def close(self) -> None:
        """Nothing to close."""


class ShmMemoryChannel(MemoryChannel):
    """A memory channel that also carries the shared segment."""

    def __init__(self, data: bytes, limit: int, shm: ShmSegment) -> None:
        super().__init__(data, limit)
        self._shm = shm

    def capabilities(self) -> ChannelCapabilities:
        """The segment both ends were given."""
        return ChannelCapabilities(shared_segment=self._shm)


def _read_exact(stream: io.BufferedReader, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _limit_memory(heap: int) -> None:
    """Cap the address space (heap plus a fixed allowance for mappings), and die first on OOM.

    A request that makes the server allocate past the cap then fails in the child
    (MemoryError, bad_alloc) instead of taking the machine down.
    """
    import resource

    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = size + heap + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")


def main() -> int:
    """Serve inputs from stdin until it closes."""
    logging.disable(logging.CRITICAL)
    faulthandler.enable()  # a crash's Python stack goes to stderr, which the parent reports
    _limit_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 30)
    segment = ShmSegment.attach(sys.argv[1])
    server = RpcServer(ConformanceService, ConformanceImpl(), enable_describe=True)
    stdin = sys.stdin.buffer
    assert isinstance(stdin, io.BufferedReader)
    stdout = sys.stdout.buffer
    try:
        while True:
            try:
                seq, limit, n, m, flags = REQUEST.unpack(_read_exact(stdin, REQUEST.size))
                data = _read_exact(stdin, n)
                shm_bytes = _read_exact(stdin, m)
            except EOFError:
                return 0
            if flags & FLAG_INSTALL_SHM:
                view = segment._buf  # header and data: the segment as the client left it
                k = min(len(shm_bytes), len(view))
                view[:k] = shm_bytes[:k]
            channel = (
                ShmMemoryChannel(data, limit, segment)
                if flags & FLAG_STATIC_SHM
                else MemoryChannel(data, limit)
            )
            if flags & FLAG_KEEP_REPLY:
                channel.kept = []
            status, detail = 0, b""
            try:
                server.serve(channel)
            except Exception:
                status, detail = 1, traceback.format_exc().encode(errors="replace")
            if channel.over:
                status = 2
            if channel.kept is not None and status != 1:
                detail = b"".join(channel.kept)[: 1 << 24]
            stdout.write(ANSWER.pack(seq, status, channel.written, len(detail)) + detail)
            stdout.flush()
    finally:
        segment.close()


if __name__ == "__main__":
    sys.exit(main())
