"""Names of the framework-reserved metadata keys (wire spec section 3). Data only."""

from __future__ import annotations

REQUEST_VERSION = b"1"

METHOD_KEY = b"vgi_rpc.method"
PROTOCOL_KEY = b"vgi_rpc.protocol"
REQUEST_VERSION_KEY = b"vgi_rpc.request_version"
PROTOCOL_VERSION_KEY = b"vgi_rpc.protocol_version"
REQUEST_ID_KEY = b"vgi_rpc.request_id"
CANCEL_KEY = b"vgi_rpc.cancel"
TRACEPARENT_KEY = b"traceparent"
TRACESTATE_KEY = b"tracestate"
SHM_SEGMENT_NAME_KEY = b"vgi_rpc.shm_segment_name"
SHM_SEGMENT_SIZE_KEY = b"vgi_rpc.shm_segment_size"
TRANSPORT_SHM_KEY = b"vgi_rpc.transport.shm"

LOG_LEVEL_KEY = b"vgi_rpc.log_level"
LOG_MESSAGE_KEY = b"vgi_rpc.log_message"
LOG_EXTRA_KEY = b"vgi_rpc.log_extra"
ERROR_KIND_KEY = b"vgi_rpc.error_kind"
ERROR_CODE_KEY = b"vgi_rpc.error_code"
ERROR_DETAILS_KEY = b"vgi_rpc.error_details"
SERVER_ID_KEY = b"vgi_rpc.server_id"

STREAM_STATE_KEY = b"vgi_rpc.stream_state#b64"
CALL_STATE_KEY = b"vgi_rpc.call_state#b64"

SHM_OFFSET_KEY = b"vgi_rpc.shm_offset"
SHM_LENGTH_KEY = b"vgi_rpc.shm_length"
SHM_SOURCE_KEY = b"vgi_rpc.shm_source"

LOCATION_KEY = b"vgi_rpc.location"
LOCATION_SHA256_KEY = b"vgi_rpc.location.sha256"
LOCATION_FETCH_MS_KEY = b"vgi_rpc.location.fetch_ms"  # stamped by the reader, never sent
LOCATION_SOURCE_KEY = b"vgi_rpc.location.source"  # stamped by the reader, never sent

PROTOCOL_NAME_KEY = b"vgi_rpc.protocol_name"
DESCRIBE_VERSION_KEY = b"vgi_rpc.describe_version"
PROTOCOL_HASH_KEY = b"vgi_rpc.protocol_hash"
# Our extension (ignored by other readers): JSON {"docs": {"": protocol doc, method: doc},
# "defaults": {method: {param: default}}}, so tools can show docs and merge defaults.
DESCRIBE_DOCS_KEY = b"vgi_rpc.describe.docs"

DESCRIBE_METHOD = "__describe__"
TRANSPORT_OPTIONS_METHOD = "__transport_options__"
