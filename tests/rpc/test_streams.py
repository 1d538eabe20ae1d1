"""Producer and exchange streams over every transport."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from tests._services import ROWS, CountHeader, Service
from tests.conftest import RpcFactory
from vgi_rpc import AnnotatedBatch, Message, ProtocolError, RpcError

FLOATS = pa.schema([("value", pa.float64())])


def _floats(*values: float | None) -> AnnotatedBatch:
    return AnnotatedBatch.from_pydict({"value": list(values)}, schema=FLOATS)


def test_producer_yields_every_batch_then_stops(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        assert [b.batch.to_pydict()["value"] for b in svc.countdown(n=3)] == [[3], [2], [1]]
        assert list(svc.countdown(n=0)) == []
        assert svc.add(a=1.0, b=2.0) == 3.0


def test_early_exit_from_a_for_loop_cancels_and_keeps_the_connection(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        for batch in svc.countdown(n=1000):
            assert batch.batch.num_rows == 1
            break
        assert svc.greet(name="after") == "hello after!"
        seen = [b.batch.to_pydict()["value"][0] for b in svc.countdown(n=2)]
        assert seen == [2, 1]


def test_header_arrives_before_data_with_init_logs(rpc: RpcFactory) -> None:
    logs: list[Message] = []
    with rpc(Service, on_log=logs.append) as svc:
        session = svc.counted(n=2)
        assert session.header == CountHeader(total=2)
        assert [m.message for m in logs] == ["opening"]
        assert len(list(session)) == 2


def test_exchange_keeps_state_between_turns(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        with svc.running_sum() as session:
            assert session.exchange(_floats(1.0, 2.0)).batch.to_pydict() == {"total": [3.0]}
            assert session.exchange(_floats(10.0)).batch.to_pydict() == {"total": [13.0]}
            assert session.exchange(_floats(None)).batch.to_pydict() == {"total": [13.0]}
        assert svc.noop() is None


def test_exchange_input_is_cast_to_the_declared_schema(rpc: RpcFactory) -> None:
    ints = AnnotatedBatch.from_pydict({"value": [1, 2]}, schema=pa.schema([("value", pa.int32())]))
    with rpc(Service) as svc, svc.running_sum() as session:
        assert session.exchange(ints).batch.to_pydict() == {"total": [3.0]}


def test_exchange_input_with_a_wrong_schema_is_refused_clearly(rpc: RpcFactory) -> None:
    wrong = AnnotatedBatch.from_pydict(
        {"amount": [1.0]}, schema=pa.schema([("amount", pa.float64())])
    )
    with rpc(Service) as svc:
        with svc.running_sum() as session, pytest.raises(RpcError) as info:
            session.exchange(wrong)
        assert info.value.error_type == "TypeError"
        assert (
            "do not match the declared input schema columns ['value']" in info.value.error_message
        )
        assert svc.add(a=1.0, b=1.0) == 2.0


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([], id="zero-rows"),
        pytest.param(
            [{"label": None, "at": None, "price": None, "nested": None, "maybe": None}] * 3,
            id="all-null",
        ),
        pytest.param(
            [
                {
                    "label": "a",
                    "at": dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC),
                    "price": Decimal("9.99"),
                    "nested": {"x": 1, "tags": ["p", "q"]},
                    "maybe": 5,
                }
            ],
            id="typed-values",
        ),
    ],
)
def test_exchange_round_trips_typed_inputs_built_from_the_schema(
    rpc: RpcFactory, rows: list[dict[str, object]]
) -> None:
    batch = pa.RecordBatch.from_pylist(rows, schema=ROWS)
    with rpc(Service) as svc, svc.echo_rows() as session:
        out = session.exchange(AnnotatedBatch(batch))
    assert out.batch.schema.equals(ROWS)
    assert out.batch.to_pylist() == batch.to_pylist()


def test_error_mid_stream_raises_and_keeps_the_connection(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        stream = iter(svc.fail_stream(after=2))
        assert next(stream).batch.to_pydict() == {"value": [7]}
        assert next(stream).batch.to_pydict() == {"value": [6]}
        with pytest.raises(RpcError) as info:
            next(stream)
        assert info.value.error_type == "ValueError"
        assert svc.noop() is None


def test_error_at_init_raises_and_keeps_the_connection(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        with pytest.raises(RpcError) as info:
            list(svc.fail_init())
        assert info.value.error_type == "LookupError"
        assert svc.greet(name="x") == "hello x!"


def test_a_second_call_while_a_stream_is_open_is_refused_locally(
    rpc: RpcFactory, request: pytest.FixtureRequest
) -> None:
    with rpc(Service) as svc:
        with svc.running_sum() as session:
            if request.node.callspec.params["rpc"] == "http":
                # HTTP streams hold no connection: other calls interleave freely.
                assert svc.noop() is None
            else:
                with pytest.raises(ProtocolError, match="while a stream is open"):
                    svc.noop()
            assert session.exchange(_floats(1.0)).batch.num_rows == 1
        assert svc.noop() is None


def test_exchange_after_cancel_fails_locally(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        session = svc.running_sum()
        session.exchange(_floats(1.0))
        session.cancel()
        session.cancel()  # idempotent
        with pytest.raises(ProtocolError, match="closed"):
            session.exchange(_floats(1.0))
        assert svc.noop() is None


@pytest.mark.slow
def test_log_storm_of_ten_thousand_logs_in_one_call(rpc: RpcFactory) -> None:
    logs: list[Message] = []
    with rpc(Service, on_log=logs.append) as svc:
        assert svc.logs(count=10_000) == 10_000
        batches = list(svc.chatty(batches=10, logs_per_batch=1000))
    assert len(batches) == 10
    assert len(logs) == 20_000


@pytest.mark.slow
def test_producer_of_ten_thousand_batches(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        total = sum(b.batch.num_rows for b in svc.countdown(n=10_000))
    assert total == 10_000


def test_stream_with_one_argument_defaults_its_header_to_none() -> None:
    # 3.13's TypeVar default; before 3.13 Stream fills it itself (no typing_extensions at run time)
    from typing import Any, get_args, get_origin

    from vgi_rpc import ExchangeState, ProducerState, Stream
    from vgi_rpc.rpc._streams import S

    generic: Any = Stream  # run-time subscription, as annotations are evaluated
    assert get_args(Stream[ProducerState]) == (ProducerState, None)
    assert get_origin(Stream[ProducerState]) is Stream
    assert get_args(Stream[ProducerState, int]) == (ProducerState, int)
    assert generic[S].__parameters__ == (S,)
    assert get_args(generic[S][ExchangeState]) == (ExchangeState, None)
