"""A watch served from the cache: replay what the client missed, then wait with BOOKMARKs.

It ends at ``timeoutSeconds``, when the client goes away, on shutdown, and within a moment
of the cloud turning healthy again (the health checker interrupts every local watch), so
clients re-watch upstream from their last resourceVersion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from yurthub.cache.reader import WatchStart
from yurthub.proxy.context import RequestContext
from yurthub.proxy.streams import Reason

if TYPE_CHECKING:
    from yurthub.proxy.local import LocalProxy


class LocalWatch:
    """The body of a local watch response; registered as a stream of source ``local``."""

    source = "local"

    def __init__(self, proxy: LocalProxy, ctx: RequestContext, start: WatchStart, *,
                 timeout: int, bookmarks: bool) -> None:
        self.proxy = proxy
        self.ctx = ctx
        self.start = start
        self.deadline = time.monotonic() + max(0, timeout)
        self.bookmarks = bookmarks
        self.reason: Reason | None = None
        self._wake = threading.Event()
        self._closed = False
        proxy.streams.add(self)
        proxy.metrics.open_watches.labels("local").inc()
        sock = ctx.client_socket
        self._token: int | None = None
        if sock is not None:
            sock.settimeout(proxy.cfg.client_send_timeout)
            self._token = proxy.watchdog.watch(sock, lambda: self.interrupt(Reason.CLIENT_GONE))
        if proxy.streams.shutting_down.is_set():
            self.reason = Reason.SHUTDOWN

    def interrupt(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason
        self._wake.set()

    def _bookmark(self) -> bytes:
        info = self.ctx.info
        kind = self.proxy.cache.kind_of(info, self.ctx.component, self.ctx.accept)
        obj = {"kind": kind, "apiVersion": info.group_version,
               "metadata": {"resourceVersion": str(self.start.resource_version)}}
        return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() \
            + b"\n"

    def __iter__(self) -> Iterator[bytes]:
        proxy = self.proxy
        yield b""  # the headers go out now, as kube-apiserver sends them, not with an event
        for etype, raw in self.start.events:
            yield b'{"type":"' + etype.encode() + b'","object":' + raw.strip() + b"}\n"
        while self.reason is None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return
            wait = min(left, proxy.bookmark_interval) if self.bookmarks else left
            if self._wake.wait(wait):
                return
            if self.bookmarks and time.monotonic() < self.deadline:
                yield self._bookmark()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.proxy.watchdog.unwatch(self._token)
        self.proxy.streams.remove(self)
        self.proxy.metrics.open_watches.labels("local").dec()
