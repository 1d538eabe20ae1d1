"""The object store: immutable objects in shared memory, names, blobs, persistence.

``connect()`` gives an ``ObjectStoreClient`` (``put`` / ``get`` / ``delete`` /
names / blobs); ``serve()`` / ``start()`` run a server; ``ObjectStore`` is
the wire Protocol any vgi-rpc client can call.
"""

from vgi_rpc.services.objectstore._cli import register as register_cli
from vgi_rpc.services.objectstore._errors import (
    BlobSealed,
    InvalidRequest,
    NameNotFound,
    NameTaken,
    NameTimeout,
    ObjectNotFound,
    ObjectStoreError,
    OutOfMemory,
    PutAborted,
)
from vgi_rpc.services.objectstore._ids import ObjectID
from vgi_rpc.services.objectstore._serve import RunningStore, parse_size, serve, start
from vgi_rpc.services.objectstore._store import Store
from vgi_rpc.services.objectstore.client import (
    Blob,
    BlobWriter,
    ObjectStoreClient,
    connect,
    default_socket,
)
from vgi_rpc.services.objectstore.protocol import ObjectMeta, ObjectPage, ObjectStore, ServerInfo
from vgi_rpc.services.objectstore.server import ObjectStoreServer

__all__ = [
    "Blob",
    "BlobSealed",
    "BlobWriter",
    "InvalidRequest",
    "NameNotFound",
    "NameTaken",
    "NameTimeout",
    "ObjectID",
    "ObjectMeta",
    "ObjectNotFound",
    "ObjectPage",
    "ObjectStore",
    "ObjectStoreClient",
    "ObjectStoreError",
    "ObjectStoreServer",
    "OutOfMemory",
    "PutAborted",
    "RunningStore",
    "ServerInfo",
    "Store",
    "connect",
    "default_socket",
    "parse_size",
    "register_cli",
    "serve",
    "start",
]
