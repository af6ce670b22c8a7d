"""The cache writer: the one thread that reads every tee and owns every write to the cache.

design: tees are registered through a queue and a wake-up pipe; the thread waits in a
``selectors`` loop on the read ends of all pipes.  Each readable pipe is drained (up to a
slice, so one big list cannot starve the watches) and the tee pumped so its backlog moves
into the pipe: a list body is spliced into its spool file inside the kernel and decoded
at its end, other bodies are fed to their handler as they come.  At end of file the
tee's outcome (whole, broken, overflow) decides what may be committed.  After every round the
collections' batched mutations are committed together (a group commit).  A handler that
must wait for another one (a continue page, a watch that may follow the one before it)
is parked: its pipe is left unread until the other handler finishes.  Views that lose
track of the cloud are marked stale by the writer's ``StaleMarks`` (staleness.py).
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from yurthub import linux
from yurthub.cache import inventory
from yurthub.cache.collection import CollectionWriter
from yurthub.cache.entry import Entry
from yurthub.cache.handlers import Handler, NonResourceHandler, ObjectHandler, WatchHandler
from yurthub.cache.list_handler import ListHandler
from yurthub.cache.localwrites import ANY, LocalWrite, commit_local
from yurthub.cache.mutation import Mutation
from yurthub.cache.space import SpaceGuard, is_no_space, is_read_only
from yurthub.cache.staleness import StaleMarks
from yurthub.cache.tee import Outcome, Tee
from yurthub.cache.views import RecentEvents, ViewKey
from yurthub.errors import InvalidKeyError, StorageError
from yurthub.metrics import Metrics
from yurthub.storage import CollectionKey, DiskStore
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
SLICE_BYTES = 4 << 20        # per pipe per round
PAGE_TIMEOUT = 60.0          # an abandoned paged list is dropped after this long
HOUSEKEEPING_INTERVAL = 5.0
_HANDLERS: dict[str, type[Handler]] = {
    "object": ObjectHandler, "list": ListHandler, "watch": WatchHandler,
    "nonresource": NonResourceHandler,
}


class CacheWriter(BackgroundThread):
    """Reads all tees; the single owner of the cache tree's writes."""

    name = "yurthub-cache-writer"

    def __init__(self, store: DiskStore, metrics: Metrics,
                 on_document: Callable[[str, Any], None] | None = None) -> None:
        super().__init__()
        self._on_document = on_document or (lambda key, doc: None)
        self.store = store
        self.metrics = metrics
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._incoming: deque[Handler | LocalWrite | Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._handlers: set[Handler] = set()
        self._parked: list[Handler] = []
        self._collections: dict[CollectionKey, CollectionWriter] = {}
        self._recent: dict[tuple[CollectionKey | None, ViewKey], RecentEvents] = {}
        self._event_counters: dict[str, Any] = {}
        self.idle = threading.Event()
        self.idle.set()
        self.drops = 0  # responses not cached (dropped, refused), ever
        # The largest list worth spooling (or inflating): one that could be committed.
        self.max_list_bytes = 1 << 40
        self.space = SpaceGuard(store, metrics)
        self.stale = StaleMarks(self._collections, self.collection)
        self._reported: StorageError | None = None  # the last failure storage_failed took
        # Called on this thread when a collection sees the cloud's versions go back
        # (CollectionWriter's on_went_back): must not block.
        self.on_went_back: Callable[[CollectionKey, int, float], None] | None = None
        store.set_eviction_hooks(self.busy, self._evicted)

    # -- any thread -------------------------------------------------------------------------

    def submit(self, tee: Tee, entry: Entry) -> bool:
        """Hand a new tee to the writer thread; False (the tee abandoned) when the entry
        cannot be cached: a list's spool file could not be made."""
        try:
            handler = _HANDLERS[entry.kind](self, tee, entry)
        except OSError as e:
            # why: a list's spool (an unnamed file on the cache's disk) is made here, on the
            # request thread; a read-only or full disk, or a cache root deleted by hand,
            # refused it, and the client's answer from a healthy cloud broke off mid-body.
            tee.abandon()
            space = is_no_space(e) or is_read_only(e) or self.space.root_gone(e)
            self.dropped(entry, ("no-space" if is_no_space(e) else "read-only") if space
                         else "no-spool", str(e))
            log.warning("%s: not cached, no spool file on the cache's disk: %s", entry, e)
            if space:
                err = e

                def stop() -> None:
                    self.space.failed(err)  # caching stops, readyz says why

                self.call(stop)
            return False
        with self._lock:
            self.idle.clear()
            # A wake-up is pending while earlier submissions wait: the writer takes every
            # one of them when it wakes (its drain loop runs until the queue is empty).
            pending = bool(self._incoming)
            self._incoming.append(handler)
        if not pending:
            self.wake()
        return True

    def submit_local(self, entry: Entry, namespace: str, name: str, body: bytes,
                     meta: dict[str, Any], *, local: bool = True,
                     expect: Any = ANY) -> Future[bytes]:
        """Commit ``body`` (with its index ``meta``) as the object ``namespace/name``, durably.

        With ``expect`` (the stored body the write was computed from, None for "absent") the
        write is committed only if the object is still that; else the future raises
        StaleLocalWrite.  The future gives ``body``, or raises StorageError.
        """
        future: Future[bytes] = Future()
        w = LocalWrite(entry, namespace, name, body, meta, future, local, expect)
        with self._lock:
            self.idle.clear()
            self._incoming.append(w)
        self.wake()
        return future

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the writer thread (for writes that are not responses)."""
        with self._lock:
            self.idle.clear()
            self._incoming.append(fn)
        self.wake()

    def purge(self, keys: Iterable[CollectionKey]) -> Future[int]:
        """Empty collections on the writer thread (``yurthub cache purge`` through the hub):
        responses being cached into them are dropped, what their writers held is forgotten,
        then inventory.purge commits.  The future holds the number of objects removed."""
        wanted = set(keys)
        future: Future[int] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                for h in [h for h in (*self._handlers, *self._parked) if h.entry.ck in wanted]:
                    h.fail("its collection was purged", reason="purged")
                    self._forget(h)
                self._parked = [h for h in self._parked if h.entry.ck not in wanted]
                for ck in wanted:
                    coll = self._collections.pop(ck, None)
                    if coll is not None:
                        coll.discard()
                future.set_result(inventory.purge(self.store, wanted))
            except BaseException as e:  # the caller waits on the future: it gets the error
                future.set_exception(e)
        self.call(run)
        return future

    def went_back(self, rv: int, asked_at: float, why: str,
                  skip: Callable[[CollectionKey], bool], on_disk: Iterable[Entry] = ()
                  ) -> None:
        """The cloud's versions went back to ``rv`` (it answered a request sent at
        ``asked_at`` so: the node Lease's renewal): every collection written since the
        start and every one of ``on_disk`` (those kept from before it), but those ``skip``
        names (another etcd's), takes it as its own proof."""
        def run() -> None:
            colls = dict(self._collections)
            for entry in on_disk:
                if entry.ck is not None and entry.ck not in colls and not skip(entry.ck):
                    colls[entry.ck] = self.collection(entry)
            for coll in colls.values():
                if skip(coll.ck):
                    continue
                try:
                    coll.apply(Mutation("went-back", rv=rv, asked_at=asked_at, why=why))
                except StorageError as e:  # (the batch's commit reports it again)
                    self.storage_failed(e, coll.ck, coll.ck)
        self.call(run)

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # why: a wake-up is already pending

    def wait_idle(self, timeout: float) -> bool:
        """Tests and shutdown: wait until every submitted tee has been handled."""
        return self.idle.wait(timeout)

    # -- writer thread ----------------------------------------------------------------------

    @property
    def spool_dir(self) -> str:
        return self.store.root

    def collection(self, entry: Entry) -> CollectionWriter:
        ck = entry.ck
        if ck is None:
            raise InvalidKeyError(f"{entry} is not filed under a collection")
        coll = self._collections.get(ck)
        if coll is None:
            coll = self._new_collection(ck, entry.rt)
        return coll

    def _new_collection(self, ck: CollectionKey, rt: Any) -> CollectionWriter:
        def committed(kind: str, n: int) -> None:
            self.metrics.cache_commits.labels(kind).inc()
            if kind == "list":
                self.space.committed(ck)

        forgotten = self.metrics.cache_evictions.labels("view", "lru").inc
        coll = self._collections[ck] = CollectionWriter(self.store, ck, rt, committed,
                                                        forgotten, self._went_back)
        coll.refiltered = self.stale.refiltered(ck, coll.refiltered)
        return coll

    def _went_back(self, ck: CollectionKey, rv: int, asked_at: float) -> None:
        if self.on_went_back is not None:
            self.on_went_back(ck, rv, asked_at)

    def busy(self, ck: CollectionKey) -> bool:
        """The store may not evict ``ck``: something is being written to it or streams in."""
        coll = self._collections.get(ck)
        if coll is not None and (coll.pending() or coll.assembly is not None or coll.deferred):
            return True
        return any(h.entry.ck == ck for h in (*self._handlers, *self._parked))

    def _evicted(self, ck: CollectionKey, why: str) -> None:
        self._collections.pop(ck, None)
        self._forget_recent(ck)
        self.stale.forget(ck)
        self.metrics.cache_evictions.labels("collection", why).inc()

    def storage_failed(self, err: StorageError, what: object, ck: CollectionKey | None = None,
                       growth: int = 0) -> None:
        """A write failed: a quota or a full disk stops caching (SpaceGuard), else it is an
        error worth an ERROR line.  The same failure met again (a batch's commit finding
        the transaction that an entry's write aborted) is not reported twice."""
        if err is self._reported:
            return
        self._reported = err
        if not self.space.failed(err, ck, growth):  # a refusal for room is no write error
            self.metrics.cache_write_errors.inc()
            log.error("cache commit for %s failed: %s", what, err)

    def space_problem(self, err: OSError) -> str:
        """The drop reason of an entry whose spool could not be written."""
        if is_no_space(err) or is_read_only(err):
            self.space.failed(err)
            return "no-space" if is_no_space(err) else "read-only"
        return "undecodable"

    def other_open_watch(self, me: object, ck: CollectionKey | None, view: ViewKey) -> bool:
        return any(h is not me and isinstance(h, WatchHandler) and not h.dead
                   and h.entry.selectors is not None and h.entry.selectors.key == view
                   and h.entry.ck == ck
                   for h in self._handlers)

    def open_list(self, ck: CollectionKey | None, view: ViewKey) -> bool:
        return any(isinstance(h, ListHandler) and not h.dead and h.entry.ck == ck
                   and h.entry.selectors is not None and h.entry.selectors.key == view
                   and h.tee.outcome not in (Outcome.OVERFLOW, Outcome.BROKEN)
                   for h in self._handlers)

    def dropped(self, entry: Entry, reason: str, why: str) -> None:
        self.drops += 1
        m = self.metrics
        m.cache_entries_dropped.labels(m.component(entry.component), m.resource(entry.resource),
                                       reason).inc()
        if reason == Outcome.OVERFLOW.value:
            self.metrics.cache_overflows.inc()
        log.debug("not cached: %s: %s", entry, why)

    def recent_events(self, ck: CollectionKey | None, view: ViewKey) -> RecentEvents:
        recent = self._recent.get((ck, view))
        if recent is None:
            recent = self._recent[(ck, view)] = RecentEvents()
        return recent

    def watch_events(self, result: str, n: int) -> None:
        counter = self._event_counters.get(result)
        if counter is None:  # a label lookup takes a lock: once per result, not per read
            counter = self._event_counters[result] = \
                self.metrics.cache_watch_events.labels(result)
        counter.inc(n)

    def invalid_key(self, entry: Entry, why: str) -> None:
        self.metrics.cache_invalid_keys.labels(self.metrics.component(entry.component)).inc()
        log.warning("not caching an object of %s: %s", entry, why)

    def nonresource(self, entry: Entry, body: bytes, doc: Any) -> None:
        """Store a discovery document (durably) and let the manager learn from it."""
        try:
            self.store.write_nonresource(entry.doc_key, body)
        except (StorageError, InvalidKeyError) as e:
            self.storage_failed(e, entry.doc_key, growth=len(body))
            return
        self._on_document(entry.doc_key, doc)

    def run(self) -> None:
        housekeeping = time.monotonic()
        while not self.stopping.is_set():
            timeout = 1.0 if not self._parked else 0.05
            ready = self._selector.select(timeout)
            if time.monotonic() - housekeeping > HOUSEKEEPING_INTERVAL:
                housekeeping = time.monotonic()
                self.store.tidy()  # indexes to disk; replaced files removed in the background
                linux.malloc_trim()  # a backlog the tees held and freed is given back
            self.space.check()
            for key, _mask in ready:
                if key.data is None:
                    self._accept_new()
                else:
                    self._safely(key.data, self._read)
            self._retry_parked()
            self._flush()
            self._expire_pages()
            with self._lock:
                if not self._handlers and not self._incoming and not self._parked:
                    self.idle.set()
        self._shutdown()

    def _accept_new(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass  # why: drained
        while True:
            with self._lock:
                if not self._incoming:
                    return
                item = self._incoming.popleft()
            if isinstance(item, LocalWrite):
                commit_local(self, item)
            elif isinstance(item, Handler):
                self._handlers.add(item)
                self._safely(item, self._start)
            else:
                try:
                    item()
                except (StorageError, InvalidKeyError) as e:
                    self.storage_failed(e, "a write of the hub")

    def _start(self, handler: Handler) -> None:
        try:
            ready = handler.ready()
        except (InvalidKeyError, StorageError) as e:
            if isinstance(e, StorageError) and not isinstance(e, InvalidKeyError):
                self.space.failed(e, handler.entry.ck)
            handler.fail(str(e))
            ready = True
        if handler.dead:
            self._forget(handler)
        elif ready:
            self._selector.register(handler.tee.read_fd, selectors.EVENT_READ, handler)
        else:
            self._parked.append(handler)

    def _retry_parked(self) -> None:
        if not self._parked:
            return
        parked, self._parked = self._parked, []
        for handler in parked:
            if isinstance(handler, ListHandler) and handler.tee.outcome in (
                    Outcome.OVERFLOW, Outcome.BROKEN):
                # It can never be committed (dropped past the memory limit, or its client
                # went away): its pipe and spool go now, not when its turn would come.
                self._safely(handler, self._end)
                continue
            self._safely(handler, self._start)

    def _safely(self, handler: Handler, step: Callable[[Handler], None]) -> None:
        """Run one step of a handler; a bug drops that entry, not the hub.

        Crashing the process (as other background threads do) would make one poisonous
        response a crash loop: every relist would bring it back.  The entry's collection
        forgets what it had not committed and marks its views stale until their next list.
        """
        try:
            step(handler)
        except Exception:
            log.exception("bug while caching %s: the entry is dropped and its collection "
                          "reloaded from disk", handler.entry)
            self.metrics.cache_write_errors.inc()
            try:
                handler.fail("internal error", reason="internal")
            except Exception:
                log.exception("dropping %s failed too", handler.entry)
            self._forget(handler)
            if handler.entry.ck is not None:
                self._reload_collection(handler.entry.ck)

    def _reload_collection(self, ck: CollectionKey,
                           why: str = "an internal error lost events") -> None:
        """Forget what a collection had not committed; mark its views stale (events may have
        been lost) so offline answers say so until the next list."""
        self._forget_recent(ck)  # what was applied but not committed is gone: apply again
        coll = self._collections.pop(ck, None)
        if coll is None:
            return
        try:
            coll.discard()
            fresh = self._new_collection(ck, coll.rt)
        except Exception:
            log.exception("reloading %s failed", ck)
            return
        self.stale.mark(fresh, why)

    def _forget_recent(self, ck: CollectionKey) -> None:
        """The twin-event keys of a collection whose applied events were lost or removed."""
        for key in [k for k in self._recent if k[0] == ck]:
            del self._recent[key]

    def _read(self, handler: Handler) -> None:
        if isinstance(handler, ListHandler):
            self._splice(handler)
            return
        tee = handler.tee
        budget = SLICE_BYTES
        while budget > 0:
            try:
                data = os.read(tee.read_fd, READ_SIZE)
            except BlockingIOError:
                tee.pump()
                return
            if not data:
                self._end(handler)
                return
            budget -= len(data)
            tee.pump(len(data))
            handler.feed(data)
            if handler.dead:
                self._forget(handler)
                return

    def _splice(self, handler: ListHandler) -> None:
        """A list body goes to its spool without passing through Python's memory."""
        tee = handler.tee
        budget = SLICE_BYTES * 4
        while budget > 0:
            try:
                n = handler.splice(READ_SIZE)
            except BlockingIOError:
                tee.pump()
                return
            if n == 0:
                self._end(handler)
                return
            if n < 0 or handler.dead:
                self._forget(handler)
                return
            budget -= n
            tee.pump(n)

    def _end(self, handler: Handler) -> None:
        outcome = handler.tee.outcome
        if outcome is Outcome.OPEN:  # write end closed without an outcome: treat as broken
            outcome = Outcome.BROKEN
        try:
            handler.finish(outcome)
        except StorageError as e:
            self.storage_failed(e, handler.entry, handler.entry.ck)
        self._forget(handler)

    def _forget(self, handler: Handler) -> None:
        tee = handler.tee
        if tee.read_fd >= 0:
            try:
                self._selector.unregister(tee.read_fd)
            except (KeyError, ValueError):
                pass  # why: it was parked, never registered
            if not handler.dead:
                tee.close_read()
            else:
                tee.abandon()
        self._handlers.discard(handler)
        sel = handler.entry.selectors
        if isinstance(handler, WatchHandler) and sel is not None \
                and not self.other_open_watch(handler, handler.entry.ck, sel.key):
            self._recent.pop((handler.entry.ck, sel.key), None)  # the view's last watch

    def _flush(self) -> None:
        self.stale.retry(self.space.accepting)
        for ck, coll in list(self._collections.items()):
            if coll.pending():
                try:
                    coll.flush()
                except StorageError as e:
                    self.storage_failed(e, coll.ck, coll.ck)
                    # Its events are lost: its views may no longer claim to be complete.
                    self._reload_collection(ck, f"a commit failed: {e}")
                except Exception:
                    # A bug: as in _safely, that collection starts again from the disk.
                    self.metrics.cache_write_errors.inc()
                    log.exception("bug while committing %s: its batch is dropped and the "
                                  "collection reloaded from disk", ck)
                    self._reload_collection(ck)

    def _expire_pages(self) -> None:
        now = time.monotonic()
        for coll in self._collections.values():
            a = coll.assembly
            if a is not None and a.expected_token and now - a.touched > PAGE_TIMEOUT:
                coll.abort_list(a, "the next page never came")

    def _shutdown(self) -> None:
        for handler in list(self._handlers) + self._parked:
            handler.tee.abandon()
        self._flush()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
