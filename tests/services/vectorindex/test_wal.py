"""The write-ahead log on its own: framing, checksums, torn tails, segments."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from vgi_rpc.services.vectorindex import StorageError
from vgi_rpc.services.vectorindex._wal import WriteAheadLog


def _batch(i: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": [f"a{i}", f"b{i}"], "x": [i, i]})


def _filled(path: Path, n: int) -> WriteAheadLog:
    wal = WriteAheadLog(str(path))
    assert list(wal.replay(after=0)) == []
    for i in range(n):
        assert wal.append(_batch(i)) == i + 1
    wal.close()
    return wal


def _segment(path: Path) -> Path:
    (only,) = sorted(path.iterdir())
    return only


def test_append_and_replay(tmp_path: Path) -> None:
    _filled(tmp_path, 5)
    wal = WriteAheadLog(str(tmp_path))
    entries = list(wal.replay(after=2))
    assert [o for o, _ in entries] == [3, 4, 5]
    assert entries[0][1].equals(_batch(2))
    assert wal.append(_batch(5)) == 6
    wal.close()


@pytest.mark.parametrize("cut", [1, 10, 24, 30, -1])
def test_torn_last_entry_is_dropped(tmp_path: Path, cut: int) -> None:
    """A crash mid-write leaves a prefix of the last entry: it is cut off, never applied."""
    _filled(tmp_path, 3)
    seg = _segment(tmp_path)
    full = seg.stat().st_size
    _filled(tmp_path / "probe", 2)
    two = _segment(tmp_path / "probe").stat().st_size
    entry = full - two
    keep = two + (cut if cut > 0 else entry - 1)
    os.truncate(seg, keep)
    wal = WriteAheadLog(str(tmp_path))
    assert [o for o, _ in wal.replay(after=0)] == [1, 2]
    assert seg.stat().st_size == two  # repaired on disk
    assert wal.append(_batch(9)) == 3  # the dropped offset is reused by the next write
    wal.close()
    assert [o for o, _ in WriteAheadLog(str(tmp_path)).replay(after=0)] == [1, 2, 3]


def test_checksum_mismatch_in_last_entry_is_dropped(tmp_path: Path) -> None:
    _filled(tmp_path, 3)
    seg = _segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[-5] ^= 0xFF  # flip a payload byte of the last entry
    seg.write_bytes(bytes(data))
    assert [o for o, _ in WriteAheadLog(str(tmp_path)).replay(after=0)] == [1, 2]


def test_corruption_before_the_end_is_an_error(tmp_path: Path) -> None:
    wal = _filled(tmp_path, 2)
    wal = WriteAheadLog(str(tmp_path))
    list(wal.replay(after=0))
    wal.roll()
    wal.append(_batch(7))
    wal.close()
    first = sorted(tmp_path.iterdir())[0]
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="corrupt log entry"):
        list(WriteAheadLog(str(tmp_path)).replay(after=0))


def test_roll_and_drop_through(tmp_path: Path) -> None:
    wal = WriteAheadLog(str(tmp_path))
    list(wal.replay(after=0))
    for i in range(3):
        wal.append(_batch(i))
    wal.roll()
    wal.append(_batch(3))
    assert wal.drop_through(3) == 1
    wal.close()
    reopened = WriteAheadLog(str(tmp_path))
    assert [o for o, _ in reopened.replay(after=3)] == [4]
    assert reopened.next_offset == 5


def test_append_before_replay_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        WriteAheadLog(str(tmp_path)).append(_batch(0))
