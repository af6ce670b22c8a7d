"""Open long-lived responses (watches, followed logs) and the reasons one may be ended early.

Every streaming response registers here, so that shutdown, a cloud that turns unhealthy or
healthy again, and a client that went away can each end exactly the streams they concern —
cleanly when the client should simply re-watch.
"""

from __future__ import annotations

import threading
from enum import Enum
from typing import Protocol


class Reason(Enum):
    CLIENT_GONE = "client gone"
    SHUTDOWN = "shutting down"
    CLOUD_DOWN = "cloud unhealthy"     # remote watches end; clients re-watch from the cache
    CLOUD_UP = "cloud healthy"         # local watches end; clients re-watch upstream


class Stream(Protocol):
    source: str  # "remote" or "local"

    def interrupt(self, reason: Reason) -> None:
        """End the stream from another thread; must not block."""


class StreamRegistry:
    """The set of open streams, and a shutdown flag checked by new ones."""

    def __init__(self) -> None:
        self._streams: set[Stream] = set()
        self._lock = threading.Lock()
        self.shutting_down = threading.Event()

    def add(self, stream: Stream) -> None:
        with self._lock:
            self._streams.add(stream)

    def remove(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)

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

    def shutdown(self) -> int:
        self.shutting_down.set()
        return self.interrupt_all(Reason.SHUTDOWN)
