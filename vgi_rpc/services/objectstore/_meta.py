"""``ObjectMeta`` from what the server holds or the store keeps, and pages of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from vgi_rpc.services.objectstore._entries import Entry
from vgi_rpc.services.objectstore._errors import ObjectNotFound
from vgi_rpc.services.objectstore._ids import ObjectID
from vgi_rpc.services.objectstore.protocol import VALUE, ObjectMeta, ObjectPage


def held_meta(entry: Entry, instance_id: str, hostname: str, names: list[str]) -> ObjectMeta:
    """The metadata of an object this instance knows."""
    return ObjectMeta(
        id=entry.id,
        typename=entry.typename,
        nbytes=entry.nbytes,
        kind=entry.kind,
        isglobal=entry.persisted,
        islocal=entry.held,
        instance_id=instance_id,
        hostname=hostname,
        properties=entry.properties,
        names=names,
        path=entry.segment.path if entry.segment else "",
    )


def stored_meta(oid: int, stored: dict[str, object], names: list[str]) -> ObjectMeta:
    """The metadata of an object only the store has (its JSON record, read leniently)."""
    props = stored.get("properties")
    nbytes = stored.get("nbytes")
    return ObjectMeta(
        id=oid,
        typename=str(stored.get("typename", "")),
        nbytes=nbytes if isinstance(nbytes, int) else 0,
        kind=str(stored.get("kind", VALUE)),
        isglobal=True,
        islocal=False,
        instance_id=str(stored.get("instance_id", "")),
        hostname=str(stored.get("hostname", "")),
        properties=dict(props) if isinstance(props, dict) else {},
        names=names,
    )


def page(
    ids: Iterable[int],
    after: int,
    size: int,
    matches: Callable[[str], bool] | None,
    meta_of: Callable[[int], ObjectMeta],
) -> ObjectPage:
    """The ``size`` objects after id ``after`` whose typename ``matches`` (all: ``None``), by id."""
    found: list[ObjectMeta] = []
    for oid in sorted(i for i in ids if i > after):
        if len(found) == size:
            return ObjectPage(objects=found, next_page_token=str(ObjectID(found[-1].id)))
        try:
            meta = meta_of(oid)
        except ObjectNotFound:  # deleted meanwhile
            continue
        if matches is None or matches(meta.typename):
            found.append(meta)
    return ObjectPage(objects=found, next_page_token=None)


__all__ = ["held_meta", "page", "stored_meta"]
