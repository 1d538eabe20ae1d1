"""HTTP fuzz target and bombs against ``conformance/worker.py --http 0``.

Mutated bodies, routes, content types, encodings and tokens.

Every answer is checked: the worker is alive, the status is below 500, the
connection was not dropped without a response, the body is no longer than the
unmutated answer + the request + 64 KiB, and the worker's RSS stays bounded.
``bomb`` sends a zstd bomb or a huge plain body to a fresh worker and reports
its peak RSS (VmHWM).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import random
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import zstandard
from fuzz_common import Finding, Summary, input_rng, proc_status, reply_bound, save_input
from fuzz_corpus import ROOT, http_corpus, shm_fixture, tokens_of
from fuzz_mutate import SIZE_PARAM_METHODS, Context, Item, mutate

WORKER = os.path.join(ROOT, "conformance", "worker.py")
ARROW = "application/vnd.apache.arrow.stream"
PREFIX = "/vgi"
MiB = 1 << 20


class HttpWorker:
    """A conformance worker serving HTTP on a loopback port."""

    def __init__(self, *extra: str) -> None:
        self.extra = list(extra)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the worker
        self.proc, self.port = self._start()

    def _start(self) -> tuple[subprocess.Popen[bytes], int]:
        self._stderr.seek(0)
        self._stderr.truncate()
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen(
            [
                sys.executable,
                WORKER,
                "--http",
                "0",
                "--describe",
                "--signing-key",
                "fuzz key",
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if not select.select([proc.stdout], [], [], 0.5)[0]:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
        if not line.startswith(b"PORT:"):
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise RuntimeError(f"the worker did not start: {line!r} {self.stderr_tail()}")
        return proc, int(line[5:])

    @property
    def pid(self) -> int:
        """The worker's pid."""
        return self.proc.pid

    @property
    def url(self) -> str:
        """Base URL (without the prefix)."""
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Whether the worker process still runs."""
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        """The end of the worker's stderr."""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode(errors="replace")

    def exit_description(self) -> str:
        """How the worker ended, with its stderr."""
        code = self.proc.wait(timeout=10)
        how = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
        return f"worker {how}\n{self.stderr_tail()}"

    def stop(self) -> None:
        """Terminate and reap the worker."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def restart(self) -> None:
        """Replace the worker (same options, new port)."""
        self.stop()
        self.proc, self.port = self._start()

    def close(self) -> None:
        """Stop for good."""
        self.stop()
        self._stderr.close()


@contextlib.contextmanager
def http_worker(*extra: str) -> Iterator[HttpWorker]:
    """A running worker, stopped on exit."""
    worker = HttpWorker(*extra)
    try:
        yield worker
    finally:
        worker.close()


# ---------------------------------------------------------------- request shaping


CONTENT_TYPES = [
    "",
    "text/plain",
    ARROW + "; charset=utf-8",
    "application/json",
    "application/vnd.apache.arrow.file",
    "multipart/form-data; boundary=x",
    "application/vnd.apache.arrow.stream\x00",
]


def _route(rng: random.Random, path: str, methods: list[str]) -> str:
    if rng.random() > 0.15:
        return path
    parts = path.split("/")
    op = rng.randrange(5)
    if op == 0 and len(parts) >= 3:
        parts[2] = rng.choice([*methods, "", "..", "%00", "x" * 2000, "__describe__"])
    elif op == 1:
        tail = parts[3] if len(parts) > 3 else ""
        base = "/".join(parts[:3])
        return base + rng.choice(["", "/init", "/exchange", "/exchange/init", "/" + tail * 2])
    elif op == 2:
        return path + rng.choice(["?x=1", "#f", "/", "//", "/../health"])
    elif op == 3:
        return "/vgi/health" if rng.random() < 0.5 else "/vgi/__introspect_token__"
    else:
        return path.replace("/vgi", rng.choice(["", "/VGI", "/vgi/vgi"]), 1)
    return "/".join(parts)


def _encode(rng: random.Random, body: bytes) -> tuple[bytes, dict[str, str], str]:
    headers = {"Content-Type": ARROW}
    how = ""
    if rng.random() < 0.1:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
        how = "content-type"
    if rng.random() < 0.25:
        op = rng.randrange(8)
        if op == 0:
            body, enc = zstandard.ZstdCompressor().compress(body), "zstd"
        elif op == 1:
            body, enc = gzip.compress(body), "gzip"
        elif op == 2:
            enc = "zstd"  # claimed, not applied
        elif op == 3:
            enc = "gzip"
        elif op == 4:
            packed = zstandard.ZstdCompressor().compress(body)
            body, enc = packed[: rng.randrange(len(packed) + 1)], "zstd"
        elif op == 5:
            enc = rng.choice(["br", "deflate", "zstd, gzip", "identity", "IDENTITY", "x" * 500])
        elif op == 6:
            broken = bytearray(zstandard.ZstdCompressor().compress(body))
            broken[rng.randrange(len(broken))] ^= 0xFF
            body, enc = bytes(broken), "zstd"
        else:
            body, enc = gzip.compress(gzip.compress(body)), "gzip"
        headers["Content-Encoding"] = enc
        how = (how + "+" if how else "") + "encoding:" + enc[:20]
    return body, headers, how


def _method_names(items: list[Item]) -> list[str]:
    found = {i.path.split("/")[2] for i in items if i.path.count("/") >= 2}
    return sorted(found - SIZE_PARAM_METHODS)


def fuzz_http(  # noqa: C901  # one loop with every check in sight
    inputs: int,
    seed: int,
    *,
    save_dir: str | None = None,
    timeout: float = 10.0,
    max_rss: int = 1 << 30,
    rss_every: int = 50,
    log: bool = False,
) -> Summary:
    """Send ``inputs`` mutated requests to a conformance worker over HTTP."""
    summary = Summary("http")
    with shm_fixture() as (_, names), http_worker() as worker:
        corpus = http_corpus(worker.url)
        methods = _method_names(corpus)
        ctx = Context(corpus, methods, names, tokens_of(corpus))
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=timeout)
        started = time.monotonic()
        try:
            for index in range(inputs):
                rng = input_rng(seed, index)
                item = corpus[rng.randrange(len(corpus))]
                body, _, how = (
                    mutate(rng, item, ctx) if rng.random() < 0.9 else (item.data, b"", "")
                )
                path = _route(rng, item.path, methods)
                wire, headers, shaped = _encode(rng, body)
                how = "+".join(x for x in (how, shaped, "" if path == item.path else "route") if x)
                kind, detail = None, ""
                try:
                    conn.request("POST", path, body=wire, headers=headers)
                    response = conn.getresponse()
                    answer = response.read()
                    status = response.status
                    bucket = f"{status // 100}xx" if status != 200 else "200"
                    summary.statuses[bucket] = summary.statuses.get(bucket, 0) + 1
                    bound = reply_bound(item.base_reply, len(body), body)
                    if status >= 500:
                        kind, detail = "5xx", f"HTTP {status}: {answer[:2000]!r}"
                    elif len(answer) > bound:
                        kind, detail = "oversized", f"{len(answer)} bytes > bound {bound}"
                    if response.will_close:
                        conn.close()
                except TimeoutError:
                    kind, detail = "hang", f"no answer in {timeout}s"
                    conn.close()
                except (http.client.HTTPException, OSError) as exc:
                    conn.close()
                    if worker.alive():
                        time.sleep(0.05)
                    if worker.alive():
                        kind, detail = "dropped", f"{type(exc).__name__}: {exc}"
                    else:
                        kind, detail = "crash", worker.exit_description()
                if kind is None and index % rss_every == 0:
                    rss = proc_status(worker.pid, "VmRSS")
                    summary.peak_rss = max(summary.peak_rss, rss)
                    if rss > max_rss:
                        kind, detail = "memory", f"worker RSS {rss >> 20} MiB after this input"
                if kind is not None:
                    finding = Finding(kind, "http", seed, index, item.name, how, detail)
                    summary.findings.append(finding)
                    save_input(save_dir, finding, wire, {"path": path, "headers": headers})
                    if log:
                        print(finding.line(), file=sys.stderr, flush=True)
                    if kind in ("crash", "hang", "memory"):
                        summary.peak_rss = max(summary.peak_rss, proc_status(worker.pid, "VmHWM"))
                        worker.restart()
                        # tokens are sealed with a fixed key, so the corpus stays valid
                    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=timeout)
                summary.inputs += 1
            summary.seconds = time.monotonic() - started
            summary.peak_rss = max(summary.peak_rss, proc_status(worker.pid, "VmHWM"))
            if not worker.alive():
                summary.findings.append(
                    Finding("crash", "http", seed, -1, "", "", worker.exit_description())
                )
        finally:
            conn.close()
    return summary


# ---------------------------------------------------------------- bombs


def zstd_bomb(decoded: int = 4 << 30) -> bytes:
    """A zstd frame of ``decoded`` zero bytes (about 32 KB per GiB)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = bytes(16 * MiB)
    out = [compressor.compress(chunk) for _ in range(decoded // len(chunk))]
    out.append(compressor.flush())
    return b"".join(out)


def gzip_bomb(decoded: int = 1 << 30) -> bytes:
    """One gzip member of ``decoded`` zero bytes (about 1 MB per GiB at most)."""
    import zlib

    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = bytes(16 * MiB)
    out = [compressor.compress(chunk) for _ in range(decoded // len(chunk))]
    out.append(compressor.flush())
    return b"".join(out)


def big_request(size: int = 512 * MiB) -> bytes:
    """A valid ``echo_bytes`` request whose value is ``size`` bytes."""
    import pyarrow as pa

    data = pa.py_buffer(bytes(size))
    offsets = pa.py_buffer((0).to_bytes(4, "little") + size.to_bytes(4, "little"))
    array = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, data])
    batch = pa.RecordBatch.from_arrays([array], names=["data"])
    sink = pa.BufferOutputStream()
    meta = {b"vgi_rpc.method": b"echo_bytes", b"vgi_rpc.request_version": b"1"}
    meta[b"vgi_rpc.protocol_version"] = b"1.0.0"
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata=meta)
    return sink.getvalue().to_pybytes()


def advertised_cap(worker: HttpWorker) -> int | None:
    """The worker's ``VGI-Max-Request-Bytes`` from /health, if it advertises one."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    try:
        conn.request("GET", PREFIX + "/health")
        response = conn.getresponse()
        response.read()
        value = response.getheader("VGI-Max-Request-Bytes")
        return int(value) if value else None
    finally:
        conn.close()


def send_bomb(
    worker: HttpWorker,
    body: bytes,
    encoding: str | None,
    path: str = "/vgi/echo_bytes",
    chunked: bool = False,
) -> tuple[int | None, str]:
    """POST ``body``; returns (status or None if the server cut us off, what happened)."""
    headers = {"Content-Type": ARROW}
    if encoding:
        headers["Content-Encoding"] = encoding
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=120)
    try:
        try:
            if chunked:  # no Content-Length: the server learns the size only while reading
                view = memoryview(body)
                pieces = (view[i : i + MiB] for i in range(0, len(view), MiB))
                conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
            else:
                conn.request("POST", path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The server may refuse by Content-Length and close before the body is sent.
            try:
                response = conn.getresponse()
                return response.status, f"refused while sending ({exc}): {response.read()[:200]!r}"
            except (http.client.HTTPException, OSError):
                return None, f"connection closed while sending: {exc}"
        response = conn.getresponse()
        return response.status, repr(response.read()[:300])
    except (http.client.HTTPException, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def healthy(worker: HttpWorker) -> bool:
    """Whether the worker answers a small unary call correctly."""
    import pyarrow as pa

    batch = pa.RecordBatch.from_pydict({"value": ["ping"]})
    meta = {b"vgi_rpc.method": b"echo_string", b"vgi_rpc.request_version": b"1"}
    meta[b"vgi_rpc.protocol_version"] = b"1.0.0"
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata=meta)
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=30)
    try:
        conn.request(
            "POST",
            PREFIX + "/echo_string",
            body=sink.getvalue().to_pybytes(),
            headers={"Content-Type": ARROW},
        )
        response = conn.getresponse()
        return response.status == 200 and b"ping" in response.read()
    except (http.client.HTTPException, OSError):
        return False
    finally:
        conn.close()


def bomb(kind: str, *worker_args: str) -> dict[str, object]:
    """Send one bomb to a fresh default worker and report its peak memory.

    ``zstd``: 4 GiB of zeros in ~130 KB; ``gzip``: 1 GiB in one gzip member;
    ``plain``: a valid 512 MiB ``echo_bytes`` request; ``chunked``: the same
    without Content-Length.

    Returns ``status``, ``detail``, ``baseline`` and ``peak`` (VmHWM, bytes), ``resident``
    (VmRSS after), ``cap`` (advertised, else the documented 256 MiB default), ``alive``.
    """
    body = {"zstd": zstd_bomb, "gzip": gzip_bomb}.get(kind, big_request)()
    encoding = kind if kind in ("zstd", "gzip") else None
    with http_worker(*worker_args) as worker:
        cap = advertised_cap(worker)
        baseline = proc_status(worker.pid, "VmHWM")
        status, detail = send_bomb(worker, body, encoding, chunked=kind == "chunked")
        del body
        time.sleep(0.5)
        alive = worker.alive() and healthy(worker)
        return {
            "kind": kind,
            "status": status,
            "detail": detail,
            "baseline": baseline,
            "peak": proc_status(worker.pid, "VmHWM"),
            "resident": proc_status(worker.pid, "VmRSS"),
            "cap": cap if cap is not None else 256 * MiB,
            "advertised": cap is not None,
            "alive": alive,
        }


__all__ = ["HttpWorker", "bomb", "fuzz_http", "http_worker", "zstd_bomb"]
