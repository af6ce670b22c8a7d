"""Stale marks: the cache writer's record of views that no longer follow the cloud.

A view becomes stale when events for it were lost (a bug, a failed commit), when a list or
watch of its collection passed uncached (a full disk stopped caching), or when the response
filters of its (agent, group, resource) changed (then it is also rewritten by its next
list).  The mark goes to disk before anyone reads the view; while it cannot be written (a
full disk) it is held here and tried again every round of the writer.

design: ``StaleMarks`` belongs to the ``CacheWriter`` and runs on its thread, over the
writer's own collections (handed in: the map and the factory of a collection); only
``unsynced`` is shared: request threads add to it, the writer thread removes from it, the
offline reader treats what it holds as stale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from yurthub.cache.collection import CollectionWriter
from yurthub.cache.entry import Entry
from yurthub.cache.mutation import Mutation
from yurthub.errors import StorageError
from yurthub.kube.requestinfo import agent_name
from yurthub.storage import CollectionKey

log = logging.getLogger(__name__)


def agent_target(ck: CollectionKey) -> tuple[str, str, str]:
    """(agent, group, resource) of a collection: the response filters go by the User-Agent's
    name, and a component is that name or ``name@...`` (``kube-proxy@pod``; cache/policy.py
    reads agents the same way), so a change of filters is one of every component of it."""
    return agent_name(ck.component), ck.group, ck.resource


class StaleMarks:
    """The stale marks of the writer's collections: made, retried, forgotten."""

    def __init__(self, collections: dict[CollectionKey, CollectionWriter],
                 collection: Callable[[Entry], CollectionWriter]) -> None:
        self._collections = collections  # the writer's: read here, never changed
        self._collection = collection
        self._later: dict[CollectionKey, tuple[str, str]] = {}  # (why, op)
        # (agent, group, resource) -> when and why its response filters last changed
        self._refiltered: dict[tuple[str, str, str], tuple[float, str]] = {}
        # Collections whose views could not follow the cloud (a list or watch passed while a
        # full disk stopped caching) and are not yet marked stale on disk: the offline reader
        # takes their views as stale meanwhile.  Request threads add, this thread removes.
        self.unsynced: dict[CollectionKey, str] = {}

    def refiltered(self, ck: CollectionKey, default: tuple[float, str]) -> tuple[float, str]:
        """When and why the response filters of ``ck`` last changed (``default``: never)."""
        return self._refiltered.get(agent_target(ck), default)

    def mark_views_refiltered(self, targets: set[tuple[str, str, str]], entries: list[Entry],
                              why: str, at: float) -> None:
        """Writer thread: the response filters of these (agent, group, resource) changed
        at ``at``; every view of their collections (``entries``: those on disk) becomes stale
        and is rewritten by its next list (committed at once: the new filter inputs,
        persisted after this, must never be on disk without the marks).  Answers asked for
        before ``at`` were filtered the old way, also those of a collection's first list
        still streaming in: what they make is marked too (``CollectionWriter.refiltered``)."""
        for target in targets:
            self._refiltered[target] = (at, why)
        colls = {e.ck: self._collection(e) for e in entries if e.ck is not None}
        colls.update((ck, c) for ck, c in self._collections.items()
                     if agent_target(ck) in targets)
        for coll in colls.values():
            coll.refiltered = max(coll.refiltered, (at, why))
            self.mark(coll, why, op="refilter")

    def missed(self, entry: Entry, why: str) -> None:
        """Writer thread: a list or watch of ``entry``'s collection passed uncached (the
        disk is full), so its views no longer follow the cloud: stale, on disk when there is
        room (``unsynced`` holds it in memory until then)."""
        self.mark(self._collection(entry), why)

    def mark(self, coll: CollectionWriter, why: str, op: str = "stale") -> None:
        """Mark every view of ``coll`` stale (``op``: "stale" or "refilter"), on disk before
        anyone reads it; while that cannot be written (a full disk) it is tried again every
        round."""
        try:
            for view in list(coll.state.views):
                coll.apply(Mutation(op, view=view, why=why))
            coll.flush()
        except StorageError as e:
            if coll.ck not in self._later:
                log.warning("cannot mark the views of %s stale yet (%s); trying again once "
                            "there is room", coll.ck, e)
            # A refilter waiting includes the plain marking; it is never downgraded.
            if self._later.get(coll.ck, ("", ""))[1] != "refilter":
                self._later[coll.ck] = (why, op)
            return
        except Exception:
            log.exception("marking the views of %s stale failed", coll.ck)
        self._later.pop(coll.ck, None)
        self.unsynced.pop(coll.ck, None)

    def retry(self, accepting: bool) -> None:
        """Each round: the marks that could not be written, again while the disk takes
        writes (``accepting``); a collection's list still streaming in is left alone."""
        for ck, (why, op) in list(self._later.items() if accepting else ()):
            later = self._collections.get(ck)
            if later is None:
                del self._later[ck]  # evicted meanwhile: no view is left to trust
            elif later.assembly is None:
                self.mark(later, why, op)

    def forget(self, ck: CollectionKey) -> None:
        """``ck`` was evicted: no mark of it is left to write."""
        self._later.pop(ck, None)
        self.unsynced.pop(ck, None)
