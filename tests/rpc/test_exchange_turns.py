"""Every kind of answer a running exchange can get, mixed turn by turn over a pipe.

Small plain turns after the first take a short path on both sides; anything
else in the answer (logs, metadata, a large batch, an error, the end) must
come out exactly as it does on the general path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pytest

from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    IpcValidation,
    Level,
    Message,
    OutputCollector,
    RpcError,
    Stream,
    StreamState,
    serve_pipe,
)

X = pa.schema([pa.field("x", pa.float64())])
LARGE_ROWS = 20_000  # 160 KB: past the inline paths' 64 KiB


@dataclass
class Scripted(ExchangeState):
    """Answers by the input's value: 0 plain, 1 after a log, 2 with metadata, 3 large, 4 raises."""

    turns: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.turns += 1
        what = int(input.batch.column(0)[0].as_py())
        value = [float(self.turns)]
        if what == 1:
            out.client_log(Level.INFO, f"turn {self.turns}")
        if what == 2:
            out.emit_pydict({"x": value}, {b"turn": str(self.turns).encode()})
        elif what == 3:
            out.emit_pydict({"x": value * LARGE_ROWS})
        elif what == 4:
            raise ValueError(f"refused turn {self.turns}")
        else:
            out.emit_pydict({"x": value})


class Scripts(Protocol):
    def scripted(self) -> Stream[StreamState]: ...


class ScriptsImpl:
    def scripted(self) -> Stream[Scripted]:
        return Stream(output_schema=X, state=Scripted(), input_schema=X)


def _input(what: int) -> AnnotatedBatch:
    return AnnotatedBatch.from_pydict({"x": [float(what)]}, schema=X)


@pytest.mark.parametrize("validation", [IpcValidation.FULL, IpcValidation.NONE])
def test_mixed_answers_of_a_running_exchange(validation: IpcValidation) -> None:
    logs: list[Message] = []
    script = [0, 0, 1, 0, 2, 0, 3, 0, 1, 2, 0]
    with serve_pipe(Scripts, ScriptsImpl(), on_log=logs.append, ipc_validation=validation) as svc:
        with svc.scripted() as session:
            for turn, what in enumerate(script, 1):
                answer = session.exchange(_input(what))
                rows = LARGE_ROWS if what == 3 else 1
                assert answer.batch.to_pydict() == {"x": [float(turn)] * rows}
                assert answer.metadata_dict() == (
                    {b"turn": str(turn).encode()} if what == 2 else None
                )
            with pytest.raises(RpcError) as info:
                session.exchange(_input(4))
            assert info.value.error_type == "ValueError"
            assert "refused turn 12" in str(info.value)
            assert session.closed  # type: ignore[attr-defined]  # a StreamSession at run time
        assert [m.message for m in logs] == ["turn 3", "turn 9"]
        # the connection serves on: a new stream starts from its first turn
        with svc.scripted() as again:
            assert again.exchange(_input(0)).batch.to_pydict() == {"x": [1.0]}
            assert (
                again.exchange(pa.RecordBatch.from_pydict({"x": [0.0]}, schema=X)).batch.num_rows
                == 1
            )


def test_a_plain_turn_with_another_schema_is_still_refused() -> None:
    with serve_pipe(Scripts, ScriptsImpl()) as svc, svc.scripted() as session:
        assert session.exchange(_input(0)).batch.num_rows == 1
        assert session.exchange(_input(0)).batch.num_rows == 1
        other = pa.RecordBatch.from_pydict({"y": [1.0]})
        with pytest.raises(TypeError, match="same schema"):
            session.exchange(other)
