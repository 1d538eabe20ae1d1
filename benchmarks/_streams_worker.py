"""Subprocess server for the stream benchmark: ``python _streams_worker.py``.

Serves :class:`StreamBench` on stdin/stdout with whichever ``vgi_rpc`` the
running interpreter has installed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _streams_service import StreamBench, StreamBenchImpl

from vgi_rpc import run_server


def main() -> None:
    run_server(StreamBench, StreamBenchImpl())


if __name__ == "__main__":
    main()
