"""One cached collection (component + resource): the commit rules of the cache.

design: the writer thread owns one CollectionWriter per collection.  Mutations of a batch
(watch events, single objects) go into one storage transaction that the writer commits
at the end of each round (a group commit).  A list is assembled into its own transaction
page by page; while it is open, every other mutation of the collection is deferred and
applied after it, so the list's snapshot never overwrites something newer and rules stay
simple: an object is upserted only when its resourceVersion is newer than the stored
one, and removed only when the stored copy is older than the removal.  Those rules guard
against answers that cross (a list asked for before a watch event arrived, answered
after it); an answer to a request sent after the newest version the collection holds was
seen cannot be older than what the cache holds, so a list or a get asked for then is the
whole truth for what it selects, whatever the versions say ("Replace", as client-go's
reflector does).  Lower versions in such an answer mean the cloud's went backwards (etcd
restored from a backup): the list's view equals the list, the collection's other views
are stale until listed again, and the watch history starts again at the list.  The cache holds
*filtered* objects, so a change of a client's response filters changes bytes without
changing versions: it marks the collection's views stale and to be rewritten ("refilter"),
and until those views are listed again each object is written once more at the version
stored (``CollectionWriter.replaces``); otherwise a relist of unchanged objects costs no
write.  An answer asked for before the change (``asked_at``) was filtered the old way: it
neither rewrites nor makes a view marked so fresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from yurthub.cache.mutation import (
    FREEZE_ABOVE,
    ListAssembly,
    Meta,
    Mutation,
    freeze_long_lived,
    is_current,
)
from yurthub.cache.views import CollectionState, Selectors, View, ViewKey, covers, parse_selectors
from yurthub.errors import BadRequest, InvalidKeyError, StorageError
from yurthub.gil import pace
from yurthub.kube.resources import ResourceType
from yurthub.storage import CollectionKey, DiskStore, Transaction, removed_record

log = logging.getLogger(__name__)


class CollectionWriter:
    """Applies mutations to one collection; only the writer thread calls it."""

    def __init__(self, store: DiskStore, ck: CollectionKey, rt: ResourceType,
                 on_commit: Callable[[str, int], None] | None = None,
                 on_views_forgotten: Callable[[int], None] | None = None,
                 on_went_back: Callable[[CollectionKey, int, float], None] | None = None
                 ) -> None:
        self.store = store
        self.ck = ck
        self.rt = rt
        self.state = CollectionState.from_json(store.state(ck) or {})
        self._txn: Transaction | None = None
        # The error that aborted the batch's transaction mid-batch (a put or delete found
        # the disk full, say): the batch's commit and later writes report it, not the
        # "transaction is finished" that the aborted transaction would say.
        self._txn_failed: StorageError | None = None
        self._overlay: dict[tuple[str, str], Meta | None] = {}
        self._history: list[dict[str, Any]] = []
        self._state_dirty = False
        self.assembly: ListAssembly | None = None
        self.deferred: list[Mutation] = []
        self._view_selectors: dict[ViewKey, Selectors] = {}
        # Objects written again at their stored version since the views were marked to be
        # rewritten (state.rewrite), so that repeated gets and lists do it once each; in
        # memory only: after a restart each is written once more, which is merely slower.
        self._rewritten: set[tuple[str, str]] = set()
        # When (monotonic) and why the client's filters last changed in this process
        # (StaleMarks.mark_views_refiltered): answers asked for before were filtered the old way.
        self.refiltered: tuple[float, str] = (0.0, "")
        self._on_commit = on_commit or (lambda kind, n: None)
        self._on_views_forgotten = on_views_forgotten or (lambda n: None)
        # Told (collection, the cloud's version now, when the request that showed it was
        # sent) when a quorum answer proves the cloud's versions went back.
        self._on_went_back = on_went_back or (lambda ck, rv, asked_at: None)
        # The newest resourceVersion the collection holds and when (monotonic) it was seen:
        # a request sent after that moment is answered with everything the cache holds or
        # newer (see after_newest).  At start, everything stored was seen before now.
        self._newest = (max((v.rv for v in self.state.views.values()), default=0), 0.0)

    # -- reading what is stored -------------------------------------------------------------

    def stored_meta(self, namespace: str, name: str) -> Meta | None:
        key = (namespace, name)
        if key in self._overlay:
            return self._overlay[key]
        entry = self.store.entries(self.ck).get(key)
        return entry.meta if entry is not None else None

    def replaces(self, ns: str, name: str, stored: Meta, rv: int, asked_at: float) -> bool:
        """Should an object at ``rv`` replace the stored one?  When ``is_current`` says so,
        and also at the very version stored while a view of the collection waits to be
        rewritten under new response filters (once per object: its bytes may differ),
        if it was asked for since they changed."""
        if is_current(stored, rv):
            return True
        return (bool(self.state.rewrite) and rv == int(stored.get("rv", 0))
                and asked_at >= self.refiltered[0] and (ns, name) not in self._rewritten)

    def after_newest(self, asked_at: float) -> bool:
        """Was a request sent after the newest version this collection holds was seen?

        Then the cloud answered it (a list, a get: not a watch, which replays from the
        version asked) from a state at least as new as any the cache holds, etcd's
        revisions being one order: an object older there than here, or missing, is the
        cloud's truth, not a late answer.
        """
        return asked_at > self._newest[1]

    def _saw(self, rv: int) -> None:
        if rv > self._newest[0]:
            self._newest = (rv, time.monotonic())

    def _went_back(self, rv: int, why: str, asked_at: float) -> None:
        """The cloud answered with a version older than one it showed before: every view
        holds state the cloud may no longer have (the listed one is then synced again), and
        the watches resumed from its lost versions are told (``on_went_back``)."""
        log.warning("cache %s: the cloud's resourceVersions went back from %d to %d (%s); "
                    "its views are stale until listed again", self.ck, self._newest[0], rv,
                    why)
        for key in list(self.state.views):
            self._mark_stale(key, f"the cloud's resourceVersions went back from "
                                  f"{self._newest[0]} to {rv} (etcd restored?)")
        self._newest = (rv, time.monotonic())
        self._on_went_back(self.ck, rv, asked_at)

    def _cloud_was_at(self, rv: int, asked_at: float, why: str) -> None:
        """Proof from elsewhere (the node Lease): the cloud was at ``rv`` when it answered
        a request sent at ``asked_at``.  Versions above it seen before then are of a past
        the cloud lost: the views are stale, the history starts again at ``rv``."""
        if 0 < rv < self._newest[0] and self._newest[1] < asked_at:
            self._went_back(rv, why, asked_at)
            self._restart_history(rv)

    def view_selectors(self, key: ViewKey) -> Selectors | None:
        sel = self._view_selectors.get(key)
        if sel is None:
            try:
                sel = parse_selectors(key.namespace, key.labels, key.fields, self.rt)
            except BadRequest:
                return None
            self._view_selectors[key] = sel
        return sel

    def learn_type(self, kind: str, api_version: str) -> None:
        if not isinstance(kind, str) or not isinstance(api_version, str):
            return  # not what an apiserver sends; never worth a crash of the writer
        if kind and (kind != self.state.kind or api_version != self.state.api_version):
            self.state.kind, self.state.api_version = kind, api_version
            self.state.list_kind = kind + "List"
            self._state_dirty = True

    # -- batched mutations ------------------------------------------------------------------

    def apply(self, m: Mutation) -> None:
        if self.assembly is not None:
            self.deferred.append(m)
            return
        if m.op == "upsert":
            # (an answer asked after the newest version seen is the cloud's truth, even of
            # an object a view saw go: etcd restored from a backup brings it back)
            truth = m.consistent and self.after_newest(m.asked_at)
            if m.local or truth or not self._seen_gone(m.namespace, m.name, m.meta):
                self._upsert(m.namespace, m.name, m.raw, m.meta, local=m.local,
                             asked_at=m.asked_at, answer=m.consistent)
        elif m.op == "delete":
            self._delete(m.namespace, m.name, m.rv)
        elif m.op == "event":
            self._event(m)
        elif m.op == "bookmark":
            self._saw(m.rv)
            if m.view is not None and self._extends(m.view, m.rv):
                self.state.advance(m.view, m.rv)
                self._state_dirty = True
        elif m.op == "stale" and m.view is not None:
            self._mark_stale(m.view, m.why)
        elif m.op == "refilter" and m.view is not None:
            self._mark_refiltered(m.view, m.why)
        elif m.op == "lost":
            self._lost(m.namespace, m.name, m.meta or None, m.why)
        elif m.op == "went-back":
            self._cloud_was_at(m.rv, m.asked_at, m.why)

    def _txn_for_batch(self) -> Transaction:
        if self._txn is None:
            self._txn = self.store.transaction(self.ck)
        return self._txn

    def _stage(self, ns: str, name: str, put: tuple[bytes, Meta] | None) -> None:
        """Put (or, with None, delete) an object in the batch's transaction.  A failure
        other than a bad key aborts that transaction: it is remembered for flush()."""
        if self._txn_failed is not None:
            raise self._txn_failed
        txn = self._txn_for_batch()
        try:
            if put is None:
                txn.delete(ns, name)
            else:
                txn.put(ns, name, *put)
        except InvalidKeyError:
            raise
        except StorageError as e:
            self._txn_failed = e
            raise

    def _upsert(self, ns: str, name: str, raw: bytes, meta: Meta, local: bool = False,
                asked_at: float = 0.0, answer: bool = False) -> bool:
        """``answer``: the object is the cloud's state when it answered a get without a
        resourceVersion or a write, not a watch event (replayed from the version the watch
        asked) nor a watch cache's copy (which may lag)."""
        old = self.stored_meta(ns, name)
        if local:
            meta = {**meta, "local": True}
        elif old is not None and not self.replaces(ns, name, old, meta["rv"], asked_at):
            if not (answer and 0 < meta["rv"] < int(old.get("rv", 0))
                    and self.after_newest(asked_at)):
                return False  # we hold something newer, or this very version already
            self._went_back(meta["rv"], f"{ns}/{name} at {meta['rv']} after {old.get('rv')}",
                            asked_at)
            self._restart_history(meta["rv"])
        elif self.state.rewrite and old is not None and old.get("rv") == meta["rv"]:
            self._rewritten.add((ns, name))  # forgotten if the batch fails (discard)
        self._stage(ns, name, (raw, meta))
        self._overlay[(ns, name)] = meta
        if not local:
            self._saw(meta["rv"])
        if self.state.lost.pop((ns, name), None) is not None:
            self._state_dirty = True  # cached whole again
        return True

    def _restart_history(self, rv: int) -> None:
        """The history's versions are of a past the cloud lost: it starts again at ``rv``
        (the batch's records go too), so no lost change is replayed to a watch."""
        if self._txn_failed is not None:
            raise self._txn_failed
        self._history = []
        try:
            self._txn_for_batch().reset_history(rv)
        except StorageError as e:
            self._txn_failed = e
            raise

    def _seen_gone(self, ns: str, name: str, meta: Meta) -> bool:
        """Is a single object's answer (a get, create, update or patch) older than its
        removal?  Its response can reach the writer after the watch's DELETED (a pod's
        last status patch, then its deletion): a fresh view that holds the object's
        selectors, complete at or past its version and without it, saw it go."""
        rv = int(meta.get("rv", 0))
        if rv <= 0 or self.stored_meta(ns, name) is not None or (ns, name) in self.state.lost:
            return False  # a quarantined file is missing, not gone: this answer heals it
        views = self.state.views
        return any(not (views[key].stale or views[key].incomplete or views[key].rv < rv)
                   for key, _ in self._views_of(ns, name, meta))

    def _lost(self, ns: str, name: str, meta: Meta | None, why: str) -> None:
        """An object's file was quarantined: every view that held it is incomplete (those
        its stored labels and fields matched; every view of its namespace when they are
        not known), and a get of it is answered 503 until it is cached again."""
        for key in list(self.state.views):
            sel = self.view_selectors(key)
            if meta is not None and sel is not None:
                held = sel.matches(ns, name, meta.get("labels") or {}, meta.get("fields") or {})
            else:
                held = not key.namespace or key.namespace == ns
            if held:
                log.warning("cache view %s %s is incomplete: %s", self.ck, key, why)
                self.state.mark_incomplete(key, why)
        self.state.lost[(ns, name)] = why
        self._state_dirty = True

    def _delete(self, ns: str, name: str, rv: int) -> bool:
        old = self.stored_meta(ns, name)
        if old is None or (rv and old.get("rv", 0) >= rv):
            return False  # gone already, or recreated/updated after this removal
        self._stage(ns, name, None)
        self._overlay[(ns, name)] = None
        return True

    def _extends(self, key: ViewKey, rv: int) -> bool:
        view = self.state.views.get(key)
        return view is not None and not view.stale and rv > view.rv

    def _event(self, m: Mutation) -> None:
        prev = self.stored_meta(m.namespace, m.name)
        if m.event_type == "DELETED":
            changed = self._delete(m.namespace, m.name, m.rv)
        else:
            changed = self._upsert(m.namespace, m.name, m.raw, m.meta, asked_at=m.asked_at)
        self._saw(m.rv)
        if m.view is not None and self._extends(m.view, m.rv):
            self.state.advance(m.view, m.rv)
            self._state_dirty = True
        if changed:
            self._history.append({
                "rv": m.rv, "type": m.event_type, "ns": m.namespace, "name": m.name,
                "object": m.raw.decode("utf-8"),
                "meta": {"labels": m.meta.get("labels", {}), "fields": m.meta.get("fields", {})},
                "prev": None if prev is None else {"labels": prev.get("labels", {}),
                                                   "fields": prev.get("fields", {})},
            })

    def _mark_stale(self, key: ViewKey, why: str) -> None:
        view = self.state.views.get(key)
        if view is not None and not view.stale:
            log.warning("cache view %s %s is stale: %s", self.ck, key, why)
            self.state.mark_stale(key, why)
            self._state_dirty = True

    def _mark_refiltered(self, key: ViewKey, why: str) -> None:
        if key not in self.state.views:
            return
        self._rewritten.clear()  # what was rewritten before this change is old again
        if key not in self.state.rewrite:
            log.warning("cache view %s %s is stale until its next list rewrites it: %s",
                        self.ck, key, why)
            self.state.mark_refiltered(key, why)
            self._state_dirty = True

    def pending(self) -> bool:
        return self._txn is not None or self._state_dirty or bool(self._history)

    def discard(self) -> None:
        """Throw away everything not committed (after a bug): the disk is the truth again."""
        for txn in (self._txn, self.assembly.txn if self.assembly is not None else None):
            if txn is not None:
                txn.abort()
        self._txn, self.assembly, self._txn_failed = None, None, None
        self._overlay.clear()
        self._history = []
        self.deferred = []
        self._state_dirty = False
        self._rewritten.clear()
        self.state = CollectionState.from_json(self.store.state(self.ck) or {})

    def flush(self) -> int:
        """Commit the batch; returns the number of changed objects (raises StorageError)."""
        if not self.pending():
            return 0
        txn = self._txn_for_batch()
        n = len(self._overlay)
        try:
            if self._txn_failed is not None:
                raise self._txn_failed
            if self._history:
                txn.append_history(self._history)
            if self._state_dirty:
                txn.set_state(self.state.to_json())
            txn.commit()
        except StorageError:
            txn.abort()
            # What is on disk is the truth again: forget the batch, reload the state.
            self.state = CollectionState.from_json(self.store.state(self.ck) or {})
            self._rewritten.clear()
            raise
        finally:
            self._txn, self._txn_failed = None, None
            self._overlay.clear()
            self._history = []
            self._state_dirty = False
        self._on_commit("batch", n)
        return n

    # -- lists ------------------------------------------------------------------------------

    def begin_list(self, view: ViewKey, selectors: Selectors,
                   asked_at: float | None = None, consistent: bool = True) -> ListAssembly:
        """Start assembling a list (the batch is flushed first, so the snapshot is current);
        ``asked_at`` and ``consistent`` as Entry's (None: now)."""
        self.flush()
        self.assembly = ListAssembly(view, selectors, self.store.transaction(self.ck),
                                     asked_at=time.monotonic() if asked_at is None else asked_at,
                                     consistent=consistent)
        return self.assembly

    def list_items(self, a: ListAssembly, items: list[tuple[str, str, bytes, Meta]]) -> None:
        entries = self.store.entries(self.ck)
        rewriting = bool(self.state.rewrite)  # (the common relist asks no more than before)
        whole = self.after_newest(a.asked_at)
        for ns, name, raw, meta in items:
            pace()
            a.seen.add((ns, name))
            a.objects += 1
            old = entries.get((ns, name))
            if old is not None and not is_current(old.meta, meta["rv"]):
                if whole and 0 < meta["rv"] < int(old.meta.get("rv", 0)):
                    pass  # older in the cloud than here: the cloud went back
                elif not (rewriting
                          and self.replaces(ns, name, old.meta, meta["rv"], a.asked_at)):
                    continue  # unchanged (or newer) on disk: nothing to write
                else:
                    a.rewritten.append((ns, name))  # the very version stored, filtered anew
            a.txn.put(ns, name, raw, meta)
            a.written += 1
        a.touched = time.monotonic()

    def commit_list(self, a: ListAssembly) -> int:
        """The terminal page arrived whole: swap the list in atomically."""
        entries = self.store.entries(self.ck)
        removed: list[tuple[str, str]] = []
        doubtful: set[ViewKey] = set()
        # Asked for after the newest version held was seen: the list is the whole truth.
        whole = self.after_newest(a.asked_at)
        # Older than what was seen, by a quorum read: the cloud's versions went back.  (A
        # watch cache may lag behind a write's answer: its list is the truth as of its
        # version, and its watch carries it on.)
        back = whole and a.consistent and 0 < a.list_rv < self._newest[0]
        for (ns, name), entry in entries.items():
            pace()
            if (ns, name) in a.seen:
                continue
            meta = entry.meta
            if not a.selectors.matches(ns, name, meta.get("labels", {}), meta.get("fields", {})):
                continue
            if meta.get("rv", 0) >= a.list_rv > 0 and not whole:
                continue  # written after this snapshot
            a.txn.delete(ns, name)
            removed.append((ns, name))
            if not a.view.unselected:
                doubtful.update(self._other_views_holding(a, ns, name, meta))
        before = self.state.views.get(a.view)
        # Nothing to tell: the same objects again, into a view that was fresh already.
        unchanged = (not a.written and not removed and before is not None
                     and not before.stale and not before.incomplete)
        now = time.time()
        # A list asked for before the client's filters last changed: what it holds is
        # committed, but the views it would make fresh stay (or, new, become) marked.
        keep: dict[ViewKey, str] = {} if a.asked_at >= self.refiltered[0] else {
            a.view: self.refiltered[1], **{k: self.state.views[k].stale
                                           for k in self.state.rewrite}}
        if back:
            # An etcd restore: whatever the other views hold is of a past the cloud no
            # longer has, and the history's versions will be used again for other changes.
            self._went_back(a.list_rv, f"a list of {a.view} at {a.list_rv}", a.asked_at)
            a.txn.reset_history(a.list_rv)
        elif whole and 0 < a.list_rv < self._newest[0]:
            # A watch cache behind what was seen: objects went back to its version, and its
            # watch will bring their changes again.  Recorded twice, they would be replayed
            # twice: the history starts again, resumes from before the newest are 410.
            a.txn.reset_history(self._newest[0])
        self.state.synced(a.view, a.list_rv, now)
        for ns, name in list(self.state.lost):
            # Listed again (and so written), or gone from the cloud: no longer lost.
            if (ns, name) in a.seen or (a.view.unselected and a.view.namespace in ("", ns)):
                del self.state.lost[(ns, name)]
        for key, view in list(self.state.views.items()):
            sel = self.view_selectors(key)
            if key != a.view and sel is not None and (view.rv < a.list_rv or back) \
                    and covers(self.state.views[a.view], sel, a.selectors):
                self.state.synced(key, a.list_rv, now)  # a subset of a fresh list is fresh
        for key, why in keep.items():
            self.state.mark_refiltered(key, why)
        for key in doubtful:
            self.state.mark_stale(key, f"an object left {a.view} and may still belong here")
        forgotten = self.state.bound(a.view)
        for key in forgotten:
            self._view_selectors.pop(key, None)
        try:
            if removed:  # committed with the deletes: after a crash they are gone, not lost
                a.txn.append_history([removed_record(a.list_rv, removed)])
            a.txn.set_state(self.state.to_json())
            a.txn.commit()
        except StorageError:
            a.txn.abort()
            self.state = CollectionState.from_json(self.store.state(self.ck) or {})
            self.assembly = None
            # What arrived while the list was assembled is newer than the disk: apply it
            # (a quota or a full disk now refuses lists more often than I/O errors did).
            self._replay_deferred()
            raise
        finally:
            self.assembly = None
        self._saw(a.list_rv)
        if self.state.rewrite:
            self._rewritten.update(a.rewritten)
        else:
            self._rewritten.clear()  # every view is rewritten: nothing is left to do twice
        # why: every relist (a client's restart, each return of the cloud) was a line per
        # collection even when nothing had changed
        log.log(logging.DEBUG if unchanged else logging.INFO,
                "cached list %s %s: %d objects at resourceVersion %d (%d removed%s)",
                self.ck, a.view, a.objects, a.list_rv, len(removed),
                f", {len(a.rewritten)} rewritten" if a.rewritten else "")
        if forgotten:
            self._on_views_forgotten(len(forgotten))
        self._on_commit("list", a.objects)
        if a.objects >= FREEZE_ABOVE:
            freeze_long_lived()
        self._replay_deferred()
        return a.objects

    def abort_list(self, a: ListAssembly, why: str) -> None:
        if self.assembly is a:
            a.txn.abort()
            self.assembly = None
            log.info("list of %s %s not cached: %s", self.ck, a.view, why)
            self._replay_deferred()

    def _views_of(self, ns: str, name: str, meta: Meta) -> list[tuple[ViewKey, Selectors]]:
        """The views whose selectors the object (its index ``meta``) matches."""
        labels, fields = meta.get("labels") or {}, meta.get("fields") or {}
        return [(key, sel) for key in self.state.views
                if (sel := self.view_selectors(key)) is not None
                and sel.matches(ns, name, labels, fields)]

    def _other_views_holding(self, a: ListAssembly, ns: str, name: str, meta: Meta
                             ) -> list[ViewKey]:
        listed = View(key=a.view)  # a subset of the listed view: the object left it too
        return [key for key, sel in self._views_of(ns, name, meta)
                if key != a.view and not covers(listed, sel, a.selectors)]

    def _replay_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        for m in deferred:
            self.apply(m)

