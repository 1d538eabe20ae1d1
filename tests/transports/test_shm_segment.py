"""ShmSegment: the section 11 layout, first-fit allocation, cross-process and cross-implementation reads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from tests._shm_leaks import left_behind as shm_left_behind
from tests._shm_leaks import snapshot as shm_snapshot
from tests.conftest import ROOT, worker_env
from tests.interop.test_reference import REFERENCE_VENV
from vgi_rpc import IPCError
from vgi_rpc.shm import HEADER_SIZE, ShmSegment

REFERENCE_PYTHON = REFERENCE_VENV / "bin" / "python"
BATCH = pa.RecordBatch.from_pydict({"x": list(range(1000)), "s": [f"r{i}" for i in range(1000)]})


def test_header_layout_and_round_trip() -> None:
    before = shm_snapshot()
    with ShmSegment.create(1 << 20) as seg:
        header = bytes(seg._buf[:24])
        assert header[:4] == b"VGIS"
        assert int.from_bytes(header[4:8], "little") == 1
        assert int.from_bytes(header[8:16], "little") == seg.size - HEADER_SIZE
        placed = seg.write_batch(BATCH)
        assert placed is not None
        offset, length = placed
        assert offset == HEADER_SIZE
        assert seg.allocations() == [(offset, length)]
        assert seg.read_batch(offset, length).equals(BATCH)
    assert shm_left_behind(before) == []  # the owner unlinks on exit


def test_first_fit_reuses_freed_space_and_reports_full() -> None:
    with ShmSegment.create(HEADER_SIZE + 4096) as seg:
        a = seg.allocate(1000)
        b = seg.allocate(1000)
        c = seg.allocate(1000)
        assert (a, b, c) == (HEADER_SIZE, HEADER_SIZE + 1024, HEADER_SIZE + 2048)
        assert seg.allocate(2000) is None  # only 1024 left at the end
        seg.free(b)  # type: ignore[arg-type]
        assert seg.allocate(1000) == HEADER_SIZE + 1024  # the gap is reused
        seg.free(a)  # type: ignore[arg-type]
        seg.free(HEADER_SIZE + 1024)
        assert seg.allocate(2000) == HEADER_SIZE  # freed neighbours coalesce implicitly
        assert seg.write_batch(BATCH) is None  # too big: the caller falls back to inline


def test_attach_refuses_foreign_or_missing_segments() -> None:
    from multiprocessing import shared_memory

    plain = shared_memory.SharedMemory(create=True, size=HEADER_SIZE + 64)
    try:
        with pytest.raises(IPCError, match="not a vgi-rpc segment"):
            ShmSegment.attach(plain.name)
    finally:
        plain.close()
        plain.unlink()
    with pytest.raises(FileNotFoundError):
        ShmSegment.attach("vgi-rpc-no-such-segment")


def test_another_process_reads_what_we_wrote_and_the_segment_survives_it() -> None:
    with ShmSegment.create(4 << 20) as seg:
        offset, length = seg.write_batch(BATCH) or (0, 0)
        code = textwrap.dedent(
            f"""
            from vgi_rpc.shm import ShmSegment
            seg = ShmSegment.attach({seg.name!r})
            b = seg.read_batch({offset}, {length})
            print(b.num_rows, b.column("s")[5].as_py())
            del b
            seg.close()
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=worker_env(),
            check=True,
        )
        assert out.stdout.split() == ["1000", "r5"]
        # the reader's exit must not have unlinked our segment
        assert seg.read_batch(offset, length).num_rows == 1000


def _reference(script: str, *args: str) -> subprocess.Popen[str]:
    if not REFERENCE_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"reference peer missing at {REFERENCE_VENV}")
        pytest.skip(f"reference peer not installed at {REFERENCE_VENV}")
    return subprocess.Popen(
        [str(REFERENCE_PYTHON), "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(ROOT).parent),
    )


@pytest.mark.interop
def test_we_read_a_segment_the_reference_wrote() -> None:
    proc = _reference(
        """
        import sys, pyarrow as pa
        from vgi_rpc.shm import ShmSegment
        seg = ShmSegment.create(4 << 20)
        b = pa.RecordBatch.from_pydict({"x": list(range(1000)), "s": [f"r{i}" for i in range(1000)]})
        off, n = seg.allocate_and_write(b)
        print(seg.name, off, n, flush=True)
        sys.stdin.readline()
        seg.close(); seg.unlink()
        """
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    name, offset, length = proc.stdout.readline().split()
    seg = ShmSegment.attach(name)
    try:
        ((start, reserved),) = seg.allocations()  # the reference reserves an estimate, writes less
        assert start == int(offset)
        assert reserved >= int(length)
        assert seg.read_batch(int(offset), int(length)).equals(BATCH)
    finally:
        seg.close()
        proc.stdin.write("done\n")
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


@pytest.mark.interop
def test_the_reference_reads_a_segment_we_wrote() -> None:
    with ShmSegment.create(4 << 20) as seg:
        offset, length = seg.write_batch(BATCH) or (0, 0)
        proc = _reference(
            """
            import sys, pyarrow as pa
            from vgi_rpc.shm import ShmSegment
            name, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
            seg = ShmSegment.attach(name, 4 << 20, track=False)
            b = pa.ipc.open_stream(seg.read_buffer(off, n)).read_next_batch()
            print(b.num_rows, b.column("s")[5].as_py(), seg.allocator.num_allocs, flush=True)
            """,
            seg.name,
            str(offset),
            str(length),
        )
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert out.split() == ["1000", "r5", "1"]
