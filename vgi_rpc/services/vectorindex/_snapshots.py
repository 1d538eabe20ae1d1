"""Snapshot store: namespace configs and snapshots through ``pyarrow.fs``.

Owns the layout under the store root (a local directory or any URI pyarrow
understands, e.g. ``s3://bucket/prefix``)::

    <root>/<namespace>/config.json
    <root>/<namespace>/snapshots/<offset:020d>.faiss   serialized faiss index (optional)
    <root>/<namespace>/snapshots/<offset:020d>.arrow   Arrow IPC file: id, vector, metadata, alive

Every file is written under a temporary name, synced (local files) and renamed,
and the ``.arrow`` file is written last: it is the commit point, and it names the
crc32 of its ``.faiss`` companion. Knows nothing of the log or of faiss.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import zlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from vgi_rpc.services.vectorindex._errors import InvalidArgumentError, StorageError

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def check_namespace(name: str) -> str:
    """Refuse namespace names that are not safe as a path component."""
    if not NAMESPACE_RE.match(name):
        raise InvalidArgumentError(
            f"bad namespace {name!r}: use 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)"
        )
    return name


@dataclass(frozen=True)
class Snapshot:
    """A loaded snapshot."""

    offset: int
    table: pa.Table
    index: bytes | None
    info: dict[str, object]


class SnapshotStore:
    """Configs and snapshots of every namespace under one root."""

    def __init__(self, location: str | pafs.FileSystem) -> None:
        if isinstance(location, pafs.FileSystem):
            self.fs, self.root = location, ""
        elif "://" in location:
            self.fs, self.root = pafs.FileSystem.from_uri(location)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(location)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        if self.root:
            self.fs.create_dir(self.root, recursive=True)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if self.root else "/".join(parts)

    def _write(self, path: str, data: bytes | pa.Buffer) -> None:
        """Write a whole file atomically: temp name, sync, rename."""
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)
            if self.local:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.fs.move(tmp, path)
            if self.local:
                fd = os.open(os.path.dirname(path), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def _read(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as f:
                return bytes(f.read())
        except FileNotFoundError:
            return None

    # -- configs -------------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        """Namespaces that have a config."""
        selector = pafs.FileSelector(self.root or "/", allow_not_found=True)
        names = []
        for info in self.fs.get_file_info(selector):
            name = info.base_name
            if info.type == pafs.FileType.Directory and NAMESPACE_RE.match(name):
                probe = self.fs.get_file_info(self._path(name, "config.json"))
                if probe.type == pafs.FileType.File:
                    names.append(name)
        return sorted(names)

    def write_config(self, namespace: str, config: str) -> None:
        """Record a namespace's configuration (JSON text)."""
        self.fs.create_dir(self._path(namespace, "snapshots"), recursive=True)
        self._write(self._path(namespace, "config.json"), config.encode())

    def read_config(self, namespace: str) -> str | None:
        """A namespace's configuration, or None."""
        data = self._read(self._path(namespace, "config.json"))
        return None if data is None else data.decode()

    def drop(self, namespace: str) -> None:
        """Remove a namespace's config and snapshots (config first: that is the commit)."""
        self.fs.delete_file(self._path(namespace, "config.json"))
        self.fs.delete_dir(self._path(namespace))

    # -- snapshots -----------------------------------------------------------------------
    def _offsets(self, namespace: str) -> list[int]:
        selector = pafs.FileSelector(self._path(namespace, "snapshots"), allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            stem, _, ext = info.base_name.partition(".")
            if ext == "arrow" and stem.isdigit():
                found.append(int(stem))
        return sorted(found)

    def write(
        self,
        namespace: str,
        offset: int,
        table: pa.Table,
        index: bytes | None,
        info: dict[str, object],
    ) -> None:
        """Write a snapshot of the namespace as of log ``offset``."""
        stem = self._path(namespace, "snapshots", f"{offset:020d}")
        meta = dict(info, offset=offset)
        if index is not None:
            self._write(stem + ".faiss", index)
            meta["index_crc32"] = zlib.crc32(index)
            meta["index_bytes"] = len(index)
        schema = table.schema.with_metadata({b"vectorindex.snapshot": json.dumps(meta).encode()})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(table.cast(schema))
        self._write(stem + ".arrow", sink.getvalue())

    def latest(self, namespace: str) -> Snapshot | None:
        """The newest readable snapshot (an unreadable newer one is skipped)."""
        for offset in reversed(self._offsets(namespace)):
            stem = self._path(namespace, "snapshots", f"{offset:020d}")
            data = self._read(stem + ".arrow")
            if data is None:
                continue
            try:
                reader = pa.ipc.open_file(pa.py_buffer(data))
                table = reader.read_all()
                table.validate(full=True)  # shared storage: a snapshot is checked before use
                info = json.loads((reader.schema.metadata or {})[b"vectorindex.snapshot"])
            except (pa.ArrowInvalid, KeyError, ValueError):
                continue
            index = None
            if "index_crc32" in info:
                index = self._read(stem + ".faiss")
                if index is not None and zlib.crc32(index) != info["index_crc32"]:
                    index = None  # the caller rebuilds the index from the vectors
            return Snapshot(offset, table.replace_schema_metadata(None), index, info)
        return None

    def prune(self, namespace: str, keep: int = 2) -> None:
        """Delete all but the ``keep`` newest snapshots."""
        for offset in self._offsets(namespace)[:-keep]:
            stem = self._path(namespace, "snapshots", f"{offset:020d}")
            for ext in (".arrow", ".faiss"):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.delete_file(stem + ext)
