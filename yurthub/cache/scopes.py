"""What the cache has learned of resources it has no table for: their scope and kind, bounded.

Custom resources are namespaced or not, and have a kind, as discovery documents say, as the
collections already on disk say, or as a request the cloud answered 2xx shows (a namespace
in its URL).  Nothing a client sends is remembered before the cloud vouched for it, and the
memory is a least-recently-used map of ``MAX_LEARNED`` resources, so no stream of made-up
resource names grows it (evictions are counted in ``yurthub_cache_evictions``).
"""

from __future__ import annotations

import threading
from typing import Any

from cachetools import LRUCache

from yurthub.metrics import Metrics

MAX_LEARNED = 4096


class _Counted(LRUCache):
    """An LRUCache that counts what it evicts."""

    def __init__(self, maxsize: int, on_evict: Any) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> Any:
        item = super().popitem()
        self._on_evict()
        return item


class Scopes:
    """(group, resource) -> (namespaced, kind) for resources that are not built in."""

    def __init__(self, metrics: Metrics, maxsize: int = MAX_LEARNED) -> None:
        evicted = metrics.cache_evictions.labels("scope", "lru")
        self._map = _Counted(maxsize, evicted.inc)
        self._lock = threading.Lock()

    def get(self, group: str, resource: str) -> tuple[bool, str] | None:
        with self._lock:
            return self._map.get((group, resource))

    def learn(self, group: str, resource: str, namespaced: bool, kind: str = "") -> None:
        """Remember a resource's scope (and kind, when known; a known kind is kept)."""
        with self._lock:
            old = self._map.get((group, resource))
            self._map[(group, resource)] = (namespaced, kind or (old[1] if old else ""))

    def __len__(self) -> int:
        with self._lock:
            return len(self._map)
