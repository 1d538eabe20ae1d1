"""Subprocess server for the stream benchmark: ``python _streams_worker.py [--http]``.

Serves :class:`StreamBench` on stdin/stdout (or over HTTP with the package's own
``serve_http``) with whichever ``vgi_rpc`` the running interpreter has installed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _child_common import serve_http_worker
from _streams_service import StreamBench, StreamBenchImpl

from vgi_rpc import RpcServer, run_server


def main() -> None:
    if sys.argv[1:] == ["--http"]:
        serve_http_worker(RpcServer(StreamBench, StreamBenchImpl()))
        return
    run_server(StreamBench, StreamBenchImpl())


if __name__ == "__main__":
    main()
