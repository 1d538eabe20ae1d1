"""Instrumented test worker: ``python -m tests.otel._otel_worker OUT.json``.

Serves ``Service`` on stdin/stdout with ``instrument_server`` and in-memory
exporters; when stdin closes it writes the finished spans and metric points
to ``OUT.json`` for the test to read.
"""

from __future__ import annotations

import json
import sys

from tests._services import Service, ServiceImpl
from tests.otel._helpers import Telemetry
from vgi_rpc import RpcServer, instrument_server, run_server


def main() -> None:
    telemetry = Telemetry.create()
    server = instrument_server(RpcServer(Service, ServiceImpl()), telemetry.config)
    try:
        run_server(server)
    finally:
        with open(sys.argv[1], "w") as out:
            json.dump({"spans": telemetry.span_dicts(), "metrics": telemetry.metric_points()}, out)


if __name__ == "__main__":
    main()
