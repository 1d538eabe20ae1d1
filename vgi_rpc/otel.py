"""OpenTelemetry tracing and metrics for ``RpcServer`` (the ``otel`` extra, ``opentelemetry-api``).

::

    from vgi_rpc import RpcServer
    from vgi_rpc.otel import OtelConfig, instrument_server

    server = instrument_server(RpcServer(MyService, MyServiceImpl()))  # global providers

Every call then gets a SERVER span named after the method, child of the
caller's span when the request carries W3C trace context (clients send it
whenever OpenTelemetry is loaded and a span is active), with
``rpc.system="vgi_rpc"``, ``rpc.service`` (the Protocol's name),
``rpc.method``, ``rpc.vgi_rpc.method_type`` and the call statistics
(``rpc.vgi_rpc.input_batches`` ... ``rpc.vgi_rpc.output_bytes``). A failed
call adds ``rpc.vgi_rpc.error_type``, an ``exception`` event and an error
status. Metrics: the counter ``rpc.server.requests`` (attributes
``rpc.method``, ``status`` = ``ok`` | ``error`` ...) and the histogram
``rpc.server.duration`` (seconds).

A stream gets one span for the whole call on byte streams (pipe,
subprocess, sockets). Over HTTP a stream is several requests, each with its
own span (each the child of the caller's span at that request);
``rpc.vgi_rpc.stream_id`` is the same on all of them.

This is the only module of ``vgi_rpc`` that imports ``opentelemetry``;
``import vgi_rpc`` never does, and a server that is not instrumented does no
tracing work at all.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from contextvars import Token
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider, get_tracer_provider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc._ipc import Metadata
    from vgi_rpc.rpc import AuthContext, CallRecord, RpcServer

_SCOPE = "vgi_rpc"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_KEYS = ((k.TRACEPARENT_KEY, "traceparent"), (k.TRACESTATE_KEY, "tracestate"))


@dataclasses.dataclass(frozen=True)
class OtelConfig:
    """How ``instrument_server`` reports calls.

    Attributes:
        tracer_provider: The ``TracerProvider`` to use (the global one when ``None``).
        meter_provider: The ``MeterProvider`` to use (the global one when ``None``).
        enable_tracing: Create a span per call.
        enable_metrics: Record ``rpc.server.requests`` and ``rpc.server.duration``.
        record_exceptions: Add an ``exception`` event to the span of a failed call.
        custom_attributes: Extra attributes on every span and metric point.
        claim_attributes: Auth claims to put on spans (never on metrics), as
            ``{claim key: attribute name}``.
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    enable_tracing: bool = True
    enable_metrics: bool = True
    record_exceptions: bool = True
    custom_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    claim_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)


def instrument_server(server: RpcServer, config: OtelConfig | None = None) -> RpcServer:
    """Trace and measure every call ``server`` runs, on every transport; returns ``server``.

    Call it before serving. Also importable as ``vgi_rpc.instrument_server``.
    """
    server.add_observer(OtelObserver(config or OtelConfig()))
    return server


