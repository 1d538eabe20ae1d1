"""``@record`` classes behave as the ``@dataclass`` declarations they replaced (start-up work).

Each hand-written class is compared with its original (``tests/_original_records.py``):
the ``dataclasses`` metadata (fields, defaults, factories, parameters), the
constructor's signature, ``repr``, equality, hashing, frozenness, pickling and the
``dataclasses`` functions users call on them.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import sys
from typing import Any

import pyarrow as pa
import pytest

from tests import _original_records as original
from vgi_rpc import ArrowType, AuthContext, ResourceLimits
from vgi_rpc._methods import ParamInfo, RpcMethodInfo, rpc_methods
from vgi_rpc.rpc import (
    AnnotatedBatch,
    CallRecord,
    CallStart,
    CallStatistics,
    ChannelCapabilities,
    Hosted,
    SegmentOffer,
    Stream,
    Turn,
)

RECORDS: list[type] = [
    ResourceLimits,
    ArrowType,
    ParamInfo,
    RpcMethodInfo,
    CallStatistics,
    CallRecord,
    SegmentOffer,
    ChannelCapabilities,
    AuthContext,
    Hosted,
    AnnotatedBatch,
    Stream,
    CallStart,
    Turn,
]
# ParamInfo is private; its "no default" marker is its own (read through has_default only)
OWN_DEFAULTS = {("ParamInfo", "default")}
PARAMS = ("init", "repr", "eq", "order", "unsafe_hash", "frozen", "match_args", "kw_only", "slots")


def _pair(cls: type) -> tuple[type, type]:
    return cls, getattr(original, cls.__name__)


def _sample(cls: type, seed: int) -> dict[str, Any]:
    """Keyword arguments for every field: ints for the limits, distinct objects elsewhere."""
    names = [f.name for f in dataclasses.fields(getattr(original, cls.__name__))]
    if cls is ResourceLimits:
        return {name: seed + i for i, name in enumerate(names)}
    return {name: (cls.__name__, name, seed) for name in names}


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_dataclass_metadata_is_the_originals(cls: type) -> None:
    ours, theirs = _pair(cls)
    assert dataclasses.is_dataclass(ours)
    mine, old = dataclasses.fields(ours), dataclasses.fields(theirs)
    assert [f.name for f in mine] == [f.name for f in old]
    for a, b in zip(mine, old, strict=True):
        assert (a.type, a.init, a.repr, a.compare, a.hash, a.kw_only) == (
            b.type,
            b.init,
            b.repr,
            b.compare,
            b.hash,
            b.kw_only,
        ), a.name
        if (cls.__name__, a.name) not in OWN_DEFAULTS:
            assert a.default == b.default, a.name
        assert (a.default_factory is dataclasses.MISSING) == (
            b.default_factory is dataclasses.MISSING
        )
        factory, old_factory = a.default_factory, b.default_factory
        if callable(factory) and callable(old_factory):
            made, expected = factory(), old_factory()
            assert type(made).__name__ == type(expected).__name__, a.name
            assert repr(made) == repr(expected) or a.name == "started", a.name
    mine_params = ours.__dataclass_params__  # type: ignore[attr-defined]  # the dataclass protocol
    old_params = theirs.__dataclass_params__  # type: ignore[attr-defined]  # the dataclass protocol
    for name in PARAMS:
        assert getattr(mine_params, name, None) == getattr(old_params, name, None), name
    assert ours.__match_args__ == theirs.__match_args__  # type: ignore[attr-defined]  # set on dataclasses
    assert ("__slots__" in vars(ours)) == ("__slots__" in vars(theirs))


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_signature_repr_and_equality_are_the_originals(cls: type) -> None:
    ours, theirs = _pair(cls)
    if cls.__name__ in {name for name, _ in OWN_DEFAULTS}:
        # inspect shows the original's default (inspect.Parameter.empty) as no default
        assert str(inspect.signature(ours)).replace(" = <no default>", "") == str(
            inspect.signature(theirs)
        )
    else:
        assert str(inspect.signature(ours)) == str(inspect.signature(theirs))
    a, b = ours(**_sample(cls, 1)), theirs(**_sample(cls, 1))
    assert repr(a) == repr(b)
    assert (a == ours(**_sample(cls, 1))) == (b == theirs(**_sample(cls, 1)))
    assert (a == ours(**_sample(cls, 2))) == (b == theirs(**_sample(cls, 2)))
    assert (a == b) is False  # another class: NotImplemented both ways
    old_hash = type(theirs).__getattribute__(theirs, "__hash__")
    if old_hash is None:
        with pytest.raises(TypeError):
            hash(a)
    elif dataclasses.fields(theirs) and theirs.__dataclass_params__.frozen:  # type: ignore[attr-defined]  # the dataclass protocol
        assert hash(a) == hash(b)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_frozen_classes_refuse_assignment_as_dataclasses_do(cls: type) -> None:
    ours, theirs = _pair(cls)
    a, b = ours(**_sample(cls, 1)), theirs(**_sample(cls, 1))
    name = dataclasses.fields(theirs)[0].name
    if not theirs.__dataclass_params__.frozen:  # type: ignore[attr-defined]  # the dataclass protocol
        setattr(a, name, 7)
        assert getattr(a, name) == 7
        return
    for target in (a, b):
        with pytest.raises(dataclasses.FrozenInstanceError) as caught:
            setattr(target, name, 7)
        assert str(caught.value) == f"cannot assign to field {name!r}"
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(target, name)


def test_the_dataclass_functions_work_on_records() -> None:
    limits = ResourceLimits(max_columns=5)
    assert dataclasses.replace(limits, max_columns=6) == ResourceLimits(max_columns=6)
    assert dataclasses.asdict(CallStatistics(input_rows=3)) == {
        "input_batches": 0,
        "output_batches": 0,
        "input_rows": 3,
        "output_rows": 0,
        "input_bytes": 0,
        "output_bytes": 0,
    }
    assert dataclasses.astuple(ArrowType(pa.int8())) == (pa.int8(),)
    assert pickle.loads(pickle.dumps(limits)) == limits
    stats = CallStatistics(output_rows=2)
    assert pickle.loads(pickle.dumps(stats)) == stats
    if sys.version_info >= (3, 13):
        assert copy.replace(limits, max_columns=9).max_columns == 9  # type: ignore[attr-defined]  # 3.13+

    @dataclasses.dataclass(frozen=True)
    class Stricter(ResourceLimits):  # a dataclass subclass sees the inherited fields
        extra: int = 1

    assert [f.name for f in dataclasses.fields(Stricter)][-2:] == ["schema_cache_bytes", "extra"]
    with pytest.raises(ValueError, match="max_columns must be a non-negative int"):
        ResourceLimits(max_columns=-1)


def test_method_info_computes_doc_and_signature_when_asked() -> None:
    class Svc:
        def add(self, a: float, b: float = 2.0, *, scale: int = 1) -> float:  # type: ignore[empty-body]  # a Protocol-style declaration
            """Add.

            Twice.
            """

        def ping(self) -> None: ...

    info = rpc_methods(Svc)["add"]
    assert info.doc == "Add.\n\nTwice."
    whole = inspect.signature(Svc.add)
    assert info.signature == whole.replace(parameters=list(whole.parameters.values())[1:])
    assert str(info.signature) == "(a: 'float', b: 'float' = 2.0, *, scale: 'int' = 1) -> 'float'"
    assert [(p.name, p.has_default, p.default if p.has_default else None) for p in info.params] == [
        ("a", False, None),
        ("b", True, 2.0),
        ("scale", True, 1),
    ]
    assert info.with_exchange(True).is_exchange is True
    assert info.with_exchange(True).params == info.params
    ping = rpc_methods(Svc)["ping"]  # no builders: picklable, as the dataclass was
    again = pickle.loads(pickle.dumps(ping))
    assert (again.name, again.doc, str(again.signature)) == ("ping", "", "() -> 'None'")
    assert dataclasses.replace(info, name="other").signature == info.signature


def test_tuple_fields_behaves_as_the_named_tuple_it_replaces() -> None:
    import collections
    import pickle

    from vgi_rpc._flatbuf import Header
    from vgi_rpc._ipc import IpcValidation
    from vgi_rpc._ipc_reader import ReadPolicy
    from vgi_rpc._limits import DEFAULT_LIMITS

    namedtuple: Any = collections.namedtuple  # the class collections makes of the same fields
    plain = namedtuple("Header", ["header_type", "body_length", "custom_metadata"])
    ours: Any = Header(3, 16, {b"k": b"v"})  # probed beyond what its type declares
    theirs = plain(3, 16, {b"k": b"v"})
    assert ours == theirs == (3, 16, {b"k": b"v"})
    assert repr(ours) == repr(theirs)
    assert Header._fields == plain._fields
    assert (ours.header_type, ours.body_length, ours.custom_metadata) == (3, 16, {b"k": b"v"})
    assert hash(Header(1, 2, None)) == hash((1, 2, None))
    assert ours._replace(body_length=8) == Header(3, 8, {b"k": b"v"})
    assert type(ours._replace(body_length=8)) is Header
    with pytest.raises(TypeError, match="unexpected fields"):
        ours._replace(nope=1)
    with pytest.raises(TypeError, match="3 positional arguments"):
        Header(1, 2)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        ours.header_type = 4
    with pytest.raises(AttributeError):
        ours.extra = 1  # slotted: no instance dict
    again = pickle.loads(pickle.dumps(ours))
    assert again == ours
    assert type(again) is Header
    match ours:
        case Header(kind, length, _):
            assert (kind, length) == (3, 16)
    # _replace keeps the subclass and the other fields (ReadPolicy.for_body relies on it)
    policy = ReadPolicy.make(IpcValidation.FULL, DEFAULT_LIMITS)
    narrower = policy.for_body(1024)
    assert type(narrower) is ReadPolicy
    assert narrower.schemas is policy.schemas
    assert narrower.limits == DEFAULT_LIMITS.for_body(1024)
