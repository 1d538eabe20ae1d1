"""Spawn examples/subprocess_worker.py and call it: the worker exits when the block ends."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hello_world import Calculator

from vgi_rpc import connect

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subprocess_worker.py")


def main() -> None:
    with connect(Calculator, [sys.executable, WORKER]) as proxy:
        print(f"1.5 + 2.25 = {proxy.add(a=1.5, b=2.25)}")


if __name__ == "__main__":
    main()
