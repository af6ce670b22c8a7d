"""A watch served from the cache: replay what the client missed, then wait with BOOKMARKs.

It ends at ``timeoutSeconds``, when the client goes away, on shutdown, and within a moment
of the cloud turning healthy again (the health checker interrupts every local watch), so
clients re-watch upstream from their last resourceVersion.  It takes only what it needs:
the stream registry (its lifecycle), the request, where to start and the bookmark to send.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from yurthub.cache.reader import WatchStart
from yurthub.filters.visibility import ClientView
from yurthub.proxy.context import RequestContext
from yurthub.proxy.filtering import outdated_event
from yurthub.proxy.streams import RELIST, Reason, StreamRegistry


def bookmark_event(kind: str, api_version: str, resource_version: int) -> bytes:
    """A BOOKMARK watch event line at ``resource_version``, as kube-apiserver sends it."""
    obj = {"kind": kind, "apiVersion": api_version,
           "metadata": {"resourceVersion": str(resource_version)}}
    return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() \
        + b"\n"


class LocalWatch:
    """The body of a local watch response; registered as a stream of source ``local``.

    ``bookmark`` is the event line sent every ``bookmark_interval`` seconds while nothing
    else happens (None: the client did not allow bookmarks).
    """

    source = "local"

    def __init__(self, streams: StreamRegistry, ctx: RequestContext, start: WatchStart, *,
                 timeout: int, bookmark: bytes | None, bookmark_interval: float,
                 view: ClientView | None = None) -> None:
        self.ctx = ctx
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
        for etype, raw in self.start.events:
            yield b'{"type":"' + etype.encode() + b'","object":' + raw.strip() + b"}\n"
        while self.reason is None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return
            wait = min(left, self.bookmark_interval) if self.bookmark is not None else left
            if self._wake.wait(wait):
                return
            if self.bookmark is not None and time.monotonic() < self.deadline:
                yield self.bookmark

    def close(self) -> None:
        self._life.close()
