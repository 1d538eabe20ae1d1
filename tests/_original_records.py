"""The ``@dataclass`` declarations that ``vgi_rpc._record.record`` classes replace, as they were.

``tests/test_records.py`` checks each hand-written class against its original
here: same fields, parameters, signature, repr, equality, hashing, freezing.
Annotations stay strings (never evaluated), exactly as the originals wrote them.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic

from vgi_rpc.rpc._channel import DEFAULT_SHM_MAX_SIZE
from vgi_rpc.rpc._streams import EMPTY_SCHEMA, H, S

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pyarrow as pa

    from vgi_rpc._arrow_types import ArrayBuilder, Codec
    from vgi_rpc._methods import MethodType
    from vgi_rpc.rpc._accounting import CallScope
    from vgi_rpc.rpc._hosting import Handler
    from vgi_rpc.rpc._server_stream import ServerStream
    from vgi_rpc.rpc._step import Batch, Reply
    from vgi_rpc.shm import ShmSegment

MiB = 1 << 20
_NO_DEFAULT = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceLimits:
    max_request_bytes: int | None = 256 * MiB
    max_message_bytes: int = 2048 * MiB
    max_metadata_bytes: int = 16 * MiB
    max_columns: int = 10_000
    max_nesting_depth: int = 64
    max_rows_per_byte: int = 8
    min_free_rows: int = 1 << 16
    schema_cache_bytes: int = 64 * MiB


@dataclasses.dataclass(frozen=True, slots=True)
class ArrowType:
    arrow_type: pa.DataType


@dataclasses.dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    annotation: object
    codec: Codec
    field: pa.Field[pa.DataType]
    build: ArrayBuilder
    default: object = _NO_DEFAULT


@dataclasses.dataclass(frozen=True, slots=True)
class RpcMethodInfo:
    name: str
    method_type: MethodType
    params: tuple[ParamInfo, ...]
    params_schema: pa.Schema
    result_schema: pa.Schema
    result_codec: Codec | None
    result_build: ArrayBuilder | None
    header_type: type | None
    is_exchange: bool | None
    doc: str
    signature: inspect.Signature


@dataclasses.dataclass(slots=True)
class CallStatistics:
    input_batches: int = 0
    output_batches: int = 0
    input_rows: int = 0
    output_rows: int = 0
    input_bytes: int = 0
    output_bytes: int = 0


@dataclasses.dataclass(slots=True)
class CallRecord:
    server_id: str
    protocol: str
    protocol_hash: str
    method: str
    method_type: str
    request_id: str
    stats: CallStatistics = dataclasses.field(default_factory=CallStatistics)
    started: float = dataclasses.field(default_factory=time.perf_counter)
    principal: str = ""
    auth_domain: str = ""
    authenticated: bool = False
    remote_addr: str = ""
    stream_id: str = ""
    cancelled: bool = False
    request_data: str | None = None
    logged: bool = True
    scopes: list[CallScope] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class SegmentOffer:
    max_size: int = DEFAULT_SHM_MAX_SIZE
    refused: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    shared_segment: ShmSegment | None = None
    peer_uid: int | None = None
    segment_offer: SegmentOffer | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AuthContext:
    domain: str | None = None
    authenticated: bool = False
    principal: str | None = None
    claims: Mapping[str, object] = dataclasses.field(default_factory=lambda: MappingProxyType({}))


@dataclasses.dataclass(eq=False)
class Hosted:
    protocol: type
    implementation: object
    name: str
    version: str | None
    doc: str
    handlers: dict[str, Handler] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class AnnotatedBatch:
    batch: pa.RecordBatch
    custom_metadata: pa.KeyValueMetadata | Mapping[bytes, bytes] | None = None


@dataclasses.dataclass(slots=True)
class Stream(Generic[S, H]):
    output_schema: pa.Schema
    state: S
    input_schema: pa.Schema = EMPTY_SCHEMA
    header: H | None = None


@dataclasses.dataclass(slots=True)
class CallStart:
    replies: list[Reply]
    stream: ServerStream | None = None
    status: int = 200
    drain_input: bool = False


@dataclasses.dataclass(slots=True)
class Turn:
    logs: list[Batch]
    data: Batch | None = None
    error: Exception | None = None
    error_batch: Batch | None = None
    finished: bool = False
    cancelled: bool = False
