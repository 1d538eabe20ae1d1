"""Stream states of the vector index: bulk upsert (exchange), query and export (producers).

Each state holds only Arrow-mappable fields, so it can travel in an HTTP
stream token; it finds its service through ``server.lookup_service``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vgi_rpc import AnnotatedBatch, CallContext, ExchangeState, OutputCollector, ProducerState
from vgi_rpc.services.vectorindex import _results
from vgi_rpc.services.vectorindex._batches import leading_that_fit, queries_per_answer


@dataclass
class UpsertState(ExchangeState):
    """Bulk upsert: each input batch is logged, applied and acknowledged with its offset."""

    service: str
    namespace: str

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        """Upsert one batch; emit its offset and row count."""
        from vgi_rpc.services.vectorindex.server import lookup_service

        offset = lookup_service(self.service).upsert_batch(self.namespace, input.batch)
        out.emit(
            pa.RecordBatch.from_pydict(
                {"offset": [offset], "count": [input.batch.num_rows]}, schema=_results.UPSERT_ACK
            )
        )


@dataclass
class QueryState(ProducerState):
    """Many-query search: one output batch per ``per_batch`` queries."""

    service: str
    namespace: str
    vectors: pa.RecordBatch
    top_k: int
    filter: str | None
    include_data: bool
    include_metadata: bool
    per_batch: int
    done: int = 0

    @property
    def _include(self) -> tuple[bool, bool]:
        return self.include_data, self.include_metadata

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """Answer the next slice of queries (at most ``per_batch``, and what one answer holds)."""
        from vgi_rpc.services.vectorindex.server import lookup_service

        if self.done >= self.vectors.num_rows:
            out.finish()
            return
        service = lookup_service(self.service)
        schema = out.output_schema
        meta_type = schema.field("metadata").type if "metadata" in schema.names else None
        namespace = service.namespace(self.namespace)
        with namespace.reading() as engine:  # as many queries as one answer holds
            hits, size = min(self.top_k, engine.count), engine.hit_bytes(*self._include)
        chunk = self.vectors.slice(self.done, min(self.per_batch, queries_per_answer(hits, size)))
        with service.counting("query_stream.batch", received=len(chunk)):
            batch, answered = service.run_query(
                namespace,
                chunk,
                self.top_k,
                self.filter,
                self._include,
                first_query=self.done,
                meta_type=meta_type,
                cut=True,
            )
        self.done += answered
        out.emit(batch)


@dataclass
class ExportState(ProducerState):
    """Every live row in id order, ``batch_size`` rows per output batch (fewer past 512 MiB)."""

    service: str
    namespace: str
    batch_size: int
    after: str | None = None

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """Emit the next rows after ``after``, or finish."""
        import bisect

        from vgi_rpc.services.vectorindex.server import lookup_service

        ns = lookup_service(self.service).namespace(self.namespace)
        meta_type = out.output_schema.field("metadata").type
        with ns.reading() as engine:
            ids = engine.sorted_ids()
            start = 0 if self.after is None else bisect.bisect_right(ids, self.after)
            rows = min(self.batch_size, queries_per_answer(1, engine.hit_bytes(True, True)))
            page = ids[start : start + rows]
            if not page:
                out.finish()
                return
            positions = np.asarray([engine.position[i] for i in page], np.int64)
            fit = max(1, leading_that_fit(engine.row_bytes(positions, True, True)))
            page = page[:fit]  # rows larger than the mean: fewer of them (one always fits)
            batch = _results.rows_batch(engine, positions[:fit].tolist(), meta_type)
        self.after = page[-1]
        out.emit(batch)
