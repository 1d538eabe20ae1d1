"""Storage may be shared: a log entry or snapshot edited behind the checksum is refused, not read."""

from __future__ import annotations

import os
import struct

import pyarrow as pa
import pytest

from vgi_rpc.services.vectorindex._errors import StorageError
from vgi_rpc.services.vectorindex._snapshots import SnapshotStore
from vgi_rpc.services.vectorindex._wal import (
    _HEADER,
    WriteAheadLog,
    _crc,
    decode_batch,
    encode_batch,
)

GOOD = pa.record_batch({"s": ["aaaa", "bbbb", "cccc"]})
OFFSETS = struct.pack("<4i", 0, 4, 8, 12)
PAST_THE_DATA = struct.pack("<4i", 0, 1 << 20, 8, 12)


def test_an_entry_whose_offsets_point_past_its_data_is_a_storage_error() -> None:
    payload = encode_batch(GOOD).to_pybytes()
    assert payload.count(OFFSETS) == 1
    with pytest.raises(StorageError, match=r"unreadable log entry: .*out of bounds"):
        decode_batch(payload.replace(OFFSETS, PAST_THE_DATA))
    assert decode_batch(payload).equals(GOOD)


def test_replay_refuses_an_entry_edited_with_its_checksum_recomputed(tmp_path: str) -> None:
    directory = os.path.join(tmp_path, "log")
    log = WriteAheadLog(directory)
    assert list(log.replay(0)) == []
    log.append(GOOD)
    log.close()
    (name,) = os.listdir(directory)
    path = os.path.join(directory, name)
    with open(path, "rb") as f:
        data = f.read()
    magic, offset, size, _ = _HEADER.unpack_from(data, 0)
    payload = data[_HEADER.size : _HEADER.size + size].replace(OFFSETS, PAST_THE_DATA)
    with open(path, "wb") as f:
        f.write(_HEADER.pack(magic, offset, size, _crc(offset, payload)) + payload)
    with pytest.raises(StorageError, match="unreadable log entry"):
        list(WriteAheadLog(directory).replay(0))


def test_a_snapshot_edited_past_its_data_is_skipped_for_the_one_before(tmp_path: str) -> None:
    store = SnapshotStore(os.path.join(tmp_path, "store"))
    os.makedirs(os.path.join(tmp_path, "store", "ns", "snapshots"))  # the engine makes it
    store.write("ns", 1, pa.table({"s": ["old1", "old2", "old3"]}), None, {})
    store.write("ns", 2, pa.table(GOOD), None, {})
    newest = os.path.join(tmp_path, "store", "ns", "snapshots", f"{2:020d}.arrow")
    with open(newest, "rb") as f:
        data = f.read()
    assert data.count(OFFSETS) == 1
    with open(newest, "wb") as f:
        f.write(data.replace(OFFSETS, PAST_THE_DATA))
    snapshot = store.latest("ns")
    assert snapshot is not None
    assert snapshot.offset == 1
    assert snapshot.table.column("s").to_pylist() == ["old1", "old2", "old3"]
