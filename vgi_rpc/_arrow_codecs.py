"""Codecs of composite annotations: lists, sets, maps, enums, dataclasses, IPC values.

Apart from the scalar codecs (``_arrow_types``): a Protocol whose methods take
and return plain scalars never loads these.
"""

from __future__ import annotations

import enum
import typing
from typing import get_type_hints

import pyarrow as pa

from vgi_rpc._arrow_types import Codec, codec_field, codec_for
from vgi_rpc._errors import SchemaError
from vgi_rpc._ipc_embedded import read_embedded_batch, read_embedded_schema


class ListCodec(Codec):
    """``list[T]`` and ``frozenset[T]`` / ``set[T]`` (both travel as Arrow lists)."""

    __slots__ = ("container", "item")

    def __init__(self, item: Codec, container: type) -> None:
        arrow = pa.list_(item.arrow_type) if item.arrow_type is not None else None
        super().__init__(arrow, f"{container.__name__}[{item.python_name}]")
        self.item = item
        self.container = container

    def to_arrow(self, value: object, where: str) -> object:
        if self.container is list:
            if not isinstance(value, list | tuple):
                raise self.mismatch(value, where)
        elif not isinstance(value, set | frozenset):
            raise self.mismatch(value, where)
        item = self.item
        return [
            None if v is None else item.to_arrow(v, f"{where}[{i}]") for i, v in enumerate(value)
        ]

    def from_arrow(self, value: object) -> object:
        assert isinstance(value, list)
        item = self.item
        items = [None if v is None else item.from_arrow(v) for v in value]
        return items if self.container is list else self.container(items)


class MapCodec(Codec):
    """``dict[K, V]`` as ``map<K, V>`` (a list of key/value pairs on the wire)."""

    __slots__ = ("key", "value")

    def __init__(self, key: Codec, value: Codec) -> None:
        arrow = None
        if key.arrow_type is not None and value.arrow_type is not None:
            arrow = pa.map_(key.arrow_type, value.arrow_type)
        super().__init__(arrow, f"dict[{key.python_name}, {value.python_name}]")
        self.key = key
        self.value = value

    def to_arrow(self, value: object, where: str) -> object:
        if not isinstance(value, dict):
            raise self.mismatch(value, where)
        k, v = self.key, self.value
        return [
            (
                k.to_arrow(key, f"{where} key"),
                None if item is None else v.to_arrow(item, f"{where}[{key!r}]"),
            )
            for key, item in value.items()
        ]

    def from_arrow(self, value: object) -> object:
        pairs = value.items() if isinstance(value, dict) else value
        assert isinstance(pairs, typing.Iterable)
        k, v = self.key, self.value
        return {
            k.from_arrow(key): None if item is None else v.from_arrow(item) for key, item in pairs
        }


class EnumCodec(Codec):
    """An Enum travels as its member *name* in ``dictionary<int16, utf8>``."""

    __slots__ = ("enum_cls",)

    def __init__(self, enum_cls: type[enum.Enum]) -> None:
        super().__init__(pa.dictionary(pa.int16(), pa.utf8()), enum_cls.__name__)
        self.enum_cls = enum_cls

    def to_arrow(self, value: object, where: str) -> object:
        if not isinstance(value, self.enum_cls):
            raise self.mismatch(value, where)
        return value.name

    def from_arrow(self, value: object) -> object:
        try:
            return self.enum_cls[str(value)]
        except KeyError:
            # Name lookup is normative; a value lookup tolerates older peers.
            try:
                return self.enum_cls(value)
            except ValueError:
                names = [m.name for m in self.enum_cls]
                raise TypeError(
                    f"{value!r} is not a member of {self.enum_cls.__name__} {names}"
                ) from None