def trace_context() -> dict[bytes, bytes]:
    """The active span's W3C trace context as request metadata (empty without one)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return {key.encode(): value.encode() for key, value in carrier.items()}


def _parent(metadata: Metadata | None) -> Context | None:
    """The caller's context from a request's ``traceparent`` (``None``: the current context)."""
    if not metadata or k.TRACEPARENT_KEY not in metadata:
        return None
    carrier = {
        name: metadata[key].decode("latin-1") for key, name in _TRACE_KEYS if key in metadata
    }
    return _PROPAGATOR.extract(carrier)


class OtelObserver:
    """The call observer ``instrument_server`` registers: one span and two metric points a call."""

    def __init__(self, config: OtelConfig) -> None:
        self.config = config
        from vgi_rpc import __version__

        self.tracer = (
            (config.tracer_provider or get_tracer_provider()).get_tracer(_SCOPE, __version__)
            if config.enable_tracing
            else None
        )
        meter = (config.meter_provider or get_meter_provider()).get_meter(_SCOPE, __version__)
        # The request counter is summed here and observed at collection: a dict increment
        # per call instead of a pass through the SDK's aggregation (same data exported).
        self._counts: dict[tuple[str, str, str, str], int] = {}
        self._lock = threading.Lock()
        self.requests = meter.create_observable_counter(
            "rpc.server.requests",
            callbacks=[self._observe_requests],
            unit="{request}",
            description="RPC calls handled",
        )
        self.duration = meter.create_histogram(
            "rpc.server.duration", unit="s", description="Duration of RPC calls"
        )
        self._span_attributes: dict[tuple[str, str, str], dict[str, str | bool]] = {}
        self._metric_attributes: dict[tuple[str, str, str, str], dict[str, str]] = {}

    def count(self, call: CallRecord, status: str, duration: float) -> None:
        """Record one finished call in ``rpc.server.requests`` and ``rpc.server.duration``."""
        key = (call.protocol, call.method, call.method_type, status)
        attributes = self._metric_attributes.get(key)
        if attributes is None:
            attributes = {
                "rpc.system": "vgi_rpc",
                "rpc.service": call.protocol,
                "rpc.method": call.method,
                "rpc.vgi_rpc.method_type": call.method_type,
                "status": status,
                **self.config.custom_attributes,
            }
            self._metric_attributes[key] = attributes
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        self.duration.record(duration, attributes)

    def _observe_requests(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        return [Observation(n, self._metric_attributes[key]) for key, n in counts]

    def start(
        self, call: CallRecord, metadata: Metadata | None, auth: AuthContext | None
    ) -> _Scope:
        """Open the call's span (child of the request's trace context) and make it current."""
        if self.tracer is None:
            return _Scope(self, None, None)
        attributes = self._attributes_for(call)
        if auth is not None and (auth.principal or auth.authenticated):
            attributes = {**attributes, "rpc.vgi_rpc.auth.authenticated": auth.authenticated}
            if auth.principal:
                attributes["rpc.vgi_rpc.auth.principal"] = auth.principal
            if auth.domain:
                attributes["rpc.vgi_rpc.auth.domain"] = auth.domain
            for claim, name in self.config.claim_attributes.items():
                value = auth.claims.get(claim)
                if value is not None:
                    attributes[name] = value if isinstance(value, str | bool) else str(value)
        span = self.tracer.start_span(
            call.method, context=_parent(metadata), kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return _Scope(self, span, token)

    def _attributes_for(self, call: CallRecord) -> dict[str, str | bool]:
        key = (call.protocol, call.method, call.method_type)
        attributes = self._span_attributes.get(key)
        if attributes is None:
            attributes = {
                "rpc.system": "vgi_rpc",
                "rpc.service": call.protocol,
                "rpc.method": call.method,
                "rpc.vgi_rpc.method_type": call.method_type,
                "rpc.vgi_rpc.server_id": call.server_id,
                **self.config.custom_attributes,
            }
            self._span_attributes[key] = attributes
        return attributes


class _Scope:
    """One call's span, the context token that made it current, and where that happened."""

    __slots__ = ("observer", "span", "thread", "token")

    def __init__(
        self, observer: OtelObserver, span: trace.Span | None, token: Token[Context] | None
    ) -> None:
        self.observer = observer
        self.span = span
        self.token = token
        self.thread = threading.get_ident()

    def finish(self, call: CallRecord, error: BaseException | None, duration: float) -> None:
        """Put the statistics and outcome on the span, end it, and record the metrics."""
        observer = self.observer
        span = self.span
        if span is not None:
            stats = call.stats
            span.set_attributes(
                {
                    "rpc.vgi_rpc.request_id": call.request_id,
                    "rpc.vgi_rpc.input_batches": stats.input_batches,
                    "rpc.vgi_rpc.output_batches": stats.output_batches,
                    "rpc.vgi_rpc.input_rows": stats.input_rows,
                    "rpc.vgi_rpc.output_rows": stats.output_rows,
                    "rpc.vgi_rpc.input_bytes": stats.input_bytes,
                    "rpc.vgi_rpc.output_bytes": stats.output_bytes,
                }
            )
            if call.stream_id:
                span.set_attribute("rpc.vgi_rpc.stream_id", call.stream_id)
            if call.cancelled:
                span.set_attribute("rpc.vgi_rpc.cancelled", True)
            if error is not None:
                span.set_attribute("rpc.vgi_rpc.error_type", type(error).__name__)
                if observer.config.record_exceptions:
                    span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            else:
                span.set_status(Status(StatusCode.OK))
            span.end()
        # A call ends on the thread that started it; anywhere else the token is not ours to reset.
        if self.token is not None and self.thread == threading.get_ident():
            otel_context.detach(self.token)
        if observer.config.enable_metrics:
            observer.count(call, "error" if error is not None else "ok", duration)


__all__ = ["OtelConfig", "OtelObserver", "instrument_server", "trace_context"]
