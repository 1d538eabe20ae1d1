"""Worker side of examples/subprocess_client.py: serves Calculator on stdin/stdout."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hello_world import Calculator, CalculatorImpl

from vgi_rpc import run_server

if __name__ == "__main__":
    run_server(Calculator, CalculatorImpl())
