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


def _parent(metadata: Metadata) -> Context:
    """The caller's context from a request's ``traceparent`` (the caller checks it is there)."""
    carrier = {
        name: metadata[key].decode("latin-1") for key, name in _TRACE_KEYS if key in metadata
    }
    return _PROPAGATOR.extract(carrier)


class _Method:
    """What every call of one method shares: span attributes, span name, metric attributes, counts."""

    __slots__ = ("counts", "metric_error", "metric_ok", "name", "span_attributes")

    def __init__(self, call: CallRecord, custom: Mapping[str, str]) -> None:
        self.name = call.method
        base = {
            "rpc.system": "vgi_rpc",
            "rpc.service": call.protocol,
            "rpc.method": call.method,
            "rpc.vgi_rpc.method_type": call.method_type,
        }
        self.span_attributes: dict[str, str | bool] = {
            **base,
            "rpc.vgi_rpc.server_id": call.server_id,
            **custom,
        }
        self.metric_ok = {**base, "status": "ok", **custom}
        self.metric_error = {**base, "status": "error", **custom}
        self.counts = [0, 0]  # ok, error: summed here, observed at collection


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
        self.metrics = config.enable_metrics
        meter = (config.meter_provider or get_meter_provider()).get_meter(_SCOPE, __version__)
        # The request counter is summed here and observed at collection: an integer
        # increment per call instead of a pass through the SDK's aggregation (same data).
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
        self._methods: dict[tuple[str, str, str], _Method] = {}

    def _method(self, call: CallRecord) -> _Method:
        key = (call.protocol, call.method, call.method_type)
        method = self._methods.get(key)
        if method is None:
            with self._lock:
                method = self._methods.setdefault(key, _Method(call, self.config.custom_attributes))
        return method

    def _observe_requests(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            counts = [(m, m.counts[0], m.counts[1]) for m in self._methods.values()]
        observations = []
        for method, ok, error in counts:
            if ok:
                observations.append(Observation(ok, method.metric_ok))
            if error:
                observations.append(Observation(error, method.metric_error))
        return observations

    def start(
        self, call: CallRecord, metadata: Metadata | None, auth: AuthContext | None
    ) -> _Scope | None:
        """Open the call's span (child of the request's trace context) and make it current."""
        tracer = self.tracer
        if tracer is None:
            return _Scope(self, self._method(call), None, None) if self.metrics else None
        method = self._method(call)
        attributes = method.span_attributes
        if auth is not None and (auth.principal or auth.authenticated):
            attributes = self._with_auth(attributes, auth)
        parent = (
            _parent(metadata) if metadata is not None and k.TRACEPARENT_KEY in metadata else None
        )
        span = tracer.start_span(
            method.name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        # A span the sampler dropped is still current (children inherit the decision) but
        # gets no attributes at the end.
        return _Scope(self, method, span if span.is_recording() else None, token)

    def _with_auth(
        self, attributes: dict[str, str | bool], auth: AuthContext
    ) -> dict[str, str | bool]:
        attributes = {**attributes, "rpc.vgi_rpc.auth.authenticated": auth.authenticated}
        if auth.principal:
            attributes["rpc.vgi_rpc.auth.principal"] = auth.principal
        if auth.domain:
            attributes["rpc.vgi_rpc.auth.domain"] = auth.domain
        for claim, name in self.config.claim_attributes.items():
            value = auth.claims.get(claim)
            if value is not None:
                attributes[name] = value if isinstance(value, str | bool) else str(value)
        return attributes


_OK = Status(StatusCode.OK)


class _Scope:
    """One call's span, the context token that made it current, and where that happened."""

    __slots__ = ("method", "observer", "span", "thread", "token")

    def __init__(
        self,
        observer: OtelObserver,
        method: _Method,
        span: trace.Span | None,
        token: Token[Context] | None,
    ) -> None:
        self.observer = observer
        self.method = method
        self.span = span
        self.token = token
        self.thread = threading.get_ident() if token is not None else 0

    def finish(self, call: CallRecord, error: BaseException | None, duration: float) -> None:
        """Put the statistics and outcome on the span, end it, and record the metrics."""
        observer = self.observer
        span = self.span
        token = self.token
        try:
            if span is not None:
                stats = call.stats
                attributes: dict[str, str | int | bool] = {
                    "rpc.vgi_rpc.request_id": call.request_id,
                    "rpc.vgi_rpc.input_batches": stats.input_batches,
                    "rpc.vgi_rpc.output_batches": stats.output_batches,
                    "rpc.vgi_rpc.input_rows": stats.input_rows,
                    "rpc.vgi_rpc.output_rows": stats.output_rows,
                    "rpc.vgi_rpc.input_bytes": stats.input_bytes,
                    "rpc.vgi_rpc.output_bytes": stats.output_bytes,
                }
                if call.stream_id:
                    attributes["rpc.vgi_rpc.stream_id"] = call.stream_id
                if call.cancelled:
                    attributes["rpc.vgi_rpc.cancelled"] = True
                if error is None:
                    span.set_attributes(attributes)
                    span.set_status(_OK)
                else:
                    attributes["rpc.vgi_rpc.error_type"] = type(error).__name__
                    span.set_attributes(attributes)
                    if observer.config.record_exceptions:
                        span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.end()
        finally:
            # A call ends on the thread that started it; anywhere else the token is not ours.
            if token is not None and self.thread == threading.get_ident():
                otel_context.detach(token)
        if observer.metrics:
            method = self.method
            if error is None:
                with observer._lock:
                    method.counts[0] += 1
                observer.duration.record(duration, method.metric_ok)
            else:
                with observer._lock:
                    method.counts[1] += 1
                observer.duration.record(duration, method.metric_error)


__all__ = ["OtelConfig", "OtelObserver", "instrument_server", "trace_context"]
