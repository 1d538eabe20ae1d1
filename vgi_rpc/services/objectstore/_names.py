"""Names: a local table plus the store's persisted names, with waiters woken on every change.

Owns binding, lookup, waiting (a condition variable, never a client-side poll)
and dropping. The server tells it whether an object exists and is persisted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

from vgi_rpc.services.objectstore._errors import (
    InvalidRequest,
    NameNotFound,
    NameTaken,
    NameTimeout,
    OutOfMemory,
)
from vgi_rpc.services.objectstore._ids import ObjectID
from vgi_rpc.services.objectstore._store import Store
from vgi_rpc.services.objectstore._watch import watch

# A wait also looks at a shared store this often, for other instances' names: a
# local store wakes waiters at once (inotify), and is looked at only as a safety net.
STORE_POLL_SECONDS = 0.1
WATCHED_STORE_POLL_SECONDS = 5.0
MAX_WAIT_SECONDS = 86400.0
MAX_NAMES = 1_000_000  # bound in this instance's memory (names cost memory no object accounts for)


class NameTable:
    """Name -> object id, here and (for persisted objects) in the store.

    Args:
        store: The shared store, or ``None``.
        exists: Whether an object id is alive (here or in the store).
        persisted: Whether an object held here is persisted (``None``: not held here).
    """

    def __init__(
        self,
        store: Store | None,
        exists: Callable[[int], bool],
        persisted: Callable[[int], bool | None],
    ) -> None:
        self.store = store
        self._exists = exists
        self._persisted = persisted
        self._names: dict[str, int] = {}
        self._by_object: dict[int, set[str]] = {}
        self._changed = threading.Condition()
        self._closing = False
        self.waiting = 0  # threads blocked in get(wait=True) right now
        self._generation = (
            0  # bumped on every change, so a change between a look and a wait is seen
        )
        self._watch = None
        self.poll_seconds = MAX_WAIT_SECONDS
        if store is not None:
            self.poll_seconds = STORE_POLL_SECONDS
            if store.local:
                self._watch = watch(f"{store.root}/names", self._wake)
                if self._watch is not None:
                    self.poll_seconds = WATCHED_STORE_POLL_SECONDS

    @property
    def watching(self) -> bool:
        """Whether the store's names wake waiters without polling."""
        return self._watch is not None

    def _wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def close(self) -> None:
        """Wake every waiter; later waits fail at once."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._watch is not None:
            self._watch.close()

    def of(self, oid: int) -> list[str]:
        """Local names bound to ``oid``."""
        with self._changed:
            return sorted(self._by_object.get(oid, ()))

    def find(self, name: str) -> int | None:
        """The id bound to ``name`` here or in the store, or ``None``."""
        with self._changed:
            oid = self._names.get(name)
        if oid is None and self.store is not None:
            oid = self.store.get_name(name)
        return oid

    def put(self, oid: ObjectID, name: str, overwrite: bool) -> None:
        """Bind ``name``; persisted when the object is."""
        current = self.find(name)
        if current is not None and current != oid and not overwrite and self._exists(current):
            raise NameTaken(
                f"the name {name!r} is bound to {ObjectID(current)}; pass overwrite=True to rebind it"
            )
        with self._changed:
            if name not in self._names and len(self._names) >= MAX_NAMES:
                raise OutOfMemory(
                    f"this instance holds {MAX_NAMES} names, its limit: drop some before binding more"
                )
        persisted = self._persisted(oid)
        if self.store is not None and persisted is not False:
            self.store.put_name(name, oid)
        elif self.store is not None and current is not None:
            self.store.drop_name(name)  # the old binding was global; the new one is local only
        with self._changed:
            self._unbind(name)
            self._names[name] = oid
            self._by_object.setdefault(oid, set()).add(name)
            self._generation += 1
            self._changed.notify_all()

    def _unbind(self, name: str) -> int | None:
        """Remove ``name`` from the local table (the caller holds the lock); its id, if bound."""
        oid = self._names.pop(name, None)
        if oid is not None:
            names = self._by_object[oid]
            names.discard(name)
            if not names:
                del self._by_object[oid]
        return oid

    def persist(self, oid: int) -> None:
        """Write the local names of ``oid`` to the store."""
        if self.store is not None:
            for name in self.of(oid):
                self.store.put_name(name, oid)

    def get(self, name: str, wait: bool, timeout: float | None) -> int:
        """The id bound to ``name``; with ``wait``, block until bound or ``timeout`` passes."""
        if timeout is not None and not 0 <= timeout <= MAX_WAIT_SECONDS:
            raise InvalidRequest(
                f"timeout must be between 0 and {MAX_WAIT_SECONDS:.0f} seconds, not {timeout}"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._generation
            oid = self.find(name)
            if oid is not None:
                if not self._exists(oid):
                    raise NameNotFound(f"the name {name!r} names {ObjectID(oid)}, which is gone")
                return oid
            if not wait:
                raise NameNotFound(f"no name {name!r}")
            with self._changed:
                if self._closing:
                    raise NameNotFound(f"no name {name!r}: the server is shutting down")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise NameTimeout(f"no object was named {name!r} within {timeout} s")
                # checked under the lock, against what changed since the look: no lost wake-up
                if name not in self._names and self._generation == seen:
                    poll = self.poll_seconds
                    self.waiting += 1
                    try:
                        self._changed.wait(poll if remaining is None else min(remaining, poll))
                    finally:
                        self.waiting -= 1

    def drop(self, name: str) -> None:
        """Unbind ``name`` here and in the store."""
        with self._changed:
            local = self._unbind(name)
        stored = self.store.get_name(name) if self.store is not None else None
        if stored is not None and self.store is not None:
            self.store.drop_name(name)
        if local is None and stored is None:
            raise NameNotFound(f"no name {name!r}")

    def drop_objects(self, oids: Sequence[int], stored: AbstractSet[int]) -> None:
        """Unbind every name of ``oids`` (being deleted); of those in ``stored``, in the store too.

        The store is scanned once for the whole delete, not once per object.
        """
        with self._changed:
            for oid in oids:
                for name in self._by_object.pop(oid, ()):
                    del self._names[name]
            self._generation += 1
            self._changed.notify_all()
        if self.store is not None and stored:
            for name, bound in self.store.names().items():
                if bound in stored:
                    self.store.drop_name(name)

    def matching(self, matches: Callable[[str], bool], limit: int) -> dict[str, int]:
        """Names that ``matches`` accepts, here and in the store (at most ``limit``)."""
        names = dict(self.store.names()) if self.store is not None else {}
        with self._changed:
            names.update(self._names)
        matched = sorted(n for n in names if matches(n))
        return {n: names[n] for n in matched[:limit]}


__all__ = ["NameTable"]
