"""Serve one saved pipe input in this process, with faulthandler on, and print the reply.

    python scripts/fuzz_repro.py INPUT.bin [--shm INPUT.shm [--static]]

``fuzz.py --save-dir`` writes ``.bin`` (and ``.shm``) files for every pipe finding;
this shows the Python stack of a crash, the traceback of an escaped exception, or
the batches of an oversized reply.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyarrow as pa
from fuzz_corpus import shm_fixture
from fuzz_pipe_child import MemoryChannel, ShmMemoryChannel

from conformance.impl import ConformanceImpl
from conformance.protocol import ConformanceService
from vgi_rpc import RpcServer


def main(argv: list[str] | None = None) -> int:
    """Serve the input once and describe the reply."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("--shm", help="segment bytes to install first")
    parser.add_argument("--static", action="store_true", help="the channel carries the segment")
    args = parser.parse_args(argv)
    faulthandler.enable()
    with open(args.input, "rb") as f:
        data = f.read()

    server = RpcServer(ConformanceService, ConformanceImpl(), enable_describe=True)
    with shm_fixture() as (segment, _):
        channel: MemoryChannel
        if args.shm:
            with open(args.shm, "rb") as f:
                stored = f.read()
            segment._buf[: len(stored)] = stored[: len(segment._buf)]
        # the run's segment had another (same-length) name: point the input at this one
        data = re.sub(rb"psm_[0-9a-f]{8}", segment.name.encode(), data)
        if args.static:
            channel = ShmMemoryChannel(data, 1 << 40, segment)
        else:
            channel = MemoryChannel(data, 1 << 40)
        channel.kept = []
        server.serve(channel)
        reply = b"".join(channel.kept)
    print(f"{len(data)}-byte input, {len(reply)}-byte reply")
    source = pa.BufferReader(reply)
    while source.tell() < len(reply):
        reader = pa.ipc.open_stream(source)
        while True:
            try:
                batch, meta = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            shown = {k: v[:200] for k, v in (meta or {}).items()}
            print(f"  {batch.num_rows} rows {batch.schema.names}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
