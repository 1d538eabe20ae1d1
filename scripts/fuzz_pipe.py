"""Pipe fuzz target: mutated requests into ``RpcServer.serve`` in a child process.

The child (``fuzz_pipe_child.py``) serves each input on an in-memory channel;
this side mutates the corpus, sends the inputs, and records a finding when the
child dies (signal or exit), takes longer than the timeout, lets an exception
out of ``serve``, answers more than the unmutated answer + the input + 64 KiB,
or grows past the memory limit. After a crash, hang or memory finding the child
is replaced and the run goes on.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from fuzz_common import Finding, Summary, input_rng, proc_status, reply_bound, save_input
from fuzz_corpus import pipe_corpus, shm_fixture
from fuzz_mutate import SIZE_PARAM_METHODS, Context, Item, mutate

from vgi_rpc.shm import ShmSegment

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_pipe_child.py")
REQUEST = struct.Struct("<IQIIB")
ANSWER = struct.Struct("<IBQI")
FLAG_STATIC_SHM = 1
FLAG_INSTALL_SHM = 2
UNBOUNDED = 1 << 40


@dataclass
class Answer:
    """What the child did with one input."""

    status: int  # 0 served, 1 exception escaped, 2 reply over the limit; -1 died, -2 hung
    reply: int
    detail: str
    raw: bytes = b""  # the detail as sent (the reply itself with FLAG_KEEP_REPLY)


class PipeChild:
    """One child process serving inputs; replaced by ``restart``."""

    def __init__(
        self, segment_name: str, timeout: float, max_memory: int, script: str = CHILD
    ) -> None:
        self.script = script
        self.segment_name = segment_name
        self.max_memory = max_memory
        self.timeout = timeout
        self.seq = 0
        self._eof = False
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the child
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self._stderr.seek(0)
        self._stderr.truncate()
        return subprocess.Popen(
            [sys.executable, self.script, self.segment_name, str(self.max_memory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.proc.pid

    def stderr_tail(self) -> str:
        """The last lines the child wrote to stderr."""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode(errors="replace")

    def restart(self) -> None:
        """Kill the child (if alive) and start a fresh one."""
        self.stop()
        self.proc = self._start()

    def stop(self) -> None:
        """Kill and reap the child."""
        proc = self.proc
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Stop the child for good."""
        self.stop()
        self._stderr.close()

    def run(self, data: bytes, shm: bytes, flags: int, limit: int) -> Answer:
        """Serve one input and return what happened."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        proc = self.proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(REQUEST.pack(self.seq, limit, len(data), len(shm), flags))
            proc.stdin.write(data)
            proc.stdin.write(shm)
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        head = self._read(ANSWER.size)
        if head is None:
            if self._eof:
                return self._died()
            return Answer(-2, 0, f"no answer in {self.timeout}s")
        seq, status, reply, n = ANSWER.unpack(head)
        if seq != self.seq or n > 1 << 24:
            return self._died()
        detail = self._read(n) if n else b""
        if seq != self.seq or detail is None:
            return self._died()
        return Answer(status, reply, detail.decode(errors="replace"), detail)

    def _read(self, n: int) -> bytes | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        out = bytearray()
        self._eof = False
        deadline = time.monotonic() + self.timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                self._eof = True
                return None
            out += chunk
        return bytes(out)

    def _died(self) -> Answer:
        if self.proc.poll() is None:  # alive but talking nonsense
            self.proc.kill()
        code = self.proc.wait(timeout=10)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        return Answer(-1, 0, f"child {how}\n{self.stderr_tail()}")


def _flags(item: Item) -> int:
    flags = FLAG_INSTALL_SHM if item.shm else 0
    return flags | (FLAG_STATIC_SHM if item.kind == "shm-static" else 0)


def pipe_context(segment: ShmSegment, names: list[str]) -> Context:
    """The pipe corpus and what mutators draw from (the same for a run and a replay)."""
    corpus = pipe_corpus(segment)
    methods = sorted({m for item in corpus for m in _method_names(item)} - SIZE_PARAM_METHODS)
    return Context(corpus, methods, names)


def replay_input(seed: int, index: int) -> tuple[Item, bytes, bytes, str]:
    """Regenerate input ``index`` of run ``seed``: (corpus item, input, shm bytes, mutation)."""
    with shm_fixture() as (segment, names):
        ctx = pipe_context(segment, names)
        rng = input_rng(seed, index)
        item = ctx.corpus[rng.randrange(len(ctx.corpus))]
        data, shm, how = mutate(rng, item, ctx)
    return item, data, shm, how


def fuzz_pipe(
    inputs: int,
    seed: int,
    *,
    save_dir: str | None = None,
    timeout: float = 5.0,
    max_rss: int = 1 << 30,
    rss_every: int = 100,
    log: bool = False,
) -> Summary:
    """Run ``inputs`` mutated requests through the pipe target."""
    summary = Summary("pipe")
    with shm_fixture() as (segment, names):
        ctx = pipe_context(segment, names)
        corpus = ctx.corpus
        child = PipeChild(segment.name, timeout, max_rss)
        try:
            for item in corpus:  # the legitimate answer of every unmutated input
                answer = child.run(item.data, item.shm, _flags(item), UNBOUNDED)
                item.base_reply = answer.reply
                if answer.status not in (0,):
                    child.restart()
            started = time.monotonic()
            for index in range(inputs):
                rng = input_rng(seed, index)
                item = corpus[rng.randrange(len(corpus))]
                data, shm, how = mutate(rng, item, ctx)
                # every pointer batch may legitimately read the whole segment again
                refs = max(1, data.count(b"vgi_rpc.shm_offset")) if shm else 0
                limit = reply_bound(item.base_reply, len(data) + refs * len(shm), data)
                answer = child.run(data, shm, _flags(item), limit)
                kind = {1: "exception", 2: "oversized", -1: "crash", -2: "hang"}.get(answer.status)
                if kind in ("exception", "crash") and _out_of_memory(answer.detail):
                    kind = "memory"
                if answer.status == 2:
                    answer.detail = f"reply over {limit} bytes (unmutated: {item.base_reply})"
                if kind is None and index % rss_every == 0:
                    rss = proc_status(child.pid, "VmRSS")
                    summary.peak_rss = max(summary.peak_rss, rss)
                    if rss > max_rss:
                        kind, answer.detail = (
                            "memory",
                            f"child RSS {rss >> 20} MiB after this input",
                        )
                if kind is not None:
                    finding = Finding(kind, "pipe", seed, index, item.name, how, answer.detail)
                    summary.findings.append(finding)
                    save_input(save_dir, finding, data, {"kind": item.kind, "flags": _flags(item)})
                    if save_dir and shm:
                        with open(
                            os.path.join(save_dir, f"pipe-{kind}-seed{seed}-{index}.shm"), "wb"
                        ) as f:
                            f.write(shm)
                    if log:
                        print(finding.line(), file=sys.stderr, flush=True)
                    if kind in ("crash", "hang", "memory"):
                        summary.peak_rss = max(summary.peak_rss, proc_status(child.pid, "VmHWM"))
                        child.restart()
                summary.inputs += 1
            summary.seconds = time.monotonic() - started
            summary.peak_rss = max(summary.peak_rss, proc_status(child.pid, "VmHWM"))
        finally:
            child.close()
    return summary


def _out_of_memory(detail: str) -> bool:
    return any(
        word in detail for word in ("MemoryError", "bad_alloc", "Out of memory", "OutOfMemory")
    )


def _method_names(item: Item) -> set[str]:
    return {
        meta[b"vgi_rpc.method"].decode(errors="replace")
        for _, batches in item.streams or []
        for _, meta in batches
        if b"vgi_rpc.method" in meta
    }


__all__ = ["PipeChild", "fuzz_pipe"]
