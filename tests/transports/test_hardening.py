"""Issue 9's findings over a worker's pipe: hostile requests get an error batch, and the
worker keeps serving where the bytes can still be framed, or exits cleanly where not."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from multiprocessing import shared_memory

import pyarrow as pa
import pytest

from tests import _hostile as hostile
from tests.http._helpers import read_batches
from tests.transports.test_bad_input import Worker, _error, _still_serves
from vgi_rpc import ResourceLimits, RpcServer
from vgi_rpc.shm import HEADER_SIZE, MAGIC, VERSION

GREET = {"punctuation": ["."]}


def _message(batches: list[tuple[pa.RecordBatch, dict[bytes, bytes]]]) -> str:
    return _error(batches)[b"vgi_rpc.log_message"].decode()


def test_string_offsets_past_the_data_get_an_error_and_the_worker_keeps_serving(
    worker: Worker,
) -> None:
    worker.send(hostile.string_offsets_past_data("greet", "name"))
    assert "validation" in _message(worker.read_stream())
    _still_serves(worker)


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (hostile.odd_int_width_schema, "Integers with less than 8 bits"),
        (hostile.huge_body_length, "ResourceLimits.max_message_bytes"),
    ],
    ids=["int7", "body2^63"],
)
def test_reader_exceptions_are_an_error_batch_then_a_clean_exit(
    worker: Worker, build: object, says: str
) -> None:
    worker.send(build("greet", "name"))  # type: ignore[operator]
    message = _message(worker.read_stream())
    assert message.startswith(("IPCError: ", "MessageTooLargeError: "))
    assert says in message
    code, stderr = worker.finish()
    assert code == 0
    assert "Traceback" not in stderr


def test_protocol_errors_on_the_pipe_carry_no_traceback(worker: Worker) -> None:
    worker.send(hostile.string_offsets_past_data("greet", "name"))
    extra = _error(worker.read_stream())[b"vgi_rpc.log_extra"].decode()
    assert "traceback" not in extra
    assert ".py" not in extra


# -- shared memory -------------------------------------------------------------


@contextlib.contextmanager
def _segment(size: int, *, header: bool = True, mode: int = 0o600) -> Iterator[str]:
    shm = shared_memory.SharedMemory(create=True, size=size)
    try:
        if header and size >= HEADER_SIZE:
            assert shm.buf is not None
            struct.pack_into("<4sIQII", shm.buf, 0, MAGIC, VERSION, size - HEADER_SIZE, 0, 0)
        os.chmod(f"/dev/shm/{shm.name.lstrip('/')}", mode)
        yield shm.name.lstrip("/")
    finally:
        shm.close()
        shm.unlink()


def _greet_naming(segment: str) -> bytes:
    columns = {"name": ["x"], **GREET}
    return hostile.request("greet", columns, **{"vgi_rpc.shm_segment_name": segment.encode()})


def test_a_segment_smaller_than_its_header_is_refused(worker: Worker) -> None:
    with _segment(16) as name:
        worker.send(_greet_naming(name))
        assert "less than a segment header" in _message(worker.read_stream())
    _still_serves(worker)


def test_a_segment_other_users_can_open_is_refused(worker: Worker) -> None:
    with _segment(HEADER_SIZE * 2, mode=0o644) as name:
        worker.send(_greet_naming(name))
        assert "open to other users" in _message(worker.read_stream())
    _still_serves(worker)


def test_a_private_segment_without_the_magic_is_refused(worker: Worker) -> None:
    with _segment(HEADER_SIZE * 2, header=False) as name:
        worker.send(_greet_naming(name))
        assert "is not a vgi-rpc segment" in _message(worker.read_stream())
    _still_serves(worker)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", "x" * 300])
def test_names_that_are_paths_are_refused_without_opening_anything(
    worker: Worker, name: str
) -> None:
    worker.send(_greet_naming(name))
    assert "is not a shared-memory segment name" in _message(worker.read_stream())
    _still_serves(worker)


def test_a_symlink_in_dev_shm_is_not_followed(worker: Worker) -> None:
    link = f"vgi-test-link-{os.getpid()}"
    os.symlink("/etc/hostname", f"/dev/shm/{link}")
    try:
        worker.send(_greet_naming(link))
        assert "cannot attach" in _message(worker.read_stream())
    finally:
        os.unlink(f"/dev/shm/{link}")
    _still_serves(worker)


def test_a_well_formed_private_segment_is_still_accepted(worker: Worker) -> None:
    with _segment(HEADER_SIZE * 2) as name:
        worker.send(_greet_naming(name))
        ((batch, _),) = worker.read_stream()
        assert batch.to_pydict() == {"result": ["hello x."]}


def test_a_message_over_the_limit_is_skipped_and_the_connection_keeps_serving() -> None:
    from tests._services import Service, ServiceImpl

    server = RpcServer(Service, ServiceImpl(), limits=ResourceLimits(max_message_bytes=1 << 20))
    big = hostile.request("echo_bytes", {"data": [b"x" * (2 << 20)]})
    small = hostile.request("greet", {"name": ["y"], **GREET})
    channel = hostile.RecordingChannel(big + small)
    server.serve(channel)  # type: ignore[arg-type]
    replies = read_batches(bytes(channel.written))
    assert len(replies) == 2
    assert b"exceeds the limit of 1048576" in replies[0][1][b"vgi_rpc.log_message"]
    assert replies[1][0].to_pydict() == {"result": ["hello y."]}
