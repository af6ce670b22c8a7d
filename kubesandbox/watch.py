"""Watch streams: one JSON event per line, from a resourceVersion, as kube-apiserver sends them.

A watch without a resourceVersion (or with ``0``) first gets a synthetic ADDED event for every
object that matches, then the changes; with a resourceVersion it gets every change after it,
or one ERROR event carrying ``410 Expired`` when that version is older than the history.
Selectors apply to both the old and the new object: one leaving the selection arrives as
DELETED, one entering it as ADDED.  Bookmarks (when asked) come every ``bookmark_interval``
seconds and once 2 s before the end; ``timeoutSeconds`` ends the stream cleanly.  A watcher
that falls so far behind that the history moved past it is ended, as kube-apiserver ends slow
watchers.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kubesandbox import rest
from kubesandbox.history import Event
from kubesandbox.objects import Entry, render
from kubesandbox.rest import Reader, Selection, parse_rv
from kubesandbox.store import ADDED, DELETED, MODIFIED, Store
from yurthub.errors import BadRequest, Gone
from yurthub.kube.resources import ResourceType
from yurthub.kube.status import status_object

log = logging.getLogger(__name__)

BOOKMARK, ERROR = "BOOKMARK", "ERROR"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
PRE_TIMEOUT_BOOKMARK = 2.0  # the last bookmark comes this long before the watch's end
LIVENESS_CHECK = 1.0  # how often an idle watch looks whether its client went away


@dataclass
class WatchOptions:
    """The query parameters of a watch that shape the stream."""

    resource_version: str = ""
    bookmarks: bool = False
    timeout: float = 0.0
    send_initial_events: bool | None = None


def _line(type_: str, data: bytes) -> bytes:
    return b'{"type":"%s","object":%s}\n' % (type_.encode(), data)


class WatchStream:
    """The iterator of event lines of one watch request."""

    def __init__(self, store: Store, reader: Reader, rt: ResourceType, sel: Selection,
                 opts: WatchOptions, *, bookmark_interval: float, max_timeout: float,
                 is_closed: Callable[[], bool]) -> None:
        self.store, self.reader, self.rt, self.sel = store, reader, rt, sel
        self.opts = opts
        self.bookmark_interval = bookmark_interval
        self.is_closed = is_closed
        # Without timeoutSeconds (or 0) kube-apiserver picks minRequestTimeout * [1, 2); a
        # negative one is a deadline already past: the watch ends at once.
        self.timeout = opts.timeout if opts.timeout != 0 else \
            max_timeout * (1 + random.random())  # noqa: S311
        self.gr = (store.collection(rt).rt.group, rt.resource)
        self.sent_rv = 0
        if opts.resource_version not in ("", "0"):
            parse_rv(opts.resource_version)  # a bad version is a 400 before the stream starts
        if opts.send_initial_events and not opts.bookmarks:
            raise BadRequest("sendInitialEvents requires setting allowWatchBookmarks to true")

    def _data(self, entry: Entry) -> bytes:
        return self.reader.view(entry, self.rt)

    def _bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, object] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.group_version, "metadata": meta}
        return _line(BOOKMARK, json.dumps(obj, separators=(",", ":")).encode())

    def _translate(self, ev: Event) -> bytes | None:
        new_ok = ev.type != DELETED and self.sel.matches(ev.entry)
        old_ok = ev.prev is not None and self.sel.matches(ev.prev)
        if new_ok:
            return _line(MODIFIED if old_ok else ADDED, self._data(ev.entry))
        if not old_ok or ev.prev is None:
            return None
        if ev.type == DELETED:
            return _line(DELETED, self._data(ev.entry))
        # It left the selection: DELETED with its previous content at this event's version.
        obj = ev.prev.obj()
        obj.setdefault("metadata", {})["resourceVersion"] = str(ev.rv)
        storage = self.store.collection(self.rt).rt
        data = render(obj, storage.kind, storage.group_version)[0]
        if storage.version != self.rt.version:
            obj["apiVersion"] = self.rt.group_version
            data = render(obj, self.rt.kind, self.rt.group_version)[0]
        return _line(DELETED, data)

    def _start(self) -> tuple[list[bytes], int] | bytes:
        """The initial lines and the history position to go on from, or an ERROR line."""
        rv_param = self.opts.resource_version
        initial = self.opts.send_initial_events
        if initial is None:
            initial = rv_param in ("", "0")
        if self.opts.send_initial_events and rv_param not in ("", "0"):
            # A watch-list "not older than" a version: kube-apiserver's cacher waits for its
            # cache to reach it (waitUntilWatchCacheFreshAndForceAllEvents), and a version it
            # does not reach in time ends the watch with an ERROR event (504, too large).
            wanted = parse_rv(rv_param)
            store = self.store
            if wanted > store.rv and not store.wait_for_rv(wanted, rest.TOO_LARGE_WAIT):
                late = rest.too_large(wanted, store.rv)
                return _line(ERROR, json.dumps(status_object(late),
                                               separators=(",", ":")).encode())
        with self.store.lock:
            if not initial:
                rv = parse_rv(rv_param) if rv_param not in ("", "0") else self.store.rv
                if not self.store.can_serve(rv):
                    err = Gone(f"too old resource version: {rv} ({self.store.log.floor})")
                    return _line(ERROR, json.dumps(status_object(err),
                                                   separators=(",", ":")).encode())
                self.sent_rv = rv
                return [], self.store.log.seq_after(rv)
            entries = self.store.entries(self.store.collection(self.rt).rt,
                                         self.sel.namespace or None)
            rv = self.store.rv
            seq = self.store.log.seq_after(rv)
        lines = [_line(ADDED, self._data(e)) for e in entries if self.sel.matches(e)]
        self.sent_rv = rv
        if self.opts.send_initial_events:
            lines.append(self._bookmark(rv, initial_end=True))
        return lines, seq

    def __iter__(self) -> Iterator[bytes]:
        started = time.monotonic()
        deadline = started + self.timeout
        start = self._start()
        if isinstance(start, bytes):
            yield start
            return
        lines, seq = start
        yield from lines
        # Only changes after the version asked (etcd watches from the next revision): one
        # ahead of the store names changes the client already knows of.
        after = self.sent_rv
        next_bookmark = self._next_bookmark(started, deadline) if self.opts.bookmarks else None
        while True:
            now = time.monotonic()
            if now >= deadline or self.is_closed():
                return
            with self.store.changed:
                events, seq, lost = self.store.log.read(seq)
                if not events and not lost:
                    wait = min(deadline - now, LIVENESS_CHECK)
                    if next_bookmark is not None:
                        wait = min(wait, max(0.0, next_bookmark - now))
                    if wait > 0 and not self.store.closed:
                        self.store.changed.wait(wait)
                    events, seq, lost = self.store.log.read(seq)
                current_rv = self.store.rv
                caught_up = seq == self.store.log.next_seq
                closed = self.store.closed
            if lost:
                log.info("watch of %s fell behind the history; ending it", self.rt.resource)
                return
            for ev in events:
                if ev.rv <= after:
                    continue
                self.sent_rv = ev.rv
                if ev.gr != self.gr:
                    continue
                line = self._translate(ev)
                if line is not None:
                    yield line
            if closed:
                return
            if next_bookmark is not None and caught_up and time.monotonic() >= next_bookmark:
                # Every event up to current_rv has been read, so the bookmark may claim it.
                self.sent_rv = max(self.sent_rv, current_rv)
                yield self._bookmark(self.sent_rv)
                next_bookmark = self._next_bookmark(time.monotonic(), deadline)

    def _next_bookmark(self, now: float, deadline: float) -> float:
        """Every ``bookmark_interval``, and once 2 s before the deadline, as kube-apiserver's
        cacheWatcher.nextBookmarkTime schedules them."""
        due = now + self.bookmark_interval
        last = deadline - PRE_TIMEOUT_BOOKMARK
        return last if now <= last < due else due
