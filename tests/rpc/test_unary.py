"""Unary calls over every transport (the ``rpc`` fixture)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from tests._services import Color, Item, Order, Service
from tests.conftest import RpcFactory
from vgi_rpc import Level, Message, RpcError


def test_primitive_round_trips(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        assert svc.noop() is None
        assert svc.add(a=2.0, b=3.5) == 5.5
        assert svc.add(1, 2) == 3.0  # positional and int-for-float both work
        assert svc.echo_bytes(data=b"\x00\xff") == b"\x00\xff"
        assert svc.echo_color(color=Color.GREEN) is Color.GREEN
        assert svc.echo_optional(value=None) is None
        assert svc.echo_optional(value=-(2**63)) == -(2**63)
        assert svc.echo_map(mapping={"a": [1, 2], "b": []}) == {"a": [1, 2], "b": []}
        assert svc.echo_set(values=frozenset({"x", "y"})) == frozenset({"x", "y"})
        assert svc.echo_money(amount=Decimal("12.34")) == Decimal("12.34")


def test_dataclass_with_nested_list_and_enum(rpc: RpcFactory) -> None:
    order = Order(id=7, items=[Item("apple", 3, ["red"]), Item("pear", 0)], color=Color.RED)
    with rpc(Service) as svc:
        assert svc.echo_order(order=order) == order


def test_dates_default_to_microsecond_timestamps(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        text = svc.echo_when(when=dt.datetime(2024, 2, 29, 12, 30, 1, 5), day=dt.date(2024, 1, 2))
    assert text == "2024-02-29T12:30:01.000005 2024-01-02"


def test_defaults_are_merged_on_the_client(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        assert svc.greet(name="ann") == "hello ann!"
        assert svc.greet(name="bob", punctuation="?") == "hello bob?"


def test_wrong_argument_name_fails_before_sending(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        with pytest.raises(TypeError, match=r"greet\(\).*unexpected keyword argument 'nmae'"):
            svc.greet(nmae="x")
        with pytest.raises(TypeError, match=r"add\(\).*missing a required argument: 'b'"):
            svc.add(a=1.0)
        assert svc.calls() == 0  # neither call reached the server


def test_wrong_argument_type_fails_before_sending(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        with pytest.raises(TypeError, match=r"add\(\): argument 'a': expected float, got str"):
            svc.add(a="1", b=2.0)
        with pytest.raises(
            TypeError, match=r"greet\(\): argument 'name' is not Optional but got None"
        ):
            svc.greet(name=None)
        with pytest.raises(TypeError, match="expected int, got bool"):
            svc.echo_optional(value=True)
        with pytest.raises(
            TypeError, match=r"argument 'order': Order.items\[0\].qty: expected int, got str"
        ):
            svc.echo_order(order=Order(id=1, items=[Item("a", "many")], color=Color.RED))  # type: ignore[arg-type]
        assert svc.calls() == 0


def test_remote_error_carries_type_message_traceback_and_request_id(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        with pytest.raises(RpcError) as info:
            svc.fail(message="bad input")
        err = info.value
        assert err.error_type == "ValueError"
        assert err.error_message == "bad input"
        assert "raise ValueError(message)" in err.remote_traceback
        assert len(err.request_id) == 16
        assert err.error_kind is None
        # the connection stays usable
        assert svc.add(a=1.0, b=1.0) == 2.0


def test_remote_error_reports_its_cause(rpc: RpcFactory) -> None:
    with rpc(Service) as svc, pytest.raises(RpcError) as info:
        svc.fail_chained()
    assert info.value.error_type == "RuntimeError"
    assert "KeyError" in info.value.remote_traceback


def test_result_of_the_wrong_type_is_a_remote_type_error(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        with pytest.raises(RpcError) as info:
            svc.bad_result()
        assert info.value.error_type == "TypeError"
        assert "bad_result() result: expected int, got str" in info.value.error_message
        assert svc.noop() is None


def test_client_logs_arrive_in_order_before_the_result(rpc: RpcFactory) -> None:
    received: list[Message] = []
    with rpc(Service, on_log=received.append) as svc:
        assert svc.logs(count=3) == 3
    assert [m.message for m in received] == ["log 0", "log 1", "log 2"]
    assert all(m.level is Level.INFO for m in received)
    assert received[2].extra == {"index": 2}
    assert len(received[0].server_id) == 12


def test_call_context_has_service_logger_and_anonymous_auth(rpc: RpcFactory) -> None:
    with rpc(Service) as svc:
        assert svc.whoami() == "vgi_rpc.service.Service|False|whoami|16"


def test_require_authenticated_raises_permission_error_remotely(rpc: RpcFactory) -> None:
    with rpc(Service) as svc, pytest.raises(RpcError) as info:
        svc.secret()
    assert info.value.error_type == "PermissionError"


def test_service_logger_receives_server_side_logs(caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import TRANSPORTS

    with (
        caplog.at_level(logging.INFO, logger="vgi_rpc.service.Service"),
        TRANSPORTS["pipe"](Service) as svc,
    ):
        svc.logs(count=1)
    assert any(
        r.name == "vgi_rpc.service.Service" and "server-side log for 1" in r.getMessage()
        for r in caplog.records
    )


def test_large_payload_crosses_the_pipe_buffer_many_times(rpc: RpcFactory) -> None:
    payload = bytes(range(256)) * (32 * 1024 + 1)  # a bit over 8 MiB
    with rpc(Service) as svc:
        assert svc.echo_big(data=payload) == payload
        assert svc.echo_bytes(data=payload) == payload
