"""The bounded event history: every write, in resourceVersion order, for watches and snapshots.

Each event keeps the object's new and previous entries, which is all a watch needs to send
ADDED/MODIFIED/DELETED (also when an object enters or leaves a selector) and all a paged or
exact-version list needs to rebuild a collection as it was at an older resourceVersion.
Positions (``seq``) only grow, so a reader that fell out of the window can tell.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from kubesandbox.objects import Entry

GroupResource = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Event:
    """One write: its resourceVersion, type, collection, new entry and previous entry."""

    rv: int
    type: str
    gr: GroupResource
    entry: Entry
    prev: Entry | None


class EventLog:
    """Events with ``rv > floor``, at most ``size`` of them (trimmed in batches)."""

    def __init__(self, size: int, floor: int = 0) -> None:
        if size < 1:
            raise ValueError("history size must be at least 1")
        self.size = size
        self._events: list[Event] = []
        self._rvs: list[int] = []
        self._base = 0  # seq of _events[0]
        self.floor = floor

    def __len__(self) -> int:
        return len(self._events)

    @property
    def next_seq(self) -> int:
        return self._base + len(self._events)

    def append(self, event: Event) -> None:
        self._events.append(event)
        self._rvs.append(event.rv)
        if len(self._events) > self.size + max(16, self.size // 8):
            self._drop(len(self._events) - self.size)

    def _drop(self, count: int) -> None:
        if count <= 0:
            return
        self.floor = max(self.floor, self._rvs[count - 1])
        del self._events[:count]
        del self._rvs[:count]
        self._base += count

    def compact(self, rv: int) -> None:
        """Forget every event up to ``rv``: older versions become too old (410)."""
        self._drop(bisect.bisect_right(self._rvs, rv))
        self.floor = max(self.floor, rv)

    def seq_after(self, rv: int) -> int:
        """The position of the first event newer than ``rv`` (``rv`` must be >= floor)."""
        return self._base + bisect.bisect_right(self._rvs, rv)

    def read(self, seq: int, limit: int = 1000) -> tuple[list[Event], int, bool]:
        """Events from ``seq`` on: (events, next seq, whether some were already trimmed)."""
        if seq < self._base:
            return [], seq, True
        start = seq - self._base
        chunk = self._events[start:start + limit]
        return chunk, seq + len(chunk), False

    def since(self, rv: int) -> list[Event]:
        """Every event newer than ``rv``, oldest first."""
        return self._events[bisect.bisect_right(self._rvs, rv):]
