"""The sandbox's etcd: objects per collection, one global resourceVersion, the event history.

design: one lock guards everything; a write bumps the revision, stores a new immutable
:class:`~kubesandbox.objects.Entry`, appends an event and wakes every watcher through the
``changed`` condition.  Readers take the lock only to pick entries (cheap: entries are
pre-rendered bytes), and join bytes after releasing it.  A list at an older revision (a
``continue`` token, ``resourceVersionMatch=Exact``) is rebuilt by rolling the history back,
so the history window is also the compaction window, as etcd's is for kube-apiserver.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubesandbox.history import Event, EventLog, GroupResource
from kubesandbox.objects import Entry, make_entry
from yurthub.kube.resources import ResourceType

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class Collection:
    """The current entries of one group/resource, keyed (and listed) by ``ns/name``."""

    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt
        self.entries: dict[str, Entry] = {}
        self._sorted: list[str] | None = None
        self.last_change_rv = 0

    def put(self, entry: Entry) -> None:
        if entry.key not in self.entries:
            self._sorted = None
        self.entries[entry.key] = entry

    def remove(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self._sorted = None

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        return self._sorted


@dataclass
class Page:
    """One page of a list: its revision, entries, where to continue and how many remain."""

    rv: int
    items: list[Entry]
    continue_key: str | None
    remaining: int


def _namespace_range(keys: list[str], namespace: str | None) -> tuple[int, int]:
    if not namespace:
        return 0, len(keys)
    # "ns/" sorts before "ns0": every key of the namespace lies in between.
    return bisect.bisect_left(keys, namespace + "/"), bisect.bisect_left(keys, namespace + "0")


class Store:
    """Objects, the revision counter and the history; use ``with store.lock`` to combine calls."""

    def __init__(self, history_size: int = 10000, start_rv: int = 1) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = start_rv
        self.log = EventLog(history_size, floor=start_rv)
        self._collections: dict[GroupResource, Collection] = {}
        self.closed = False

    # -- reading --------------------------------------------------------------------------

    def collection(self, rt: ResourceType) -> Collection:
        """The collection of ``rt``'s group/resource, created with ``rt`` as storage type."""
        with self.lock:
            gr = (rt.group, rt.resource)
            coll = self._collections.get(gr)
            if coll is None:
                coll = self._collections[gr] = Collection(rt)
            return coll

    def get(self, rt: ResourceType, namespace: str, name: str) -> Entry | None:
        key = f"{namespace}/{name}" if rt.namespaced else name
        with self.lock:
            return self.collection(rt).entries.get(key)

    def can_serve(self, rv: int) -> bool:
        """Whether every event after ``rv`` is still in the history."""
        return rv >= self.log.floor

    def _state_at(self, coll: Collection, rv: int) -> tuple[dict[str, Entry], list[str]]:
        if rv >= self.rv or coll.last_change_rv <= rv:
            return coll.entries, coll.sorted_keys()
        state = dict(coll.entries)
        gr = (coll.rt.group, coll.rt.resource)
        # Roll back, newest first: what is left for each key is its value at ``rv``.
        for ev in reversed(self.log.since(rv)):
            if ev.gr != gr:
                continue
            if ev.prev is None:
                state.pop(ev.entry.key, None)
            else:
                state[ev.prev.key] = ev.prev
        return state, sorted(state)

    def page(self, rt: ResourceType, *, rv: int | None, namespace: str | None,
             match: Callable[[Entry], bool] | None, start: str = "",
             limit: int = 0) -> Page:
        """Entries of ``rt`` (in one namespace or all) as of ``rv`` (None: now), in key order.

        The caller checks ``can_serve(rv)`` first, holding the lock across both calls.
        """
        with self.lock:
            coll = self.collection(rt)
            at = self.rv if rv is None else rv
            state, keys = self._state_at(coll, at)
            lo, hi = _namespace_range(keys, namespace)
            if start:
                lo = max(lo, bisect.bisect_left(keys, start))
            items: list[Entry] = []
            last_key: str | None = None
            remaining = 0
            for i in range(lo, hi):
                entry = state[keys[i]]
                if match is not None and not match(entry):
                    continue
                if limit and len(items) >= limit:
                    remaining += 1
                    continue
                items.append(entry)
                last_key = keys[i]
            more = remaining > 0
            return Page(at, items, last_key + "\x00" if more and last_key else None, remaining)

    def entries(self, rt: ResourceType, namespace: str | None = None) -> list[Entry]:
        return self.page(rt, rv=None, namespace=namespace, match=None).items

    # -- writing (each call bumps the revision and records one event) -----------------------

    def _record(self, coll: Collection, type_: str, entry: Entry, prev: Entry | None) -> None:
        self.rv = entry.rv
        coll.last_change_rv = entry.rv
        self.log.append(Event(entry.rv, type_, (coll.rt.group, coll.rt.resource), entry, prev))
        self.changed.notify_all()

    def put(self, rt: ResourceType, obj: dict[str, Any], prev: Entry | None) -> Entry:
        """Store ``obj`` (a create when ``prev`` is None) at the next revision; ``obj``'s
        metadata.resourceVersion is set to it."""
        with self.lock:
            coll = self.collection(rt)
            rv = self.rv + 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
            entry = make_entry(obj, coll.rt, rv)
            coll.put(entry)
            self._record(coll, ADDED if prev is None else MODIFIED, entry, prev)
            return entry

    def remove(self, rt: ResourceType, prev: Entry) -> Entry:
        """Delete ``prev``'s object; the DELETED event carries it at the deletion revision."""
        with self.lock:
            coll = self.collection(rt)
            rv = self.rv + 1
            obj = prev.obj()
            obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
            entry = make_entry(obj, coll.rt, rv)
            coll.remove(prev.key)
            self._record(coll, DELETED, entry, prev)
            return entry

    def load(self, rt: ResourceType, entries: Iterable[Entry], last_rv: int) -> None:
        """Bulk-load pre-rendered entries (seeding) without events: the history starts after."""
        with self.lock:
            coll = self.collection(rt)
            for entry in entries:
                coll.put(entry)
            self.rv = max(self.rv, last_rv)
            coll.last_change_rv = self.rv
            self.log.compact(self.rv)
            self.changed.notify_all()

    def drop_collection(self, rt: ResourceType) -> None:
        """Delete every object of a collection (a CRD went away), with DELETED events."""
        with self.lock:
            for entry in list(self.collection(rt).entries.values()):
                self.remove(rt, entry)
            self._collections.pop((rt.group, rt.resource), None)

    def compact(self, rv: int | None = None) -> int:
        """Forget the history up to ``rv`` (default: all of it); returns the new floor."""
        with self.lock:
            self.log.compact(self.rv if rv is None else min(rv, self.rv))
            return self.log.floor

    def wait_for_rv(self, rv: int, timeout: float,
                    stop: threading.Event | None = None) -> bool:
        """Wait until the store reaches ``rv`` (or closes, or ``stop`` is set and a ``wake``
        follows it)."""
        with self.changed:
            return self.changed.wait_for(
                lambda: self.rv >= rv or self.closed or (stop is not None and stop.is_set()),
                timeout)

    def close(self) -> None:
        """Wake every waiter for good (the server is stopping)."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def wake(self) -> None:
        """Wake every watcher so that it re-checks its connection (cut by a fault)."""
        with self.changed:
            self.changed.notify_all()
