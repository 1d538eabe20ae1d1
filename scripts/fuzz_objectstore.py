"""Fuzz the object store's check of put values with mutated value streams.

    python scripts/fuzz_objectstore.py --inputs N --seed S [--start I]

Every put (``put_small``, ``put_inline``, a sealed file, an uploaded one) and
every object loaded from the store goes through ``value_stream``, the
server's check. An object it accepts is then read by local clients without
another check (mapped from the server's memory), so whatever it accepts must
decode and read without going outside its buffers. Each input is a value's
stream (tables, strings, lists, structs, maps, unions, dictionaries, numpy
arrays, plain Python values) mutated by ``fuzz_mutate``; the script checks it,
and when it is accepted decodes it as a local reader does and reads every
value, and decodes it as a remote reader does (that must accept it too).

A finding is an exception other than the typed refusal, a disagreement
between the two readers, or a crash: the inputs run in a child process and a
child that dies is reported with its input's index and replaced. Inputs are
a function of (seed, index) only. Exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import decimal
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, cast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import pyarrow as pa
from fuzz_ipc import decode_streams, parse_frames
from fuzz_mutate import ODD_TYPES, Context, Item, _nested_type, mutate

from vgi_rpc.services.objectstore._codec import decode, encode
from vgi_rpc.services.objectstore._errors import InvalidRequest
from vgi_rpc.services.objectstore._validate import value_stream


def _values() -> list[tuple[str, object]]:
    """Values of every kind the store keeps, small enough to mutate quickly."""
    strings = pa.array(["alpha", None, "", "delta" * 3, "é"])
    dictionary = pa.array(["x", "y", "x", None, "z"]).dictionary_encode()
    nested = pa.array(
        [[{"a": [1, 2], "b": "s"}], None, [], [{"a": None, "b": None}, {"a": [3], "b": "t"}]],
        pa.list_(pa.struct([("a", pa.list_(pa.int32())), ("b", pa.string())])),
    )
    union = pa.UnionArray.from_dense(
        pa.array([0, 1, 0], pa.int8()),
        pa.array([0, 0, 1], pa.int32()),
        [pa.array([1, 2], pa.int64()), pa.array(["u"])],
    )
    sparse = pa.UnionArray.from_sparse(
        pa.array([1, 0, 1], pa.int8()),
        [pa.array([1, 2, 3], pa.int64()), pa.array(["a", "b", "c"])],
    )
    table = pa.table(
        {
            "s": strings,
            "i": pa.array([1, None, 3, 4, 5], pa.int64()),
            "d": dictionary,
            "m": pa.array(
                [[("k", 1)], None, [], [("a", 2), ("b", 3)], [("z", None)]],
                pa.map_(pa.string(), pa.int64()),
            ),
            "t": pa.array([datetime.datetime(2026, 1, 1)] * 5, pa.timestamp("us")),
            "dec": pa.array([decimal.Decimal("1.25")] * 5, pa.decimal128(10, 2)),
            "b": pa.array([True, False, None, True, False]),
        }
    )
    return [
        ("strings", strings),
        ("large_binary", pa.array([b"ab", b"", None, b"xyz"], pa.large_binary())),
        ("dictionary", dictionary),
        ("nested", nested),
        ("dense_union", union),
        ("sparse_union", sparse),
        ("fixed_size_list", pa.array([[1, 2], [3, 4], None], pa.list_(pa.int16(), 2))),
        (
            "run_end",
            pa.RunEndEncodedArray.from_arrays(pa.array([2, 5], pa.int32()), pa.array(["a", "b"])),
        ),
        ("string_view", pa.array(["short", "a string longer than twelve", None], pa.string_view())),
        (
            "list_view",
            cast(Any, pa.ListViewArray).from_arrays(
                pa.array([0, 1], pa.int32()),
                pa.array([1, 2], pa.int32()),
                cast(Any, pa.array([1, 2, 3])),
            ),
        ),
        ("table", table),
        ("chunked", pa.chunked_array([strings, strings.slice(1, 2)])),
        ("record_batch", table.to_batches()[0]),
        ("ndarray", np.arange(12, dtype=np.int32).reshape(3, 4)),
        ("fortran", np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))),
        ("python", {"a": [1, 2.5, "s", b"b", None, True], "b": ("t", {"c": [[]]})}),
        ("python_list", [1, "two", [3, [4, [5]]]]),
        ("null", pa.nulls(4)),
    ]


def _item(name: str, value: object) -> Item:
    data = encode(value).to_bytes()
    item = Item("value", name, data)
    item.frames = parse_frames(data)
    item.streams = decode_streams(data)
    return item


def _odd_table(rng: random.Random) -> Item:
    """A table of a very wide, very deep or odd schema (then mutated like the rest)."""
    roll = rng.random()
    types: list[Any]
    if roll < 0.3:
        types = [pa.int8()] * rng.choice((100, 1000, 5000))
    elif roll < 0.6:
        types = [_nested_type(rng, rng.choice((8, 16, 32, 48)))]
    else:
        types = [rng.choice(ODD_TYPES) for _ in range(3)]
    table = pa.table([pa.nulls(2, t) for t in types], names=[f"c{i}" for i in range(len(types))])
    try:
        return _item("odd_table", table)
    except pa.ArrowInvalid:  # deeper than pyarrow writes
        return _item("odd_table", pa.table({"c": pa.nulls(2, cast(Any, _nested_type(rng, 8)))}))


def _read_everything(value: object) -> None:
    """Touch every value, as a user of the object would."""
    if isinstance(value, (pa.Array, pa.ChunkedArray, pa.Table, pa.RecordBatch)):
        # No finding: a valid Arrow value Python cannot hold (a date past year 9999), or
        # a type pyarrow has no Python class for (KeyError: year-month intervals).
        with contextlib.suppress(OverflowError, ValueError, KeyError):
            value.to_pylist()
    elif isinstance(value, np.ndarray):
        value.tobytes()
    else:
        repr(value)


def _check(data: bytes, checked: bool = True) -> str:
    """What the store does with ``data``: ``refused`` / ``accepted``; raises on a finding.

    ``checked=False`` accepts without the server's check: the harness must then find crashes.
    """
    try:
        if checked:
            value_stream(pa.py_buffer(data))
    except InvalidRequest:
        return "refused"
    local = decode(pa.py_buffer(data), validate=False)  # a local get: no second check
    _read_everything(local)
    _read_everything(decode(pa.py_buffer(data), validate=True))  # a remote get
    return "accepted"


def child(seed: int, start: int, count: int, progress: str, checked: bool) -> int:
    """Run inputs ``start .. start+count-1``; write each index to ``progress`` before it."""
    items = [_item(name, value) for name, value in _values()]
    ctx = Context(items, [], [])
    findings = 0
    counts = {"refused": 0, "accepted": 0}
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT, 0o600)
    for index in range(start, start + count):
        os.pwrite(fd, f"{index:012d}".encode(), 0)
        rng = random.Random(f"{seed}:{index}")
        item = _odd_table(rng) if rng.random() < 0.02 else rng.choice(items)
        data, _, how = mutate(rng, item, ctx, odd_schemas=False)
        try:
            counts[_check(data, checked)] += 1
        except Exception:
            findings += 1
            last = traceback.format_exc().strip().splitlines()[-1]
            print(f"finding: exception at input {index} ({item.name}, {how}): {last}", flush=True)
    os.close(fd)
    print(f"refused {counts['refused']}, accepted {counts['accepted']}", flush=True)
    return findings


def main() -> None:
    """Run the inputs in child processes (replaced when one crashes); exit 1 on findings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first input index")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    parser.add_argument("--unchecked", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        found = child(args.seed, args.start, args.inputs, args.progress, not args.unchecked)
        sys.exit(1 if found else 0)

    begun = time.monotonic()
    findings = 0
    index, end = args.start, args.start + args.inputs
    with tempfile.TemporaryDirectory() as tmp:
        progress = os.path.join(tmp, "progress")
        while index < end:
            run = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--seed",
                    str(args.seed),
                    "--start",
                    str(index),
                    "--inputs",
                    str(end - index),
                    "--progress",
                    progress,
                    *(["--unchecked"] if args.unchecked else []),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            sys.stdout.write(run.stdout)
            findings += run.stdout.count("finding:")
            if run.returncode >= 0:
                if run.returncode and "finding:" not in run.stdout:
                    print(f"finding: the child failed: {run.stderr.strip()[-2000:]}")
                    findings += 1
                break
            with open(progress) as f:
                died = int(f.read())
            print(f"finding: crash (signal {-run.returncode}) at input {died} (seed {args.seed})")
            findings += 1
            index = died + 1
    elapsed = time.monotonic() - begun
    print(f"{args.inputs} inputs (seed {args.seed}) in {elapsed:.1f} s: {findings} findings")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
