"""The conformance scenarios; importing this package registers all of them."""

from __future__ import annotations

from conformance.scenarios import cancel, payload, streams, unary, wide
from conformance.scenarios._core import REGISTRY, CheckError, Ctx, Scenario, SkipError

_MODULES = (unary, wide, streams, cancel, payload)

# the order categories run and list in
CATEGORY_ORDER = (
    "scalar_echo",
    "void",
    "complex_types",
    "optional",
    "dataclass",
    "annotated",
    "wide_types",
    "multi_param",
    "errors",
    "error_recovery",
    "logging",
    "boundary_values",
    "large_payload",
    "producer_stream",
    "producer_header",
    "exchange_stream",
    "exchange_header",
    "cancel",
    "rich_header_producer",
    "rich_header_exchange",
    "dynamic_schema_producer",
    "protocol_version",
)

__all__ = [
    "CATEGORY_ORDER",
    "REGISTRY",
    "CheckError",
    "Ctx",
    "Scenario",
    "SkipError",
    "all_scenarios",
]


def all_scenarios() -> list[Scenario]:
    """Every registered scenario, grouped by category in ``CATEGORY_ORDER``."""
    rank = {category: i for i, category in enumerate(CATEGORY_ORDER)}
    return sorted(REGISTRY, key=lambda s: rank.get(s.category, len(rank)))
