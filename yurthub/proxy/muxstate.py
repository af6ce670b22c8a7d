"""The multiplexer's shared state of one resource: its objects, its resourceVersion, its events.

One upstream list+watch feeds it (proxy/muxfeed.py); every local client's list and watch is
answered from it (proxy/mux.py).  It holds each object once, decoded (for selectors and
filters) and as bytes (for answers), and the last ``history_size`` changes in order, each
with the object's previous state, so that a watch with a selector can tell an object that
enters or leaves its selection, and a watch resumed from a resourceVersion gets exactly the
events after it.  ``base_rv`` is the oldest version a watch may resume from: every change
after it is still held.

A relist (after the upstream watch broke with 410) does not reset anything: the difference
between the held objects and the new list becomes events (ADDED, MODIFIED, DELETED at the
list's version), so local watches go on without a gap or a duplicate and the history stays
contiguous.  Unless the list's version is below the state's: the cloud's versions went back
(etcd restored from a backup), and no event can carry a watch from versions the cloud lost
to its present, so the state starts again at the list and every open watch is left behind
(``rewound_seq``: it ends with 410 Expired and its client lists again).  Nothing here
does I/O; the lock is one Condition that watches wait on.
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from yurthub.errors import DecodeError
from yurthub.kube.fields import selectable_values
from yurthub.kube.jsonscan import decode_object
from yurthub.kube.meta import rv_int
from yurthub.kube.resources import ResourceType

Key = tuple[str, str]  # (namespace, name)


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Obj:
    """One object as the shared state holds it (read-only: many clients read it at once).

    Only its JSON is kept, once: ``item`` is the object without ``kind`` and ``apiVersion``
    (as built-in lists carry their items), ``head`` the type meta an event puts in front of
    it (one bytes object per resource, shared).  The decoded object is made again when a
    filter needs it: holding every object decoded cost six to eight times the bytes (a
    65 MB EndpointSlices list held ~500 MB), far past the hub's memory goal.  What selectors
    read (labels and selectable fields) is kept decoded.
    """

    namespace: str
    name: str
    rv: int
    labels: Mapping[str, str]
    fields: Mapping[str, str]
    head: bytes
    item: bytes

    @property
    def key(self) -> Key:
        return self.namespace, self.name

    @property
    def event(self) -> bytes:
        """Its JSON with ``kind`` and ``apiVersion`` leading, as watch events carry it (made
        for every event a watch sends: one copy of the item, no more)."""
        item = self.item
        if item[1:2] == b'"':  # compact JSON, a member follows: the common case
            return self.head + memoryview(item)[1:]
        rest = item[1:].lstrip()
        if rest.startswith(b"}"):
            return self.head[:-1] + rest
        return self.head + rest

    @property
    def body(self) -> dict[str, Any]:
        """The object decoded, ``kind`` and ``apiVersion`` included; read-only (an event
        fanning out to many filtered watches is decoded once: see _decoded)."""
        with _decoded_lock:
            got = _decoded.get(self.item)
        if got is None:
            got = decode_object(self.event)
            with _decoded_lock:
                _decoded[self.item] = got
        return got


# The last objects decoded, keyed by their bytes (equal bytes decode equal, so a hit is
# always right); small, as it only has to span one event's fan-out to the watches.
_decoded: LRUCache[bytes, dict[str, Any]] = LRUCache(maxsize=32)
_decoded_lock = threading.Lock()


@functools.cache
def _head(kind: str, group_version: str) -> bytes:
    """The type meta an event puts before an item: one bytes object per resource."""
    return b'{"kind":%s,"apiVersion":%s,' % (_dump(kind), _dump(group_version))


def make_obj(rt: ResourceType, body: dict[str, Any], event: bytes | None = None,
             item: bytes | None = None) -> Obj:
    """An Obj from a decoded object and whichever of its encodings is at hand.

    Raises DecodeError when the object has no name or no valid resourceVersion.
    """
    meta = body.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) \
            or not meta["name"]:
        raise DecodeError(f"a {rt.kind} without metadata.name")
    rv = rv_int(str(meta.get("resourceVersion", "")))
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = {}
    head = _head(rt.kind, rt.group_version)
    typed = body
    if body.get("kind") != rt.kind or body.get("apiVersion") != rt.group_version:
        typed = {**body, "kind": rt.kind, "apiVersion": rt.group_version}
    if item is None or "kind" in body or "apiVersion" in body:
        # The bytes of the event without its type meta, when it leads as the apiserver
        # writes it; else encoded anew.
        if event is not None and typed is body and event.startswith(head):
            item = b"{" + event[len(head):]
        else:
            item = _dump({k: v for k, v in body.items() if k not in ("kind", "apiVersion")})
    return Obj(namespace=str(meta.get("namespace") or ""), name=meta["name"], rv=rv,
               labels=labels, fields=selectable_values(typed, rt), head=head, item=item)


def at_version(obj: Obj, rt: ResourceType, rv: int) -> Obj:
    """``obj`` as it is shown at another resourceVersion (a DELETED made up by a relist,
    or an object leaving a watch's selection: its last content at the event's version)."""
    body = dict(obj.body)
    body["metadata"] = {**body.get("metadata", {}), "resourceVersion": str(rv)}
    return make_obj(rt, body)


@dataclass(frozen=True)
class Change:
    """One event of the history: ``obj`` is the new state (the last one for DELETED),
    ``prev`` the state before it (None when the object was new to the state)."""

    seq: int
    rv: int
    type: str
    obj: Obj
    prev: Obj | None


@dataclass
class Read:
    """What a watch got from one ``SharedState.read``."""

    changes: list[Change]
    next_seq: int
    rv: int             # the state's version once these changes are applied
    lost: bool          # the watch fell behind the history: it must end
    caught_up: bool


class SharedState:
    """The objects and history of one resource; every method is thread-safe."""

    def __init__(self, rt: ResourceType, history_size: int) -> None:
        self.rt = rt
        self.history_size = max(16, history_size)
        self.cond = threading.Condition()
        self.objects: dict[Key, Obj] = {}
        self.rv = 0
        self.base_rv = 0
        self.synced = False
        self.synced_at = 0.0
        self._changes: list[Change] = []
        self._rvs: list[int] = []  # rv of each held change, for bisect
        self._first_seq = 0
        self._next_seq = 0
        self._sorted: list[Key] | None = None
        self.rewound_seq = 0  # a watch reading before this seq began before a rewind

    # -- the feed's side --------------------------------------------------------------------

    def replace(self, items: list[Obj], list_rv: int) -> int:
        """A complete list at ``list_rv``: the first one, or a relist.

        Returns how many events the difference made (0 for the first list).
        """
        with self.cond:
            new = {o.key: o for o in items}
            if not self.synced:
                self.objects = new
                self._sorted = None
                self.rv = self.base_rv = list_rv
                self.synced = True
                self.synced_at = time.time()
                self.cond.notify_all()
                return 0
            if list_rv < self.rv:
                self._rewind(new, list_rv)
                return 0
            changed: list[tuple[int, int, str, Obj, Obj | None]] = []
            for key, o in new.items():
                # A change the state should have had by its own version (an object of an
                # etcd backup, restored with bumped versions: older than the one held, or
                # back after its deletion) is told at the list's version: a watch at the
                # state's version has not seen it.
                at = o.rv if o.rv > self.rv else list_rv
                old = self.objects.get(key)
                if old is None:
                    changed.append((at, 0, "ADDED", o, None))
                elif old.rv != o.rv:
                    changed.append((at, 0, "MODIFIED", o, old))
            for key, old in self.objects.items():
                if key not in new:
                    changed.append((list_rv, 1, "DELETED", at_version(old, self.rt, list_rv),
                                    old))
            changed.sort(key=lambda c: (c[0], c[1], c[3].key))
            for rv, _, etype, o, prev in changed:
                self._append(etype, o, prev, max(rv, self.rv))
            self.objects = new
            self._sorted = None
            self.rv = max(self.rv, list_rv)
            self.synced_at = time.time()
            self.cond.notify_all()
            return len(changed)

    def _rewind(self, new: dict[Key, Obj], list_rv: int) -> None:
        """Start again at a list older than the state (the caller holds the lock).

        A version the state went past names another change in the cloud now: the history
        goes, and every open watch's position is left before what is held (its read is
        ``lost``), so none of them is carried silently across the gap.  A watch from before
        the list gets 410; one from a version past it (the lost ones) waits for the cloud.
        """
        self.objects = new
        self._sorted = None
        self._changes.clear()
        self._rvs.clear()
        self._next_seq += 1  # past every open watch's position
        self._first_seq = self.rewound_seq = self._next_seq
        self.rv = self.base_rv = list_rv
        self.synced_at = time.time()
        self.cond.notify_all()

    def apply(self, etype: str, obj: Obj) -> bool:
        """One upstream watch event; False when it is not newer than the state (ignored)."""
        with self.cond:
            if obj.rv <= self.rv:
                return False
            key = obj.key
            if etype == "DELETED":
                prev = self.objects.pop(key, None)
                if prev is not None:
                    self._sorted = None
            else:
                prev = self.objects.get(key)
                if prev is None:
                    self._sorted = None
                self.objects[key] = obj
            self._append(etype, obj, prev, obj.rv)
            self.rv = obj.rv
            self.cond.notify_all()
            return True

    def bookmark(self, rv: int) -> None:
        """The upstream says nothing changed up to ``rv``."""
        with self.cond:
            if rv > self.rv:
                self.rv = rv
                self.cond.notify_all()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def _append(self, etype: str, obj: Obj, prev: Obj | None, rv: int) -> None:
        self._changes.append(Change(self._next_seq, rv, etype, obj, prev))
        self._rvs.append(rv)
        self._next_seq += 1
        excess = len(self._changes) - self.history_size
        if excess >= max(1, self.history_size // 8):  # trim in batches, not per event
            self.base_rv = max(self.base_rv, self._rvs[excess - 1])
            del self._changes[:excess]
            del self._rvs[:excess]
            self._first_seq += excess

    # -- the clients' side ------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate`` (read under the lock) holds; wake() makes it look."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_rv(self, rv: int, timeout: float) -> bool:
        """Wait until the state is at least at ``rv`` (a list "not older than" it)."""
        with self.cond:
            return self.cond.wait_for(lambda: self.rv >= rv, timeout)

    def snapshot(self) -> tuple[int, list[Obj], int]:
        """(rv, every object in key order, the seq of the next change) at one moment."""
        with self.cond:
            if self._sorted is None:
                self._sorted = sorted(self.objects)
            objects = self.objects
            return self.rv, [objects[k] for k in self._sorted], self._next_seq

    def snapshot_at(self, rv: int) -> list[Obj] | None:
        """Every object as it was at ``rv`` (an exact list), in key order; None when changes
        after ``rv`` are no longer held (or it is past the state: callers wait for it)."""
        with self.cond:
            if rv < self.base_rv or rv > self.rv:
                return None
            objects = self._undone(self._first_seq + bisect.bisect_right(self._rvs, rv))
        return [objects[k] for k in sorted(objects)]

    def seq_after(self, rv: int) -> int | None:
        """The seq of the first change after ``rv``; None when changes after it are gone."""
        with self.cond:
            if rv < self.base_rv:
                return None
            i = bisect.bisect_right(self._rvs, rv)
            return self._first_seq + i

    def objects_at(self, seq: int) -> list[Obj]:
        """The objects as they were before change ``seq`` (a watch's starting point): the
        current ones with the held changes from ``seq`` on undone, newest first."""
        with self.cond:
            return list(self._undone(seq).values())

    def _undone(self, seq: int) -> dict[tuple[str, str], Obj]:
        """The objects by key with the held changes from ``seq`` on undone, newest first
        (the caller holds the lock)."""
        objects = dict(self.objects)
        for c in reversed(self._changes[max(0, seq - self._first_seq):]):
            if c.prev is None:
                objects.pop(c.obj.key, None)
            else:
                objects[c.obj.key] = c.prev
        return objects

    def read(self, seq: int, timeout: float, stop: Any = None,
             max_bytes: int | None = None) -> Read:
        """Changes from ``seq`` on, waiting up to ``timeout`` seconds when there are none.

        ``stop`` is a callable that ends the wait early when it turns true.  ``max_bytes``
        bounds one read: changes are taken until their objects hold that many bytes (at
        least one change), so that a watch far behind takes the history in batches, never
        a copy of all of it at once; ``caught_up`` says whether the read reached the end.
        """
        with self.cond:
            if seq >= self._next_seq and timeout > 0:
                self.cond.wait_for(
                    lambda: seq < self._next_seq or (stop is not None and stop()), timeout)
            if seq < self._first_seq:
                return Read([], seq, self.rv, True, False)
            start = seq - self._first_seq
            end = len(self._changes)
            if max_bytes is not None:
                held = 0
                for i in range(start, end):
                    held += len(self._changes[i].obj.item)
                    if held >= max_bytes:
                        end = i + 1
                        break
            out = self._changes[start:end]
            if end < len(self._changes):
                # Only part of what is held: the version stops at the last change taken.
                return Read(out, self._first_seq + end, out[-1].rv, False, False)
            return Read(out, self._next_seq, self.rv, False, True)
