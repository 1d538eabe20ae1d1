"""Call observers (what ``vgi_rpc.otel`` plugs into) and client-side trace propagation.

An observer registered with ``RpcServer.add_observer`` is told when each call
starts and how it ended (with its ``CallStatistics``). A server without
observers does no extra work: the call record exists only when the access
log or an observer wants it.

Client side, ``with_trace_context`` adds the caller's W3C trace context
(``traceparent`` / ``tracestate``) to request metadata. It costs one
``sys.modules`` lookup while OpenTelemetry has not been imported by the
application: without it there can be no active span to propagate.
"""

from __future__ import annotations

import sys

from vgi_rpc._ipc import Metadata
from vgi_rpc.rpc._accounting import CallObserver, CallScope

_OTEL_MODULE = "opentelemetry.trace"


def with_trace_context(metadata: Metadata) -> Metadata:
    """``metadata`` plus the active span's W3C trace context (the same dict when there is none)."""
    if _OTEL_MODULE not in sys.modules:
        return metadata
    from vgi_rpc.otel import trace_context

    context = trace_context()
    return {**metadata, **context} if context else metadata


__all__ = ["CallObserver", "CallScope", "with_trace_context"]
