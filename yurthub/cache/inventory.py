"""What the cache holds, per component and resource: for ``yurthub cache ls`` and ``/status``.

One shape for both: the CLI reads a tree (running hub or not) with storage.inspect's
TreeReader, the hub reads its open DiskStore; ``summarize`` turns either into rows of
objects, bytes and views (selectors, last sync, stale and incomplete flags).  Also here:
the content check ``yurthub cache verify`` applies to every object file (the one the hub's
recovery applies, cache/integrity.py), and ``purge``, which empties collections through
store transactions, so a purge is as crash-safe as any commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from yurthub.cache.integrity import body_problem
from yurthub.cache.views import CollectionState
from yurthub.storage import CollectionKey, DiskStore


class Tree(Protocol):
    """What ``summarize`` needs of a tree: its collections, their states and sizes."""

    def collections(self) -> list[CollectionKey]: ...

    def state(self, ck: CollectionKey) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ViewRow:
    selector: str            # ViewKey text: namespace ("*" = all), l:labels, f:fields
    rv: int
    synced_at: float
    updated_at: float
    stale: str
    incomplete: str

    def to_json(self, now: float) -> dict[str, Any]:
        return {"selector": self.selector, "resourceVersion": self.rv,
                "lastSync": iso(self.synced_at),
                "ageSeconds": round(max(0.0, now - self.synced_at)),
                "lastUpdate": iso(self.updated_at), "stale": bool(self.stale),
                "staleReason": self.stale, "incomplete": bool(self.incomplete),
                "incompleteReason": self.incomplete}


@dataclass(frozen=True)
class CollectionRow:
    component: str
    resource: str            # plural name
    group: str
    version: str
    namespaced: bool
    kind: str
    objects: int
    bytes: int
    views: list[ViewRow] = field(default_factory=list)
    lost: int = 0            # objects set aside as damaged, not yet healed
    unreadable: str = ""     # why its state cannot be read (the hub's start sets it aside)

    @property
    def dirname(self) -> str:
        return f"{self.resource}.{self.version}.{self.group or 'core'}"

    @property
    def resource_ref(self) -> str:
        """kubectl's spelling: ``pods``, ``leases.coordination.k8s.io``."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def last_sync(self) -> float:
        return max((v.synced_at for v in self.views), default=0.0)

    @property
    def stale(self) -> str:
        """Why the collection cannot be trusted whole ("" when every view is fresh)."""
        if self.unreadable:
            return f"state unreadable: {self.unreadable}"
        for v in self.views:
            if v.incomplete:
                return f"view {v.selector} incomplete: {v.incomplete}"
        for v in self.views:
            if v.stale:
                return f"view {v.selector} stale: {v.stale}"
        return ""

    def to_json(self, now: float) -> dict[str, Any]:
        return {"component": self.component, "resource": self.resource, "group": self.group,
                "version": self.version, "namespaced": self.namespaced, "kind": self.kind,
                "objects": self.objects, "bytes": self.bytes,
                "lastSync": iso(self.last_sync) if self.views else None,
                "ageSeconds": round(max(0.0, now - self.last_sync)) if self.views else None,
                "stale": bool(self.stale), "staleReason": self.stale, "lost": self.lost,
                "views": [v.to_json(now) for v in self.views]}


def summarize(tree: Tree, sizes: dict[CollectionKey, tuple[int, int]],
              component: str | None = None,
              set_aside: Callable[[CollectionKey], str] = lambda ck: "") -> list[CollectionRow]:
    """Rows for every collection of ``tree`` (of ``component``); ``sizes`` holds
    (objects, bytes) per collection; ``set_aside`` says why the hub's start set a
    collection's state aside (shown until a list gives it a view again)."""
    rows = []
    for ck in tree.collections():
        if component is not None and ck.component != component:
            continue
        unreadable = ""
        try:
            state = CollectionState.from_json(tree.state(ck) or {})
        except ValueError as e:  # shown as it is; the hub's next start sets it aside
            state, unreadable = CollectionState(), str(e)
        if not state.views and set_aside(ck):
            unreadable = (f"set aside at the hub's start ({set_aside(ck)}): its lists are "
                          "refused offline until the cloud's next list")
        objects, size = sizes.get(ck, (0, 0))
        views = [ViewRow(str(v.key), v.rv, v.synced_at, v.updated_at, v.stale, v.incomplete)
                 for v in sorted(state.views.values(), key=lambda v: str(v.key))]
        rows.append(CollectionRow(ck.component, ck.resource, ck.group, ck.version,
                                  ck.namespaced, state.kind, objects, size, views,
                                  len(state.lost), unreadable))
    return sorted(rows, key=lambda r: (r.component, r.resource, r.group, r.version))


def store_rows(store: DiskStore) -> list[CollectionRow]:
    """``summarize`` of the hub's open store."""
    stats = store.stats()
    sizes = {ck: (cs.objects, cs.bytes) for ck, cs in stats.collections.items()}
    return summarize(store, sizes, set_aside=store.state_set_aside)


def body_checker(tree: Tree) -> Any:
    """The content check of ``yurthub cache verify``: what recovery would quarantine."""
    kinds: dict[CollectionKey, str] = {}

    def check(ck: CollectionKey, ns: str, name: str, body: bytes) -> str:
        if ck not in kinds:
            try:
                kinds[ck] = str((tree.state(ck) or {}).get("kind") or "")
            except ValueError:  # the state's own problem is reported on its own line
                kinds[ck] = ""
        return body_problem(ck, ns, name, body, kinds[ck])
    return check


def purge(store: DiskStore, keys: Iterable[CollectionKey]) -> int:
    """Empty collections of ``store``: every object deleted, every view and lost mark
    dropped, the watch history reset (a resume from before gets 410 and relists).  The
    collection's type is kept.  One transaction per collection; returns objects removed.

    The caller owns the store's writer side (the CLI with the lock, or the hub's writer
    thread, which must then forget what it held of those collections).
    """
    removed = 0
    for ck in keys:
        old = CollectionState.from_json(store.state(ck) or {})
        entries = store.entries(ck)
        top = max([v.rv for v in old.views.values()] + [0])
        txn = store.transaction(ck)
        with txn:
            for ns, name in list(entries):
                txn.delete(ns, name)
            txn.set_state(CollectionState(old.kind, old.api_version, old.list_kind).to_json())
            txn.reset_history(max(top, 1))
            txn.commit()
        removed += len(entries)
    return removed


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else ""


def age(seconds: float) -> str:
    """kubectl's ages (apimachinery's HumanDuration): ``45s``, ``5m30s``, ``3h``, ``2d``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 120:
        return f"{max(s, 0)}s"
    m, h = s // 60, s // 3600
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        days = (h // 24) % 365
        return f"{h // 24 // 365}y{days}d" if days else f"{h // 24 // 365}y"
    return f"{h // 24 // 365}y"
