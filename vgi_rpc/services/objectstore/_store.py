"""Durable objects and names through ``pyarrow.fs`` (a local directory, S3, ...).

Layout under the root: ``objects/<hex>.data`` (the object's bytes: an Arrow IPC
stream or a blob's raw bytes), ``objects/<hex>.json`` (its metadata, written
last: it is the commit marker) and ``names/<sha256>.json``. Local files are
written to a temporary name, fsynced, renamed and the directory fsynced; on an
object store a completed upload is atomic. Knows nothing of RPC or memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs

_COPY_CHUNK = 16 << 20
MAX_RECORD_BYTES = 1 << 20  # one object's metadata (properties included) or one name
_log = logging.getLogger("vgi_rpc.services.objectstore")
_STALE_TEMP_SECONDS = 3600


class Store:
    """Persistent objects and names under one ``pyarrow.fs`` location.

    Args:
        location: A local directory, a URI pyarrow understands (``s3://bucket/prefix``,
            ``file:///...``), or a ``(FileSystem, path)`` pair.
    """

    def __init__(self, location: str | tuple[pafs.FileSystem, str]) -> None:
        if isinstance(location, tuple):
            self.fs, root = location
        elif "://" in location:
            self.fs, root = pafs.FileSystem.from_uri(location)
        else:
            self.fs, root = pafs.LocalFileSystem(), os.path.abspath(location)
        self.root = root.rstrip("/")
        self.uri = location if isinstance(location, str) else f"{type(self.fs).__name__}:{root}"
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        for sub in ("objects", "names"):
            self.fs.create_dir(f"{self.root}/{sub}", recursive=True)
        if self.local:
            self._sweep_temps()

    # objects

    def _object(self, oid: int, suffix: str) -> str:
        return f"{self.root}/objects/{oid:016x}.{suffix}"

    def put_object(self, oid: int, data: pa.Buffer, meta: dict[str, object]) -> None:
        """Write the object's bytes, then its metadata; durable when this returns."""
        self._write(self._object(oid, "data"), data)
        self._write(self._object(oid, "json"), pa.py_buffer(json.dumps(meta).encode()))

    def object_meta(self, oid: int) -> dict[str, object] | None:
        """The persisted metadata of ``oid``, or ``None``."""
        return self._record(self._object(oid, "json"))

    def has_object(self, oid: int) -> bool:
        """Whether ``oid`` is persisted (its metadata, the commit marker, exists)."""
        return bool(self.fs.get_file_info(self._object(oid, "json")).type == pafs.FileType.File)

    def read_object(self, oid: int, size: int, target: pa.NativeFile) -> None:
        """Copy the object's ``size`` bytes into ``target``."""
        with self.fs.open_input_stream(self._object(oid, "data")) as source:
            remaining = size
            while remaining:
                chunk = source.read(min(remaining, _COPY_CHUNK))
                if not chunk:
                    raise OSError(f"object {oid:016x} in the store is shorter than {size} bytes")
                target.write(chunk)
                remaining -= len(chunk)

    def delete_object(self, oid: int) -> None:
        """Remove the object (its metadata first, so it stops being visible at once)."""
        for suffix in ("json", "data"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(self._object(oid, suffix))
        self._sync_dir(f"{self.root}/objects")

    def object_ids(self) -> list[int]:
        """Ids of every persisted object."""
        ids = []
        for name in self._listing("objects"):
            stem, _, suffix = name.partition(".")
            if suffix == "json" and len(stem) == 16:
                with contextlib.suppress(ValueError):
                    ids.append(int(stem, 16))
        return ids

    # names

    def _name(self, name: str) -> str:
        return f"{self.root}/names/{hashlib.sha256(name.encode()).hexdigest()}.json"

    def put_name(self, name: str, oid: int) -> None:
        """Bind ``name`` to ``oid``; durable when this returns."""
        self._write(self._name(name), pa.py_buffer(json.dumps({"name": name, "id": oid}).encode()))

    def get_name(self, name: str) -> int | None:
        """The id ``name`` is bound to, or ``None``."""
        record = self._record(self._name(name))
        oid = record.get("id") if record is not None else None
        return oid if isinstance(oid, int) else None

    def drop_name(self, name: str) -> None:
        """Unbind ``name`` (nothing if it is not bound)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self._name(name))
        self._sync_dir(f"{self.root}/names")

    def names(self) -> dict[str, int]:
        """Every persisted name and its id."""
        out: dict[str, int] = {}
        for entry in self._listing("names"):
            if entry.endswith(".json"):
                record = self._record(f"{self.root}/names/{entry}") or {}
                name, oid = record.get("name"), record.get("id")
                if isinstance(name, str) and isinstance(oid, int):
                    out[name] = oid
        return out

    # plumbing

    def _listing(self, sub: str) -> Iterator[str]:
        selector = pafs.FileSelector(f"{self.root}/{sub}", allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                yield info.base_name

    def _record(self, path: str) -> dict[str, object] | None:
        """A small JSON object the store keeps (metadata, a name); ``None`` if missing or damaged.

        The store may be shared, so another writer's damaged or foreign file is
        skipped with a warning rather than failing every listing and delete.
        """
        raw = self._read(path, MAX_RECORD_BYTES + 1)
        if raw is None:
            return None
        try:
            if len(raw) > MAX_RECORD_BYTES:
                raise ValueError(f"longer than {MAX_RECORD_BYTES} bytes")
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            _log.warning("skipping the damaged store file %s: %s", path, exc)
            return None
        return record

    def _read(self, path: str, limit: int = -1) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as f:
                return bytes(f.read(limit) if limit >= 0 else f.read())
        except FileNotFoundError:
            return None
        except OSError as exc:  # S3 reports a missing key as OSError on some versions
            if "NoSuchKey" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def _write(self, path: str, data: pa.Buffer) -> None:
        if not self.local:
            # An object store makes a completed upload visible atomically, and only then.
            with self.fs.open_output_stream(path) as out:
                _copy(data, out)
            return
        temp = f"{path}.tmp-{secrets.token_hex(6)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view[:_COPY_CHUNK]) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, path)
        self._sync_dir(os.path.dirname(path))

    def _sync_dir(self, directory: str) -> None:
        if not self.local:
            return
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sweep_temps(self) -> None:
        """Remove temporary files a killed writer left (old enough not to be in progress)."""
        now = time.time()
        for sub in ("objects", "names"):
            directory = f"{self.root}/{sub}"
            for entry in os.listdir(directory):
                path = os.path.join(directory, entry)
                with contextlib.suppress(OSError):
                    if ".tmp-" in entry and now - os.stat(path).st_mtime > _STALE_TEMP_SECONDS:
                        os.unlink(path)


def _copy(data: pa.Buffer, out: pa.NativeFile) -> None:
    for start in range(0, data.size, _COPY_CHUNK):
        out.write(data.slice(start, min(_COPY_CHUNK, data.size - start)))


__all__ = ["Store"]
