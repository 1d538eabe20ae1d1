"""Malformed and hostile requests sent as raw bytes to a worker.

Each case must end in a clear error batch (and a usable connection where
the bytes can still be framed) or a clean exit with a message on stderr:
never a hang, never a bare traceback.
"""

from __future__ import annotations

import io
import select
import subprocess
import time

import pyarrow as pa
import pytest

from tests.conftest import WORKER, worker_env

EMPTY = pa.schema([])
ONE_ROW = pa.RecordBatch.from_arrays([pa.array([0])], names=["_"]).select([])


def _stream(
    schema: pa.Schema, batches: list[tuple[pa.RecordBatch, dict[bytes, bytes] | None]]
) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch, metadata in batches:
            writer.write_batch(batch, custom_metadata=metadata)
    return sink.getvalue()


def _request(method: str, batch: pa.RecordBatch = ONE_ROW, **extra: bytes) -> bytes:
    metadata = {b"vgi_rpc.method": method.encode(), b"vgi_rpc.request_version": b"1"}
    metadata.update({k.encode(): v for k, v in extra.items()})
    return _stream(batch.schema, [(batch, metadata)])


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            WORKER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_env(),
        )
        self.buffer = b""

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_stream(self, timeout: float = 10.0) -> list[tuple[pa.RecordBatch, dict[bytes, bytes]]]:
        """Read one whole response stream, failing (not hanging) after ``timeout``."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader = pa.ipc.open_stream(self.buffer)
                batches = []
                while True:
                    try:
                        batch, md = reader.read_next_batch_with_custom_metadata()
                    except StopIteration:
                        break
                    batches.append((batch, dict(md) if md else {}))
                self.buffer = self.buffer[_stream_length(self.buffer) :]
                return batches
            except (pa.ArrowInvalid, OSError):
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"no complete response within {timeout}s (have {len(self.buffer)} bytes)"
                )
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    pytest.fail("worker closed stdout instead of answering")
                self.buffer += chunk

    def finish(self, timeout: float = 10.0) -> tuple[int, str]:
        assert self.proc.stdin is not None
        assert self.proc.stderr is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=timeout)
        return code, self.proc.stderr.read().decode()


def _stream_length(data: bytes) -> int:
    """Byte length of the first IPC stream in ``data`` (walks the message framing)."""
    pos = 0
    while True:
        assert data[pos : pos + 4] == b"\xff\xff\xff\xff"
        meta_len = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if meta_len == 0:
            return pos + 8
        message = pa.ipc.read_message(pa.py_buffer(data[pos:]))
        pos += 8 + meta_len + message.body.size if message.body is not None else 8 + meta_len


def _error(batches: list[tuple[pa.RecordBatch, dict[bytes, bytes]]]) -> dict[bytes, bytes]:
    assert len(batches) == 1
    batch, md = batches[0]
    assert batch.num_rows == 0
    assert md[b"vgi_rpc.log_level"] == b"EXCEPTION"
    return md


def _still_serves(worker: Worker) -> None:
    worker.send(
        _request("greet", pa.RecordBatch.from_pydict({"name": ["ok"], "punctuation": ["."]}))
    )
    ((batch, _),) = worker.read_stream()
    assert batch.to_pydict() == {"result": ["hello ok."]}


def test_unknown_method_gets_method_not_implemented(worker: Worker) -> None:
    worker.send(_request("no_such_method"))
    md = _error(worker.read_stream())
    assert md[b"vgi_rpc.error_kind"] == b"method_not_implemented"
    assert b"Unknown method: 'no_such_method'" in md[b"vgi_rpc.log_message"]
    assert b"'add'" in md[b"vgi_rpc.log_message"]  # lists what is available
    _still_serves(worker)


def test_missing_request_version_is_a_version_error(worker: Worker) -> None:
    worker.send(_stream(EMPTY, [(ONE_ROW, {b"vgi_rpc.method": b"noop"})]))
    md = _error(worker.read_stream())
    assert b"VersionError" in md[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_wrong_request_version_is_a_version_error(worker: Worker) -> None:
    worker.send(
        _stream(EMPTY, [(ONE_ROW, {b"vgi_rpc.method": b"noop", b"vgi_rpc.request_version": b"2"})])
    )
    md = _error(worker.read_stream())
    assert b"unsupported request version '2'" in md[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_missing_method_is_a_protocol_error(worker: Worker) -> None:
    worker.send(_stream(EMPTY, [(ONE_ROW, {b"vgi_rpc.request_version": b"1"})]))
    md = _error(worker.read_stream())
    assert md[b"vgi_rpc.log_message"].startswith(b"ProtocolError: ")
    _still_serves(worker)


def test_batch_with_two_rows_is_refused(worker: Worker) -> None:
    two = pa.RecordBatch.from_pydict({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    worker.send(_request("add", two))
    md = _error(worker.read_stream())
    assert b"exactly 1 row, got 2" in md[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_two_request_batches_in_one_stream_are_refused(worker: Worker) -> None:
    md = {b"vgi_rpc.method": b"noop", b"vgi_rpc.request_version": b"1"}
    worker.send(_stream(EMPTY, [(ONE_ROW, md), (ONE_ROW, md)]))
    err = _error(worker.read_stream())
    assert b"exactly one batch, got 2" in err[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_wrong_parameter_type_is_a_type_error(worker: Worker) -> None:
    worker.send(_request("add", pa.RecordBatch.from_pydict({"a": ["one"], "b": [2.0]})))
    md = _error(worker.read_stream())
    assert b"TypeError" in md[b"vgi_rpc.log_message"]
    assert b"parameter 'a' expects Arrow type double, got string" in md[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_null_for_a_required_parameter_is_a_type_error(worker: Worker) -> None:
    batch = pa.RecordBatch.from_arrays([pa.array([None], pa.utf8())], names=["name"])
    worker.send(_request("greet", batch))
    md = _error(worker.read_stream())
    assert b"parameter 'name' is not Optional but received null" in md[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_unknown_and_missing_parameters_are_type_errors(worker: Worker) -> None:
    worker.send(_request("greet", pa.RecordBatch.from_pydict({"nmae": ["x"]})))
    md = _error(worker.read_stream())
    assert b"unexpected parameters ['nmae']" in md[b"vgi_rpc.log_message"]
    worker.send(_request("add", pa.RecordBatch.from_pydict({"a": [1.0]})))
    md = _error(worker.read_stream())
    assert b"parameter 'b' is missing" in md[b"vgi_rpc.log_message"]
    _still_serves(worker)


def test_compatible_encodings_of_parameters_are_accepted(worker: Worker) -> None:
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["ann"], pa.large_utf8()), pa.array(["?"]).dictionary_encode()],
        names=["name", "punctuation"],
    )
    worker.send(_request("greet", batch))
    ((result, _),) = worker.read_stream()
    assert result.to_pydict() == {"result": ["hello ann?"]}


def test_garbage_bytes_get_an_error_then_a_clean_exit(worker: Worker) -> None:
    worker.send(b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"not a flatbuffer" * 2)
    md = _error(worker.read_stream())
    assert md[b"vgi_rpc.log_message"].startswith(b"IPCError: ")
    code, stderr = worker.finish()
    assert code == 0
    assert "closing connection after malformed input" in stderr
    assert "Traceback" not in stderr


def test_non_ipc_text_gets_an_error_then_a_clean_exit(worker: Worker) -> None:
    worker.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    md = _error(worker.read_stream())
    assert md[b"vgi_rpc.log_message"].startswith(b"IPCError: ")
    code, stderr = worker.finish()
    assert code == 0
    assert "Traceback" not in stderr


def test_truncated_stream_ends_the_worker_cleanly(worker: Worker) -> None:
    whole = _request("greet", pa.RecordBatch.from_pydict({"name": ["x"], "punctuation": ["!"]}))
    worker.send(whole[: len(whole) // 2])
    code, stderr = worker.finish()
    assert code == 0
    assert "connection ended" in stderr or stderr == ""
    assert "Traceback" not in stderr


def test_clean_end_of_input_exits_zero_silently(worker: Worker) -> None:
    _still_serves(worker)
    code, stderr = worker.finish()
    assert (code, stderr) == (0, "")