class IpcBytesCodec(Codec):
    """``pa.RecordBatch`` / ``pa.Schema`` values carried as serialized IPC in ``binary``."""

    __slots__ = ("kind",)

    def __init__(self, kind: type) -> None:
        super().__init__(pa.binary(), f"pyarrow.{kind.__name__}")
        self.kind = kind

    def to_arrow(self, value: object, where: str) -> object:
        if isinstance(value, pa.Schema) and self.kind is pa.Schema:
            return value.serialize().to_pybytes()
        if isinstance(value, pa.RecordBatch) and self.kind is pa.RecordBatch:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, value.schema) as writer:
                writer.write_batch(value)
            return sink.getvalue().to_pybytes()
        raise self.mismatch(value, where)

    def from_arrow(self, value: object) -> object:
        assert isinstance(value, bytes)
        if self.kind is pa.Schema:
            return read_embedded_schema(value, "a pyarrow.Schema value")
        return read_embedded_batch(value, "a pyarrow.RecordBatch value")


class DataclassCodec(Codec):
    """An ``ArrowSerializableDataclass``: a ``struct`` when nested, IPC bytes at the top.

    Spec section 4: a dataclass parameter or result is a ``binary`` column
    holding a whole IPC stream; inside that stream, nested dataclasses are
    inline ``struct`` columns.
    """

    __slots__ = ("as_binary", "cls", "fields")

    def __init__(self, cls: type, *, as_binary: bool) -> None:
        self.cls = cls
        self.fields: list[tuple[str, Codec]] = dataclass_field_codecs(cls)
        struct = pa.struct([codec_field(name, codec) for name, codec in self.fields])
        super().__init__(pa.binary() if as_binary else struct, cls.__name__)
        self.as_binary = as_binary

    def to_arrow(self, value: object, where: str) -> object:
        if not isinstance(value, self.cls):
            raise self.mismatch(value, where)
        if self.as_binary:
            try:
                return value.serialize_to_bytes()  # type: ignore[attr-defined]  # an ArrowSerializableDataclass
            except TypeError as exc:
                raise TypeError(f"{where}: {exc}") from None
        return {
            name: None
            if (v := getattr(value, name)) is None
            else codec.to_arrow(v, f"{where}.{name}")
            for name, codec in self.fields
        }

    def from_arrow(self, value: object) -> object:
        if self.as_binary:
            return self.cls.deserialize_from_bytes(value)  # type: ignore[attr-defined]  # ArrowSerializableDataclass
        assert isinstance(value, dict)
        return build_dataclass(self.cls, self.fields, value)


def build_dataclass(cls: type, fields: list[tuple[str, Codec]], row: dict[str, object]) -> object:
    """Construct ``cls`` from a decoded row, letting dataclass defaults fill absent fields."""
    kwargs: dict[str, object] = {}
    for name, codec in fields:
        if name in row:
            raw = row[name]
            kwargs[name] = None if raw is None else codec.from_arrow(raw)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = [n for n, _ in fields if n not in row]
        raise TypeError(
            f"cannot build {cls.__name__}: {exc}; fields absent from the data: {missing}"
        ) from exc


def dataclass_field_codecs(cls: type) -> list[tuple[str, Codec]]:
    """Codecs for every field of a dataclass, in declaration order (cached on the class)."""
    cached = cls.__dict__.get("__vgi_field_codecs__")
    if cached is not None:
        return typing.cast("list[tuple[str, Codec]]", cached)  # cache written just below
    import dataclasses  # the user's class is one: already imported

    hints = get_type_hints(cls, include_extras=True)
    codecs: list[tuple[str, Codec]] = []
    for f in dataclasses.fields(cls):
        try:
            codecs.append((f.name, codec_for(hints.get(f.name, f.type), nested=True)))
        except SchemaError as exc:
            raise SchemaError(f"{cls.__name__}.{f.name}: {exc}") from exc
    type.__setattr__(cls, "__vgi_field_codecs__", codecs)
    return codecs


__all__ = [
    "DataclassCodec",
    "EnumCodec",
    "IpcBytesCodec",
    "ListCodec",
    "MapCodec",
    "build_dataclass",
    "dataclass_field_codecs",
]
