"""Mutated real requests of every kind into the pipe server: no crash, hang, escaped
exception, oversized reply or unbounded memory (issue 9, "Must show")."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import fuzz_ipc
import fuzz_mutate
import pyarrow as pa
import pytest
from fuzz_corpus import pipe_corpus, shm_fixture
from fuzz_pipe import fuzz_pipe

from tests.security._harness import SEED

INPUTS = 20_000


def test_corpus_holds_every_kind_of_request() -> None:
    with shm_fixture() as (segment, _):
        corpus = pipe_corpus(segment)
    kinds = collections.Counter(item.kind for item in corpus)
    assert kinds["session"] >= 50
    assert kinds["unary"] >= 10
    assert kinds["shm-static"] >= 3
    assert kinds["shm-named"] >= 3
    metadata = [meta for item in corpus for _, batches in item.streams or [] for _, meta in batches]
    methods = {m.get(fuzz_mutate.METHOD_KEY) for m in metadata}
    # unary with strings, bytes, lists, dicts and dataclasses; producer and exchange inits;
    # cancel; describe
    for name in (
        b"echo_string",
        b"echo_bytes",
        b"echo_list",
        b"echo_dict",
        b"inspect_point",
        b"produce_n",
        b"exchange_scale",
        b"cancellable_exchange",
        b"__describe__",
    ):
        assert name in methods, name
    assert any(fuzz_mutate.CANCEL_KEY in m for m in metadata)
    # exchange turns: input batches without a method name
    assert any(fuzz_mutate.METHOD_KEY not in m for m in metadata)
    pointers = [m for m in metadata if fuzz_mutate.SHM_OFFSET_KEY in m]
    assert pointers
    assert all(fuzz_mutate.SHM_LENGTH_KEY in m for m in pointers)
    for method in fuzz_mutate.SIZE_PARAM_METHODS:
        assert method.encode() not in methods


def test_structural_mutators_make_what_they_claim() -> None:
    batch = pa.RecordBatch.from_pydict({"value": ["abcd", "efgh"]})
    meta = {fuzz_mutate.METHOD_KEY: b"echo_list", fuzz_mutate.REQUEST_VERSION_KEY: b"1"}
    data = fuzz_ipc.encode_streams([(batch.schema, [(batch, meta)])])
    item = fuzz_mutate.Item("unary", "t", data)
    item.frames = fuzz_ipc.parse_frames(data)
    item.streams = fuzz_ipc.decode_streams(data)
    ctx = fuzz_mutate.Context([item], ["echo_list"], ["nothing"])
    assert [f.header_type for f in item.frames] == [1, 3]
    # offsets past the data: the batch still reads, but full validation refuses it
    refused = 0
    for seed in range(200):
        mutated = fuzz_mutate.buffer_contents(random.Random(seed), data, item, ctx)
        try:
            for _, batches in fuzz_ipc.decode_streams(mutated):
                for b, _ in batches:
                    b.validate(full=True)
        except (pa.ArrowException, ValueError):
            refused += 1
    assert refused > 50
    # a declared body length near 2^63
    huge = fuzz_mutate.body_length(random.Random(1), data, item, ctx)
    assert huge != data
    assert len(huge) == len(data)
    # metadata rewrites stay decodable and change the metadata
    changed = 0
    for seed in range(50):
        rewritten = fuzz_mutate.rewrite_metadata(random.Random(seed), data, item, ctx)
        streams = fuzz_ipc.decode_streams(rewritten)
        changed += streams[0][1][0][1] != meta
    assert changed > 30


@pytest.mark.slow
def test_pipe_fuzz(tmp_path: Path) -> None:
    summary = fuzz_pipe(INPUTS, SEED, save_dir=str(tmp_path))
    print(summary.report())
    assert summary.inputs == INPUTS
    assert summary.findings == [], summary.report()
    assert summary.peak_rss < 1 << 30
    assert summary.seconds < 60, f"{summary.rate:.0f} inputs/s is too slow for CI"
