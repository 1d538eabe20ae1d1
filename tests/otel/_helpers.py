"""OpenTelemetry SDK plumbing for the instrumentation tests: in-memory providers, plain dicts."""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vgi_rpc.otel import OtelConfig


@dataclasses.dataclass
class Telemetry:
    """A tracer provider and a meter provider whose output stays in memory."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    @classmethod
    def create(cls) -> Telemetry:
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        metrics = InMemoryMetricReader()
        return cls(spans, metrics, tracer_provider, MeterProvider(metric_readers=[metrics]))

    @property
    def config(self) -> OtelConfig:
        return OtelConfig(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def span_dicts(self) -> list[dict[str, Any]]:
        return [span_dict(span) for span in self.spans.get_finished_spans()]

    def metric_points(self) -> list[dict[str, Any]]:
        return metric_points(self.metrics)


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as plain data (what the subprocess worker writes as JSON)."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
    }


def metric_points(reader: InMemoryMetricReader) -> list[dict[str, Any]]:
    """Every data point the reader collected: metric name, unit, attributes and value."""
    data = reader.get_metrics_data()
    points: list[dict[str, Any]] = []
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    entry: dict[str, Any] = {
                        "name": metric.name,
                        "unit": metric.unit,
                        "attributes": dict(point.attributes or {}),
                    }
                    if hasattr(point, "value"):
                        entry["value"] = point.value
                    else:
                        entry["count"] = point.count
                        entry["sum"] = point.sum
                    points.append(entry)
    return points
