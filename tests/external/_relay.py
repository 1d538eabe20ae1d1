"""Sits on a worker's pipe and counts the bytes each way: ``python _relay.py COUNTS -- CMD...``.

Spawns CMD, copies our stdin to its stdin and its stdout to our stdout, and
writes ``{"to_worker": n, "from_worker": m}`` to COUNTS when both ends close.
Used to prove how few bytes crossed the pipe when batches went by pointer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from types import FrameType


def _pump(source: int, target: int, counts: dict[str, int], key: str) -> None:
    try:
        while chunk := os.read(source, 1 << 20):
            counts[key] += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(target, view) :]
    except OSError:
        pass
    finally:
        os.close(target)


def main() -> int:
    counts_path, marker, *cmd = sys.argv[1:]
    if marker != "--" or not cmd:
        raise SystemExit("usage: _relay.py COUNTS -- CMD...")
    child_in, to_child = os.pipe()
    from_child, child_out = os.pipe()
    child = subprocess.Popen(cmd, stdin=child_in, stdout=child_out)
    os.close(child_in)
    os.close(child_out)
    counts = {"to_worker": 0, "from_worker": 0}

    def save() -> None:
        with open(counts_path + ".tmp", "w") as f:
            json.dump(counts, f)
        os.replace(counts_path + ".tmp", counts_path)

    def stop(signum: int, frame: FrameType | None) -> None:
        save()  # the client may end us before the worker has exited
        child.terminate()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    up = threading.Thread(target=_pump, args=(0, to_child, counts, "to_worker"))
    down = threading.Thread(target=_pump, args=(from_child, 1, counts, "from_worker"))
    up.start()
    down.start()
    up.join()
    down.join()
    save()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
