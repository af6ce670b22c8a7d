"""Open long-lived responses (watches, followed logs) and the one lifecycle they all share.

Every response body opens its place here with ``StreamRegistry.open`` and closes it once:
the client socket gets the send timeout (a client that stops reading is cut off), and a
long-lived stream is registered so that shutdown, a cloud that turns unhealthy or healthy
again, and a client that went away (the watchdog) can each end exactly the streams they
concern — cleanly when the client should simply re-watch — and watches are counted in
``yurthub_open_watches`` by source (remote: proxied from the cloud, local: from the cache).
Remote, local, filtered and shared streams use this one lifecycle; none sets it up alone.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from yurthub.metrics import Metrics
from yurthub.proxy.watchdog import Watchdog


class Reason(Enum):
    CLIENT_GONE = "client gone"
    SHUTDOWN = "shutting down"
    CLOUD_DOWN = "cloud unhealthy"     # remote watches end; clients re-watch from the cache
    CLOUD_UP = "cloud healthy"         # local watches end; clients re-watch upstream
    FILTERS_CHANGED = "response filters changed"  # the client relists what it should see
    STATE_BEHIND = "shared state behind the cloud"  # the multiplexer's feed lists again
    PURGED = "its cache was purged"    # the client relists, which fills the cache again
    WENT_BACK = "the cloud's versions went back"  # watch from a lost past (proxy/rewinds.py)


# The reasons that end a watch with 410 Expired, and why, as the client is told: client-go
# lists again.  A watch that merely ended is resumed from its last resourceVersion, and the
# client keeps what it had (and a purged cache would stay empty).
RELIST = {Reason.FILTERS_CHANGED: "the response filters for this client changed",
          Reason.PURGED: "the hub's cache of it was purged",
          Reason.WENT_BACK: "the cloud's resourceVersions went back (etcd restored?)"}


# Where a stream is served from, which decides the health change that ends it: "remote"
# (proxied from the cloud) ends when the cloud turns unhealthy, "local" (from the cache)
# when it turns healthy.  A stream that neither should end adds a source of its own here.
# "shared" (the multiplexer's answers, proxy/mux.py) ends on neither: its feed re-watches.
SOURCES = ("remote", "local", "shared")


class Stream(Protocol):
    source: str  # one of SOURCES

    def interrupt(self, reason: Reason) -> None:
        """End the stream from another thread; must not block."""


class OpenStream:
    """One response's place among the open streams, from ``open`` to ``close``.

    ``close`` is idempotent and safe from any thread; a ``with`` block closes it too.
    """

    __slots__ = ("_closed", "_component", "_counted", "_lock", "_registered", "_registry",
                 "_stream", "_token")

    def __init__(self, registry: StreamRegistry, stream: Stream, sock: socket.socket | None,
                 *, long_lived: bool, watch: bool, component: str = "") -> None:
        self._registry = registry
        self._component = component
        self._stream = stream
        self._lock = threading.Lock()
        self._closed = False
        self._token: int | None = None
        self._registered = long_lived
        self._counted = watch and long_lived
        if sock is not None:
            sock.settimeout(registry.send_timeout)
        if long_lived:
            registry.add(stream, holds_thread=sock is not None, sock=sock)
            if sock is not None:
                self._token = registry.watchdog.watch(
                    sock, lambda: stream.interrupt(Reason.CLIENT_GONE))
        if self._counted:
            registry.metrics.open_watches.labels(stream.source).inc()
            registry.count_watch(component, stream.source, 1)
        if long_lived and registry.shutting_down.is_set():
            # Shutdown began between the request and its body's first byte: it ended the
            # streams registered then, so this one ends itself (cleanly, at once).
            stream.interrupt(Reason.SHUTDOWN)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        registry = self._registry
        registry.watchdog.unwatch(self._token)
        if self._registered:
            registry.remove(self._stream)
        if self._counted:
            registry.metrics.open_watches.labels(self._stream.source).dec()
            registry.count_watch(self._component, self._stream.source, -1)

    def __enter__(self) -> OpenStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamRegistry:
    """The set of open streams, a shutdown flag checked by new ones, and what every stream
    needs for its lifecycle: the watchdog, the client send timeout, the watch gauge."""

    def __init__(self, watchdog: Watchdog, metrics: Metrics, send_timeout: float) -> None:
        self.watchdog = watchdog
        self.metrics = metrics
        self.send_timeout = send_timeout
        self._streams: set[Stream] = set()
        # Those serving a client's connection, each on a request thread (an in-process
        # request, the multiplexer's own watch, holds none).
        self._threaded: set[Stream] = set()
        # The client sockets of long-lived requests admitted (``claim``) whose stream has not
        # opened yet, with their owner: counted with those above, so a burst cannot pass
        # the bound together.
        self._claims: dict[socket.socket, object] = {}
        # Slots (claimed or held) per owner that has a share only (``claim``'s ``owner``).
        self._owners: dict[Stream, object] = {}
        self._per_owner: Counter[object] = Counter()
        self._watches: dict[tuple[str, str], int] = {}   # (component, source) -> open
        self._lock = threading.Lock()
        self.shutting_down = threading.Event()
        for source in SOURCES:  # every series exists from the start, at 0
            metrics.open_watches.labels(source)

    def open(self, stream: Stream, sock: socket.socket | None, *, long_lived: bool,
             watch: bool, component: str = "") -> OpenStream:
        """Start the lifecycle of one response body (see ``OpenStream``)."""
        return OpenStream(self, stream, sock, long_lived=long_lived, watch=watch,
                          component=component)

    def count_watch(self, component: str, source: str, delta: int) -> None:
        with self._lock:
            key = (component, source)
            n = self._watches.get(key, 0) + delta
            if n > 0:
                self._watches[key] = n
            else:
                self._watches.pop(key, None)

    def open_watches(self) -> dict[tuple[str, str], int]:
        """Open watches per (component, source): for the status page."""
        with self._lock:
            return dict(self._watches)

    def add(self, stream: Stream, *, holds_thread: bool = False,
            sock: socket.socket | None = None) -> None:
        with self._lock:
            self._streams.add(stream)
            if holds_thread:
                self._threaded.add(stream)
                # Its slot, claimed on arrival, is the stream's now (and its owner's).
                owner = self._claims.pop(sock, None) if sock is not None else None
                if owner is not None:
                    self._owners[stream] = owner

    def claim(self, sock: socket.socket, limit: int, owner: object = None,
              share: int = 0) -> str | None:
        """Take one of ``limit`` slots for a long-lived request on ``sock`` until its stream
        opens (``add``) or it ends without one (``unclaim``).  An ``owner`` (a user that may
        not use the hub's credentials) holds at most ``share`` of them.  None when taken,
        else why not: ``all`` or ``share``."""
        with self._lock:
            if len(self._threaded) + len(self._claims) >= limit:
                return "all"
            if owner is not None and self._per_owner[owner] >= share:
                return "share"
            self._claims[sock] = owner
            if owner is not None:
                self._per_owner[owner] += 1
            return None

    def unclaim(self, sock: socket.socket) -> None:
        with self._lock:
            if sock in self._claims:
                self._release(self._claims.pop(sock))

    def _release(self, owner: object) -> None:
        if owner is not None:
            self._per_owner[owner] -= 1
            if self._per_owner[owner] <= 0:
                del self._per_owner[owner]

    def remove(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)
            self._threaded.discard(stream)
            if stream in self._owners:
                self._release(self._owners.pop(stream))

    def threads_held(self) -> int:
        """Open streams that each hold a request thread (what ``max_watches`` bounds)."""
        with self._lock:
            return len(self._threaded)

    def count(self, source: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self._streams if source is None or s.source == source)

    def interrupt_all(self, reason: Reason, source: str | None = None) -> int:
        """Interrupt every open stream (of ``source``); returns how many were interrupted."""
        with self._lock:
            targets = [s for s in self._streams if source is None or s.source == source]
        for s in targets:
            s.interrupt(reason)
        return len(targets)

    def interrupt_where(self, reason: Reason, match: Callable[[Stream], bool]) -> int:
        """Interrupt every open stream ``match`` selects; returns how many."""
        with self._lock:
            targets = [s for s in self._streams if match(s)]
        for s in targets:
            s.interrupt(reason)
        return len(targets)

    def shutdown(self) -> int:
        self.shutting_down.set()
        return self.interrupt_all(Reason.SHUTDOWN)
