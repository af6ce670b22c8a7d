"""A watch served from the cache: replay what the client missed, then wait with BOOKMARKs.

It ends at ``timeoutSeconds``, when the client goes away, on shutdown, and within a moment
of the cloud turning healthy again (the health checker interrupts every local watch), so
clients re-watch upstream from their last resourceVersion.  A watch that came here while the
cloud counted as healthy (its connection failed, and the probe that followed found the cloud
well) sees no such turn: it looks every ``UPSTREAM_CHECK`` seconds whether requests go
upstream again and ends then, as YurtHub's local watch does.  It takes only what it needs:
the stream registry (its lifecycle), the request, where to start and the bookmark to send.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from yurthub.cache.reader import CacheReader, WatchStart
from yurthub.cache.views import Selectors
from yurthub.errors import BadRequest, ServiceUnavailable
from yurthub.filters.visibility import ClientView
from yurthub.kube.listoptions import too_large_resource_version
from yurthub.kube.resources import ResourceType
from yurthub.kube.status import status_object
from yurthub.proxy.context import RequestContext
from yurthub.proxy.filtering import outdated_event
from yurthub.proxy.streams import RELIST, Reason, StreamRegistry

log = logging.getLogger(__name__)

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
UPSTREAM_CHECK = 2.0  # YurtHub's local watch looks at the cloud's health this often
PRE_TIMEOUT_BOOKMARK = 2.0  # kube-apiserver's last bookmark comes this long before the end


def next_bookmark_at(interval: float, deadline: float) -> float:
    """When a watch's next bookmark is due (``time.monotonic``): every ``interval`` and, as
    kube-apiserver's cacheWatcher does, once right before the watch's ``deadline``, so that
    a client renewing its watch at the timeout resumes from the newest version (not one up
    to an interval old, which the history may no longer hold: a 410 and a relist)."""
    now = time.monotonic()
    due = now + interval
    last = deadline - PRE_TIMEOUT_BOOKMARK
    return last if now <= last < due else due


def bookmark_event(kind: str, api_version: str, resource_version: int,
                   initial_end: bool = False) -> bytes:
    """A BOOKMARK watch event line at ``resource_version``, as kube-apiserver sends it;
    ``initial_end`` marks the end of a watch-list's initial events (KEP 3157)."""
    meta: dict[str, object] = {"resourceVersion": str(resource_version)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {"kind": kind, "apiVersion": api_version, "metadata": meta}
    return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() \
        + b"\n"


def watch_start(reader: CacheReader, ck: Any, rt: ResourceType, want: Selectors, rv_param: str,
                initial: bool | None) -> WatchStart:
    """Where a watch starts; ``initial`` is its sendInitialEvents (None: not given).

    A watch-list (sendInitialEvents=true, resourceVersionMatch=NotOlderThan) gets the
    whole cached state whatever version it names, as kube-apiserver sends the state at
    least that new (504 when the cache is older: it cannot catch up offline);
    sendInitialEvents=false without a version starts from now, with no state."""
    if not initial:
        start = reader.watch_start(ck, rt, want, rv_param)
        if initial is False and rv_param in ("", "0"):
            start.events = []
        return start
    start = reader.watch_start(ck, rt, want, "")
    if rv_param not in ("", "0"):
        try:
            rv = int(rv_param)
        except ValueError:
            raise BadRequest(f"invalid resource version: {rv_param!r}") from None
        if rv > start.resource_version:
            raise too_large_resource_version(rv, start.resource_version)
    return start


class LocalWatch:
    """The body of a local watch response; registered as a stream of source ``local``.

    ``bookmark`` is the event line sent every ``bookmark_interval`` seconds while nothing
    else happens (None: the client did not allow bookmarks); ``end_initial`` the line sent
    right after the start's events (a watch-list's end of its initial events);
    ``upstream_ready`` says whether requests go upstream again (the watch then ends).
    """

    source = "local"

    def __init__(self, streams: StreamRegistry, ctx: RequestContext, start: WatchStart, *,
                 timeout: int, bookmark: bytes | None, bookmark_interval: float,
                 view: ClientView | None = None, end_initial: bytes | None = None,
                 upstream_ready: Callable[[], bool] | None = None) -> None:
        self.ctx = ctx
        self.upstream_ready = upstream_ready
        self.end_initial = end_initial
        self.view = view
        self.start = start
        self.deadline = time.monotonic() + max(0, timeout)
        self.bookmark = bookmark
        self.bookmark_interval = bookmark_interval
        self.reason: Reason | None = None
        self._wake = threading.Event()
        self._life = streams.open(self, ctx.client_socket, long_lived=True, watch=True,
                                  component=ctx.component)

    def interrupt(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason
        self._wake.set()

    def __iter__(self) -> Iterator[bytes]:
        yield b""  # the headers go out now, as kube-apiserver sends them, not with an event
        view = self.view
        # Registered (in __init__) before this check: a change after it interrupts us.
        if view is None or not view.changed():
            yield from self._events()
        rv = str(self.start.resource_version)
        if self.reason in RELIST:
            yield outdated_event(rv, RELIST[self.reason])
        elif view is not None and view.changed():
            yield outdated_event(rv)
        elif view is not None:
            view.served(rv)  # where the client may resume (its last bookmark)

    def _events(self) -> Iterator[bytes]:
        try:
            for etype, raw in self.start.events:
                yield b'{"type":"' + etype.encode() + b'","object":' + raw.strip() + b"}\n"
        except ServiceUnavailable as e:
            # A file damaged since the start was checked: the watch ends with the error
            # (client-go relists), never as if the client had the whole state.
            log.warning("%s watch %s: ended: %s", self.ctx.component or "-",
                        self.ctx.path_qs, e.message)
            yield json.dumps({"type": "ERROR", "object": status_object(e)}).encode() + b"\n"
            return
        if self.end_initial is not None:
            yield self.end_initial
        next_bookmark = next_bookmark_at(self.bookmark_interval, self.deadline)
        while self.reason is None:
            now = time.monotonic()
            left = self.deadline - now
            if left <= 0:
                return
            wait = min(left, next_bookmark - now) if self.bookmark is not None else left
            if self.upstream_ready is not None:
                wait = min(wait, UPSTREAM_CHECK)
            if self._wake.wait(max(0.0, wait)):
                return
            if self.upstream_ready is not None and self.upstream_ready():
                # Never at once: a watch that just came here would come straight back.
                log.info("%s watch of %s from the cache: the cloud answers again; ending it",
                         self.ctx.component or "-", self.ctx.info.resource)
                return
            now = time.monotonic()
            if self.bookmark is not None and now >= next_bookmark and now < self.deadline:
                yield self.bookmark
                next_bookmark = next_bookmark_at(self.bookmark_interval, self.deadline)


    def close(self) -> None:
        self._life.close()
