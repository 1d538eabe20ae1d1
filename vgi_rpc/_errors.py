"""Every exception vgi_rpc raises itself, in one tree.

Imports nothing from vgi_rpc. The classes marked (http) only the HTTP transport
and the external storage route raise: they live in ``vgi_rpc._http_errors``, so a
worker serving over a pipe does not create them. The tree::

    VgiRpcError(Exception)
      RpcError                       the peer reported a failure (error_type, error_message ...)
        HttpError                    an HTTP answer without an Arrow body (status) (http)
          AuthenticationError        401 from ``authenticate`` (PermissionError; alias HttpUnauthorizedError) (http)
          RequestTooLargeError       413: the body exceeds the server's max_request_bytes (http)
          HttpNotFoundError          404 without an Arrow body: no such route (check the prefix) (http)
      ProtocolError                  bytes broke the wire contract
        IPCError                     malformed Arrow IPC or failed validation
          MessageTooLargeError       a message over ResourceLimits.max_message_bytes
          FlatbufferError(ValueError)  a malformed IPC message header
        ProtocolNotSupportedError    names a protocol the server does not host
        VersionError                 missing or unknown vgi_rpc.request_version
          ProtocolVersionError       application protocol_version mismatch
      TransportError(OSError)        the channel failed
        PeerExitedError(RpcError)    the worker process is gone (also an RpcError)
        ExternalStorageError         an external location could not be written or read
      ExternalResponseTooLargeError  an externalized response would pass its cap (http)
      SchemaError(TypeError)         an annotation has no Arrow mapping
      TokenError(ValueError)         an HTTP stream token this server did not mint (http)
      RequestRefusedError            server side: an HTTP request refused with a status (http)
      ResponseTooLargeError          server side: a response batch over the response cap (http)
    MethodNotImplementedError(VgiRpcError, AttributeError)   unknown method (server side)
    AuthFailure(VgiRpcError, PermissionError)   raised by ``authenticate`` to refuse with a reason (http)

Every class carries ``error_kind``: the stable token written to
``vgi_rpc.error_kind`` when the server reports it (spec section 8). Errors
built on the client from an HTTP status (``HttpError`` and below) use the
``error_type`` strings other vgi-rpc clients report for the same status.
"""

from __future__ import annotations

from typing import ClassVar


class VgiRpcError(Exception):
    """Base of every exception raised by vgi_rpc itself."""

    error_kind: ClassVar[str | None] = None


class RpcError(VgiRpcError):
    """A failure reported by the remote side of a call.

    Attributes:
        error_type: The remote exception's class name (e.g. ``"ValueError"``).
        error_message: The remote exception's message.
        remote_traceback: The formatted remote traceback, or ``""``.
        request_id: The correlation id of the failed request, or ``""``.
        error_kind: A stable machine-readable category, when the server sent one.
        error_code: The canonical code (``UNAVAILABLE`` ...), or ``""`` from an older server.
        error_details: The typed details the server sent (``[]`` when none).
    """

    def __init__(
        self,
        error_type: str,
        error_message: str,
        remote_traceback: str = "",
        *,
        request_id: str = "",
        error_kind: str | None = None,
        error_code: str = "",
        error_details: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_code = error_code
        self.error_details = error_details or []
        self.error_type = error_type
        self.error_message = error_message
        self.remote_traceback = remote_traceback
        self.request_id = request_id
        self.error_kind = error_kind  # type: ignore[misc]  # instance value shadows the ClassVar default

    @property
    def is_retryable(self) -> bool:
        """Whether retrying may help: UNAVAILABLE, or RESOURCE_EXHAUSTED with a RetryInfo."""
        if self.error_code == "UNAVAILABLE":
            return True
        return self.error_code == "RESOURCE_EXHAUSTED" and any(
            d.get("@type") == "vgi_rpc.RetryInfo" for d in self.error_details
        )


class ProtocolError(VgiRpcError):
    """Bytes received from the peer broke the wire contract."""


class IPCError(ProtocolError):
    """Malformed Arrow IPC data, or data that failed IpcValidation."""


class MessageTooLargeError(IPCError):
    """A message over ``ResourceLimits.max_message_bytes``; carries its header's metadata."""

    def __init__(self, message: str, metadata: dict[bytes, bytes] | None) -> None:
        super().__init__(message)
        self.metadata = metadata


class FlatbufferError(IPCError, ValueError):
    """The bytes are not a well-formed Arrow IPC message header."""


class VersionError(ProtocolError):
    """The request's ``vgi_rpc.request_version`` is missing or unsupported."""


class ProtocolVersionError(VersionError):
    """Client and server disagree on the application ``protocol_version``."""

    error_kind = "protocol_version_mismatch"


class TransportError(VgiRpcError, OSError):
    """The channel to the peer failed (closed pipe, dead socket, ...)."""


class PeerExitedError(TransportError, RpcError):
    """The worker process exited; carries its exit status and stderr tail.

    Also an ``RpcError`` (``error_type`` ``"TransportError"``, as other
    vgi-rpc clients report a lost peer), so ``except RpcError`` covers a
    worker that dies mid-call.

    Attributes:
        returncode: The process exit status (negative for a signal), if known.
        stderr_tail: The last lines the worker wrote to stderr, if captured.
    """

    def __init__(
        self, message: str, *, returncode: int | None = None, stderr_tail: str = ""
    ) -> None:
        detail = message
        if returncode is not None:
            detail += f" (exit status {returncode})"
        if stderr_tail:
            detail += f"; last stderr lines:\n{stderr_tail}"
        TransportError.__init__(self, detail)  # the message stays the plain detail
        self.error_type = "TransportError"
        self.error_message = detail
        self.remote_traceback = ""
        self.request_id = ""
        self.error_kind = None  # type: ignore[misc]  # instance value shadows the ClassVar default
        self.error_code = "UNAVAILABLE"
        self.error_details = []
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ExternalStorageError(TransportError):
    """An externalized batch could not be uploaded, fetched or verified.

    Attributes:
        location: Where (scheme, host, port and path only: never a signed query).
        reason: ``not_found``, ``unreachable``, ``checksum_mismatch``, ``refused``,
            ``too_large``, ``malformed`` or ``upload_failed``.
    """

    _CODES: ClassVar[dict[str, str]] = {
        "not_found": "NOT_FOUND",
        "unreachable": "UNAVAILABLE",
        "checksum_mismatch": "DATA_LOSS",
        "too_large": "RESOURCE_EXHAUSTED",
        "refused": "PERMISSION_DENIED",
    }

    def __init__(self, message: str, *, location: str = "", reason: str = "") -> None:
        super().__init__(f"{message} ({location})" if location else message)
        self.location = location
        self.reason = reason
        # The canonical code a server reports it with (spec section 8).
        self.error_code = self._CODES.get(reason, "UNKNOWN")


class SchemaError(VgiRpcError, TypeError):
    """A type annotation cannot be mapped to an Arrow type."""


class ProtocolNotSupportedError(ProtocolError):
    """The request names a protocol this server does not host (second generation)."""

    error_kind = "protocol_not_supported"


class MethodNotImplementedError(VgiRpcError, AttributeError):
    """The server has no handler for the requested method."""

    error_kind = "method_not_implemented"


__all__ = [
    "ExternalStorageError",
    "FlatbufferError",
    "IPCError",
    "MessageTooLargeError",
    "MethodNotImplementedError",
    "PeerExitedError",
    "ProtocolError",
    "ProtocolNotSupportedError",
    "ProtocolVersionError",
    "RpcError",
    "SchemaError",
    "TransportError",
    "VersionError",
    "VgiRpcError",
]
