"""Typed errors of the vector index service.

Each class carries a stable ``error_kind`` that travels in the error batch; the
client turns a remote error with a known kind back into the same class.
Imports nothing from the rest of the service.
"""

from __future__ import annotations

from typing import ClassVar


class VectorIndexError(Exception):
    """Base of every error the vector index raises on purpose."""

    error_kind: ClassVar[str] = "vectorindex"


class InvalidArgumentError(VectorIndexError, ValueError):
    """An argument is out of range or malformed (unknown metric or kind, bad top_k, ...)."""

    error_kind = "vectorindex.invalid_argument"


class DimensionMismatchError(InvalidArgumentError):
    """Vectors do not have the namespace's dimension."""

    error_kind = "vectorindex.dimension_mismatch"


class InvalidVectorError(InvalidArgumentError):
    """A vector holds NaN or infinity (or a null)."""

    error_kind = "vectorindex.invalid_vector"


class DuplicateIdError(InvalidArgumentError):
    """The same id appears twice in one batch."""

    error_kind = "vectorindex.duplicate_id"


class FilterError(InvalidArgumentError):
    """A metadata filter is malformed."""

    error_kind = "vectorindex.bad_filter"


class NamespaceNotFoundError(VectorIndexError, KeyError):
    """The namespace does not exist."""

    error_kind = "vectorindex.namespace_not_found"

    def __str__(self) -> str:
        # KeyError would quote the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class NamespaceExistsError(VectorIndexError):
    """``create_index`` named a namespace that exists with another configuration."""

    error_kind = "vectorindex.namespace_exists"


class StorageError(VectorIndexError, OSError):
    """The write-ahead log or a snapshot could not be written or read."""

    error_kind = "vectorindex.storage"


ERRORS_BY_KIND: dict[str, type[VectorIndexError]] = {
    cls.error_kind: cls
    for cls in (
        VectorIndexError,
        InvalidArgumentError,
        DimensionMismatchError,
        InvalidVectorError,
        DuplicateIdError,
        FilterError,
        NamespaceNotFoundError,
        NamespaceExistsError,
        StorageError,
    )
}
