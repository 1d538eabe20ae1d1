"""The pipe harness tells a crash, a hang, an escaped exception and an answer apart
(a stand-in child misbehaves on purpose, so this holds whatever the server does)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fuzz_pipe import PipeChild

# Answers like fuzz_pipe_child.py, misbehaving according to the input's first byte.
STAND_IN = textwrap.dedent(
    """
    import os, signal, struct, sys, time
    REQUEST, ANSWER = struct.Struct("<IQIIB"), struct.Struct("<IBQI")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(REQUEST.size)
        if len(head) < REQUEST.size:
            break
        seq, limit, n, m, flags = REQUEST.unpack(head)
        data = stdin.read(n); stdin.read(m)
        if data[:1] == b"S":
            os.kill(os.getpid(), signal.SIGSEGV)
        if data[:1] == b"H":
            time.sleep(60)
        if data[:1] == b"X":
            sys.exit(3)
        status, detail = (1, b"Traceback: ValueError") if data[:1] == b"E" else (0, b"")
        stdout.write(ANSWER.pack(seq, status, len(data), len(detail)) + detail)
        stdout.flush()
    """
)


@pytest.fixture
def child(tmp_path: Path) -> PipeChild:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    return PipeChild("unused", timeout=1.0, max_memory=1 << 30, script=str(script))


def test_answers_and_failures_are_classified(child: PipeChild) -> None:
    try:
        ok = child.run(b"ok", b"", 0, 1 << 20)
        assert (ok.status, ok.reply) == (0, 2)
        escaped = child.run(b"E", b"", 0, 1 << 20)
        assert escaped.status == 1
        assert "ValueError" in escaped.detail
        crashed = child.run(b"S", b"", 0, 1 << 20)
        assert crashed.status == -1
        assert "SIGSEGV" in crashed.detail
        child.restart()
        exited = child.run(b"X", b"", 0, 1 << 20)
        assert exited.status == -1
        assert "exited with 3" in exited.detail
        child.restart()
        hung = child.run(b"H", b"", 0, 1 << 20)
        assert hung.status == -2
        child.restart()
        assert child.run(b"again", b"", 0, 1 << 20).status == 0
    finally:
        child.close()
