"""ObjectID: a 64-bit object identifier printed as ``o`` + 16 hex digits.

Owns id generation and strict parsing; imports nothing from the service.
"""

from __future__ import annotations

import operator
import os
import random
import re

_PATTERN = re.compile(r"o[0-9a-f]{16}")
_MAX = (1 << 63) - 1  # ids travel as int64 on the wire

# Ids and file names must be unique, not secret (anyone may list them), and reading
# os.urandom is a system call each time: a generator seeded by the OS, reseeded in a
# forked child so that parent and child never draw the same numbers.
_RANDOM = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _RANDOM.seed(os.urandom(32)))


def random_bits(bits: int) -> int:
    """A uniformly random number of ``bits`` bits (for ids and file names)."""
    return _RANDOM.getrandbits(bits)


def random_name() -> str:
    """16 random hex digits."""
    return f"{_RANDOM.getrandbits(64):016x}"


class ObjectID(int):
    """A 64-bit object id (``ObjectID("o00000000000004d2") == 1234``)."""

    __slots__ = ()

    def __new__(cls, value: int | str) -> ObjectID:
        """Wrap an int in ``[1, 2**63)`` or parse ``o`` + 16 lowercase hex digits."""
        if isinstance(value, str):
            if not _PATTERN.fullmatch(value):
                raise ValueError(f"not an object id: {value[:40]!r} (expected 'o' + 16 hex digits)")
            number = int(value[1:], 16)
        elif isinstance(value, bool):
            raise TypeError("an object id is an int or a str, not a bool")
        else:
            number = operator.index(value)
        if not 0 < number <= _MAX:
            raise ValueError(f"object id {number} is outside [1, 2**63)")
        return super().__new__(cls, number)

    @classmethod
    def generate(cls) -> ObjectID:
        """A fresh random id (63 random bits: unique across instances without a coordinator)."""
        return cls(_RANDOM.randrange(1, _MAX + 1))

    def hex(self) -> str:
        """The 16 hex digits."""
        return f"{int(self):016x}"

    def __str__(self) -> str:
        return "o" + self.hex()

    def __repr__(self) -> str:
        return f"ObjectID({str(self)!r})"


def is_object_id(text: str) -> bool:
    """Whether ``text`` is spelled like an object id."""
    return _PATTERN.fullmatch(text) is not None


__all__ = ["ObjectID", "is_object_id", "random_bits", "random_name"]
