"""The object store's typed errors, raised by the server and re-raised by the client.

Each class's name travels as the wire ``error_type``; the client maps it back
to the same class, so ``except ObjectNotFound`` works on both sides::

    ObjectStoreError(RpcError)
      ObjectNotFound(LookupError)       unknown or deleted id
      NameNotFound(LookupError)         unknown name, or its object is gone
      NameTaken(ValueError)             put_name on a taken name without overwrite
      NameTimeout(TimeoutError)         get_name(wait=True) ran out of time
      OutOfMemory(MemoryError)          the server's memory limit or /dev/shm is full
      BlobSealed(PermissionError)       write to a sealed (immutable) blob
      InvalidRequest(ValueError)        malformed id, name, size, page token or data
      PutAborted                        the pending put is gone (cancelled or expired)
"""

from __future__ import annotations

from typing import ClassVar

from vgi_rpc import RpcError


class ObjectStoreError(RpcError):
    """Base of every object store error; an ``RpcError`` whose ``error_type`` is the class name."""

    kind: ClassVar[str] = "objectstore"

    def __init__(self, message: str, *, remote_traceback: str = "", request_id: str = "") -> None:
        super().__init__(
            type(self).__name__,
            message,
            remote_traceback,
            request_id=request_id,
            error_kind=self.kind,
        )

    def __str__(self) -> str:
        return self.error_message


class ObjectNotFound(ObjectStoreError, LookupError):  # noqa: N818  # names match the store API users know
    """No object with this id (never put, deleted, or not persisted where you look)."""

    kind = "object_not_found"


class NameNotFound(ObjectStoreError, LookupError):  # noqa: N818  # names match the store API users know
    """No such name, or the object it named is gone."""

    kind = "name_not_found"


class NameTaken(ObjectStoreError, ValueError):  # noqa: N818  # names match the store API users know
    """The name is bound to another object and ``overwrite`` was not asked for."""

    kind = "name_taken"


class NameTimeout(ObjectStoreError, TimeoutError):  # noqa: N818  # names match the store API users know
    """``get_name(wait=True)`` saw no ``put_name`` before its timeout."""

    kind = "name_timeout"


class OutOfMemory(ObjectStoreError, MemoryError):  # noqa: N818  # names match the store API users know
    """An allocation would exceed the server's memory limit (the message names both)."""

    kind = "out_of_memory"


class BlobSealed(ObjectStoreError, PermissionError):  # noqa: N818  # names match the store API users know
    """The blob is sealed: objects are immutable once sealed."""

    kind = "blob_sealed"


class InvalidRequest(ObjectStoreError, ValueError):  # noqa: N818  # names match the store API users know
    """A malformed id, name, size, page token or object payload."""

    kind = "invalid_request"


class PutAborted(ObjectStoreError):  # noqa: N818  # names match the store API users know
    """The pending put is gone: cancelled, expired, or its client disconnected."""

    kind = "put_aborted"


ERRORS: dict[str, type[ObjectStoreError]] = {
    cls.__name__: cls
    for cls in (
        ObjectNotFound,
        NameNotFound,
        NameTaken,
        NameTimeout,
        OutOfMemory,
        BlobSealed,
        InvalidRequest,
        PutAborted,
    )
}


def typed(exc: RpcError) -> RpcError:
    """The typed error for a remote failure (``exc`` itself when its type is not ours)."""
    cls = ERRORS.get(exc.error_type)
    if cls is None or isinstance(exc, cls):
        return exc
    return cls(exc.error_message, remote_traceback=exc.remote_traceback, request_id=exc.request_id)


__all__ = [
    "ERRORS",
    "BlobSealed",
    "InvalidRequest",
    "NameNotFound",
    "NameTaken",
    "NameTimeout",
    "ObjectNotFound",
    "ObjectStoreError",
    "OutOfMemory",
    "PutAborted",
    "typed",
]
