"""Stream vocabulary shared by servers and clients.

``Stream`` (what a streaming method returns), the state classes an
implementation subclasses, ``OutputCollector`` (what a state writes into)
and ``AnnotatedBatch``. No I/O: the dispatcher moves the bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeAlias

import pyarrow as pa

from vgi_rpc._logs import Level
from vgi_rpc._record import record

# H defaults to None (PEP 696: 3.13's TypeVar). Before 3.13 type checkers read
# typing_extensions' TypeVar, while at run time Stream fills the default itself:
# typing_extensions imports inspect, ast, dis and tokenize (about 10 ms of a worker's start-up).
if sys.version_info >= (3, 13):
    from typing import TypeVar
elif TYPE_CHECKING:
    from typing_extensions import TypeVar
else:
    from typing import TypeVar

if TYPE_CHECKING:
    from vgi_rpc.rpc._context import CallContext

EMPTY_SCHEMA = pa.schema([])
ArrowArray: TypeAlias = "pa.Array[Any]"  # an Arrow array of any element type


@record()
class AnnotatedBatch:
    """A record batch plus its per-batch custom metadata."""

    __slots__ = ("batch", "custom_metadata")

    batch: pa.RecordBatch
    custom_metadata: pa.KeyValueMetadata | Mapping[bytes, bytes] | None

    def __init__(
        self,
        batch: pa.RecordBatch,
        custom_metadata: pa.KeyValueMetadata | Mapping[bytes, bytes] | None = None,
    ) -> None:
        self.batch = batch
        self.custom_metadata = custom_metadata

    @classmethod
    def from_pydict(
        cls,
        data: Mapping[str, object],
        schema: pa.Schema | None = None,
        custom_metadata: Mapping[bytes, bytes] | None = None,
    ) -> AnnotatedBatch:
        """Build from column lists or arrays; pass ``schema`` to fix the Arrow types."""
        return cls(_batch_from_columns(data, schema), custom_metadata)

    def metadata_dict(self) -> dict[bytes, bytes] | None:
        """The custom metadata as a plain ``bytes -> bytes`` dict."""
        if self.custom_metadata is None:
            return None
        return {_as_bytes(key): _as_bytes(value) for key, value in self.custom_metadata.items()}


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _batch_from_columns(data: Mapping[str, object], schema: pa.Schema | None) -> pa.RecordBatch:
    columns = dict(data)
    return pa.RecordBatch.from_pydict(columns, schema=schema)  # type: ignore[arg-type]  # pyarrow validates the column values


class StreamState:
    """Base of the per-stream state an implementation keeps between turns."""

    def on_cancel(self, ctx: CallContext) -> None:
        """Called once when the client cancels the stream; failures are ignored."""


class ProducerState(StreamState):
    """State of a producer stream: one ``produce`` call per client tick."""

    __vgi_stream_kind__: ClassVar[str] = "producer"

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """Emit the next batch with ``out.emit*`` or end the stream with ``out.finish()``."""
        raise NotImplementedError


class ExchangeState(StreamState):
    """State of an exchange stream: one ``exchange`` call per client input batch."""

    __vgi_stream_kind__: ClassVar[str] = "exchange"

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        """Answer ``input`` with exactly one ``out.emit*`` call."""
        raise NotImplementedError


S = TypeVar("S", bound=StreamState, covariant=True)
if sys.version_info >= (3, 13) or TYPE_CHECKING:
    H = TypeVar("H", default=None, covariant=True)
else:
    H = TypeVar("H", covariant=True)  # the default: Stream.__class_getitem__


@record()
class Stream(Generic[S, H]):
    """What a streaming method returns: its schemas, its state and an optional header.

    Annotate the Protocol method ``-> Stream[StreamState]`` (or
    ``-> Stream[StreamState, MyHeader]`` with a header dataclass).
    """

    __vgi_stream__: ClassVar[bool] = True
    __slots__ = ("header", "input_schema", "output_schema", "state")

    if sys.version_info < (3, 13) and not TYPE_CHECKING:

        def __class_getitem__(cls, params):
            # ``Stream[S]`` is ``Stream[S, None]``: H's default, as typing_extensions gives it
            if not isinstance(params, tuple):
                params = (params,)
            if len(params) != 1:
                return super().__class_getitem__(params)
            alias = super().__class_getitem__((*params, type(None)))
            return alias.copy_with((*alias.__args__[:1], None))

    output_schema: pa.Schema
    state: S
    input_schema: pa.Schema
    header: H | None

    def __init__(
        self,
        output_schema: pa.Schema,
        state: S,
        input_schema: pa.Schema = EMPTY_SCHEMA,
        header: H | None = None,
    ) -> None:
        self.output_schema = output_schema
        self.state = state
        self.input_schema = input_schema
        self.header = header

    if TYPE_CHECKING:
        # A client proxy hands back a StreamSession where the Protocol says Stream;
        # these declarations let type checkers see the session's interface there.
        def __iter__(self) -> Iterator[AnnotatedBatch]: ...
        def __enter__(self) -> Self: ...
        def __exit__(self, *exc_info: object) -> None: ...
        def exchange(self, input: AnnotatedBatch | pa.RecordBatch) -> AnnotatedBatch: ...
        def tick(self) -> AnnotatedBatch: ...
        def cancel(self) -> None: ...
        def close(self) -> None: ...


class OutputCollector:
    """Collects what one stream turn sends: log messages, then one data batch."""

    __slots__ = ("_annotated", "_emitted", "_finished", "_logs", "_metadata", "output_schema")

    def __init__(self, output_schema: pa.Schema) -> None:
        self.output_schema = output_schema
        self._logs: list[tuple[Level, str, dict[str, object] | None]] = []
        self._emitted: pa.RecordBatch | None = None
        self._metadata: Mapping[bytes, bytes] | None = None
        self._annotated: AnnotatedBatch | None = None  # built when first asked for
        self._finished = False

    def emit(self, batch: pa.RecordBatch, metadata: Mapping[bytes, bytes] | None = None) -> None:
        """Emit this turn's data batch; its schema must equal the stream's output schema.

        Raises:
            ValueError: A second batch in one turn, or a batch after ``finish()``.
            TypeError: The batch's schema differs from the output schema.
        """
        if self._emitted is not None:
            raise ValueError("a stream turn emits exactly one batch; emit() was called twice")
        if self._finished:
            raise ValueError("emit() after finish()")
        if not batch.schema.equals(self.output_schema):
            try:
                batch = batch.cast(self.output_schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise TypeError(
                    f"emitted batch schema {batch.schema} does not match the stream's "
                    f"output schema {self.output_schema}: {exc}"
                ) from exc
        self._emitted = batch
        self._metadata = metadata

    def emit_pydict(
        self, data: Mapping[str, object], metadata: Mapping[bytes, bytes] | None = None
    ) -> None:
        """Emit a batch built from column lists, typed by the output schema."""
        self.emit(_batch_from_columns(data, self.output_schema), metadata)

    def emit_arrays(
        self, arrays: Sequence[ArrowArray], metadata: Mapping[bytes, bytes] | None = None
    ) -> None:
        """Emit a batch from arrays in output-schema column order."""
        self.emit(pa.RecordBatch.from_arrays(list(arrays), schema=self.output_schema), metadata)

    def client_log(self, level: Level, message: str, **extra: object) -> None:
        """Send a log message ahead of this turn's data batch."""
        if level is Level.EXCEPTION:
            raise ValueError("Level.EXCEPTION is reserved for errors; raise an exception instead")
        self._logs.append((level, message, extra or None))

    def log_sink(self, level: Level, message: str, extra: dict[str, object] | None) -> None:
        """``CallContext`` log sink: logs from ``ctx.client_log`` join this turn's logs."""
        self._logs.append((level, message, extra))

    def finish(self) -> None:
        """End a producer stream; nothing may be emitted afterwards in this turn."""
        if self._emitted is not None:
            raise ValueError("finish() after emit() in the same turn; finish on the next turn")
        self._finished = True

    def plain(self) -> pa.RecordBatch | None:
        """The emitted batch when it is all this turn sends (no logs, no metadata, not finished)."""
        emitted = self._emitted
        if emitted is None or self._logs or self._finished or self._metadata:
            return None
        return emitted

    @property
    def finished(self) -> bool:
        """Whether ``finish()`` was called."""
        return self._finished

    @property
    def batch(self) -> AnnotatedBatch | None:
        """The data batch emitted this turn, if any."""
        if self._annotated is None and self._emitted is not None:
            self._annotated = AnnotatedBatch(self._emitted, self._metadata)
        return self._annotated

    @property
    def logs(self) -> list[tuple[Level, str, dict[str, object] | None]]:
        """The log messages of this turn, in order."""
        return self._logs


__all__ = [
    "EMPTY_SCHEMA",
    "AnnotatedBatch",
    "ExchangeState",
    "OutputCollector",
    "ProducerState",
    "Stream",
    "StreamState",
]
