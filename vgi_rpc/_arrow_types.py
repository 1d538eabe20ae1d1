"""Python annotations <-> Arrow types, and the value codecs between them.

A ``Codec`` knows how to turn one Python value into what ``pa.array`` takes
(validating its type on the way) and how to turn ``Scalar.as_py()`` output
back into the annotated Python type. Owns wire spec section 4; knows nothing
of batches, metadata or methods.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import struct
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

import pyarrow as pa

from vgi_rpc._errors import SchemaError
from vgi_rpc._flat_row import STRUCT_FORMATS
from vgi_rpc._record import record

_NONE_TYPE = type(None)


@record(frozen=True)
class ArrowType:
    """Explicit Arrow type for an annotation: ``Annotated[int, ArrowType(pa.int32())]``."""

    __slots__ = ("arrow_type",)

    arrow_type: pa.DataType

    def __init__(self, arrow_type: pa.DataType) -> None:
        object.__setattr__(self, "arrow_type", arrow_type)


class Codec:
    """Converts one annotated Python value to and from its Arrow form."""

    __slots__ = ("arrow_type", "nullable", "python_name")

    def __init__(self, arrow_type: pa.DataType | None, python_name: str) -> None:
        self.arrow_type = arrow_type
        self.nullable = False
        self.python_name = python_name

    def to_arrow(self, value: object, where: str) -> object:
        """Validate ``value`` and return what ``pa.array`` accepts for it."""
        raise NotImplementedError

    def from_arrow(self, value: object) -> object:
        """Rebuild the Python value from ``Scalar.as_py()`` output."""
        return value

    def mismatch(self, value: object, where: str) -> TypeError:
        """Build the error for a value of the wrong Python type."""
        return TypeError(
            f"{where}: expected {self.python_name}, got {type(value).__name__} {_short(value)}"
        )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ScalarCodec(Codec):
    """str, bytes, int, float, bool and the date/time/decimal family."""

    __slots__ = ("accepts", "convert")

    def __init__(
        self,
        arrow_type: pa.DataType | None,
        python_name: str,
        accepts: tuple[type, ...],
        convert: Callable[[object], object] | None = None,
    ) -> None:
        super().__init__(arrow_type, python_name)
        self.accepts = accepts
        self.convert = convert

    def to_arrow(self, value: object, where: str) -> object:
        # bool is an int subclass; an int parameter must not silently take True.
        if not isinstance(value, self.accepts) or (
            isinstance(value, bool) and bool not in self.accepts
        ):
            raise self.mismatch(value, where)
        return self.convert(value) if self.convert is not None else value


def _to_float(value: object) -> object:
    return float(value)  # type: ignore[arg-type]  # int or float, checked by accepts


def _to_bytes(value: object) -> object:
    return value if isinstance(value, bytes) else bytes(value)  # type: ignore[call-overload]  # bytearray/memoryview only, checked by accepts


class OptionalCodec(Codec):
    """``T | None``: nullable ``T``."""

    __slots__ = ("inner",)

    def __init__(self, inner: Codec) -> None:
        super().__init__(inner.arrow_type, f"{inner.python_name} | None")
        self.inner = inner
        self.nullable = True

    def to_arrow(self, value: object, where: str) -> object:
        return None if value is None else self.inner.to_arrow(value, where)

    def from_arrow(self, value: object) -> object:
        return None if value is None else self.inner.from_arrow(value)


def codec_field(name: str, codec: Codec) -> pa.Field[pa.DataType]:
    """The Arrow field a named codec's values travel in."""
    if codec.arrow_type is None:
        raise SchemaError(
            f"field {name!r}: no default Arrow type for {codec.python_name}; "
            "annotate it as Annotated[T, ArrowType(pa....)]"
        )
    return pa.field(name, codec.arrow_type, nullable=codec.nullable)


def fields_schema(fields: list[tuple[str, Codec]]) -> pa.Schema:
    """The Arrow schema for named codecs (a dataclass or a parameter list)."""
    return pa.schema([codec_field(name, codec) for name, codec in fields])


def is_arrow_dataclass(tp: object) -> bool:
    """Whether ``tp`` is an ``ArrowSerializableDataclass`` subclass."""
    return isinstance(tp, type) and getattr(tp, "__vgi_arrow_dataclass__", False) is True


def _scalar(arrow: pa.DataType | None, name: str, *accepts: type) -> ScalarCodec:
    return ScalarCodec(arrow, name, accepts)


def _simple_codec(tp: object) -> Codec | None:
    if tp is str:
        return _scalar(pa.utf8(), "str", str)
    if tp is bytes:
        return ScalarCodec(pa.binary(), "bytes", (bytes, bytearray, memoryview), _to_bytes)
    if tp is bool:
        return _scalar(pa.bool_(), "bool", bool)
    if tp is int:
        return _scalar(pa.int64(), "int", int)
    if tp is float:
        return ScalarCodec(pa.float64(), "float", (float, int), _to_float)
    if tp is dt.datetime:
        return _scalar(pa.timestamp("us"), "datetime", dt.datetime)
    if tp is dt.date:
        return _scalar(pa.date32(), "date", dt.date)
    if tp is dt.time:
        return _scalar(pa.time64("us"), "time", dt.time)
    if tp is dt.timedelta:
        return _scalar(pa.duration("us"), "timedelta", dt.timedelta)
    if tp is decimal.Decimal:
        return ScalarCodec(None, "Decimal", (decimal.Decimal, int))
    if tp is pa.RecordBatch or tp is pa.Schema:
        from vgi_rpc._arrow_codecs import IpcBytesCodec

        return IpcBytesCodec(tp)
    return None


def codec_for(annotation: object, *, nested: bool = False) -> Codec:
    """Build the codec for a type annotation.

    ``nested`` is true inside a dataclass, where dataclasses become structs.

    Raises:
        SchemaError: The annotation has no Arrow mapping.
    """
    override: pa.DataType | None = None
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for extra in extras:
            if isinstance(extra, ArrowType):
                override = extra.arrow_type
        annotation = base
    codec = _codec_for_base(annotation, nested)
    if override is not None:
        target = codec.inner if isinstance(codec, OptionalCodec) else codec
        target.arrow_type = override
        codec.arrow_type = override
    return codec


def _codec_for_base(annotation: object, nested: bool) -> Codec:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Union or origin is types.UnionType:
        non_none = [a for a in args if a is not _NONE_TYPE]
        if len(non_none) == 1 and len(args) == 2:
            return OptionalCodec(codec_for(non_none[0], nested=nested))
        raise SchemaError(f"unions other than Optional[T] have no Arrow mapping: {annotation}")
    supertype = getattr(annotation, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return codec_for(supertype, nested=nested)
    simple = _simple_codec(annotation)
    if simple is not None:
        return simple
    # the codecs of composite types: loaded by the first Protocol that uses one
    from vgi_rpc._arrow_codecs import DataclassCodec, EnumCodec, ListCodec, MapCodec

    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return EnumCodec(annotation)
    if is_arrow_dataclass(annotation):
        assert isinstance(annotation, type)
        return DataclassCodec(annotation, as_binary=not nested)
    if origin is list and len(args) == 1:
        return ListCodec(codec_for(args[0], nested=True), list)
    if origin in (frozenset, set) and len(args) == 1:
        return ListCodec(codec_for(args[0], nested=True), typing.cast("type", origin))
    if origin is dict and len(args) == 2:
        return MapCodec(codec_for(args[0], nested=True), codec_for(args[1], nested=True))
    if origin is ClassVar:
        raise SchemaError("ClassVar is not a field")
    hint = ""
    if annotation is tuple or origin is tuple:
        hint = " (Arrow has no tuple type: use list[T] or an ArrowSerializableDataclass)"
    raise SchemaError(
        f"no Arrow mapping for {annotation!r}{hint}; use Annotated[T, ArrowType(pa....)] to name one"
    )


def arrow_field(
    name: str, annotation: object, *, nested: bool = False
) -> tuple[pa.Field[pa.DataType], Codec]:
    """Return the Arrow field and codec for a named parameter or result."""
    codec = codec_for(annotation, nested=nested)
    return codec_field(name, codec), codec


ArrayBuilder = Callable[[object], "pa.Array[Any]"]

_VARIABLE_WIDTH = {
    pa.utf8(): "<ii",
    pa.binary(): "<ii",
    pa.large_utf8(): "<qq",
    pa.large_binary(): "<qq",
}


def _fixed_builder(arrow_type: pa.DataType, fmt: str) -> ArrayBuilder:
    pack = struct.Struct(fmt).pack

    def build(value: object) -> pa.Array[Any]:
        try:
            data = pack(value)
        except (struct.error, OverflowError) as exc:
            raise TypeError(f"{value!r} does not fit Arrow type {arrow_type}: {exc}") from None
        return pa.Array.from_buffers(arrow_type, 1, [None, pa.py_buffer(data)])

    return build


def _variable_builder(arrow_type: pa.DataType, fmt: str) -> ArrayBuilder:
    pack = struct.Struct(fmt).pack
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)

    def build(value: object) -> pa.Array[Any]:
        data: bytes = value.encode() if text else value  # type: ignore[attr-defined,assignment]  # str or bytes, checked by the codec
        return pa.Array.from_buffers(
            arrow_type, 1, [None, pa.py_buffer(pack(0, len(data))), pa.py_buffer(data)]
        )

    return build


def _bool_builder(value: object) -> pa.Array[Any]:
    return pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\x01" if value else b"\x00")])


def single_value_builder(arrow_type: pa.DataType) -> ArrayBuilder:
    """A function building a one-element array of ``arrow_type`` from a non-null converted value.

    Primitive and string types are assembled from raw buffers, which is
    several times cheaper than ``pa.array`` for one value; everything else
    goes through ``pa.array``.
    """
    fmt = STRUCT_FORMATS.get(arrow_type)
    if fmt is not None:
        return _fixed_builder(arrow_type, fmt)
    fmt = _VARIABLE_WIDTH.get(arrow_type)
    if fmt is not None:
        return _variable_builder(arrow_type, fmt)
    if arrow_type == pa.bool_():
        return _bool_builder

    def build(value: object) -> pa.Array[Any]:
        try:
            return pa.array([value], type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise TypeError(f"{value!r} does not fit Arrow type {arrow_type}: {exc}") from exc

    return build


__all__ = [
    "ArrowType",
    "Codec",
    "arrow_field",
    "codec_field",
    "codec_for",
    "fields_schema",
    "is_arrow_dataclass",
    "single_value_builder",
]
