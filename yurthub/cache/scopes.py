"""What the cache has learned of resources it has no table for: their scope and kind, bounded.

Custom resources are namespaced or not, and have a kind, as discovery documents say, as the
collections already on disk say, or as a request the cloud answered 2xx shows (a namespace
in its URL).  Nothing a client sends is remembered before the cloud vouched for it, and the
memory is a least-recently-used map of ``MAX_LEARNED`` resources, so no stream of made-up
resource names grows it (evictions are counted in ``yurthub_cache_evictions``).

A cluster-wide list or watch of a custom resource shows no scope, and informers never ask
discovery: an operator's informer on its own resource was never cached.  So the hub asks
the cloud's discovery of that group/version itself (``discover``), at most once per
``DISCOVERY_RETRY`` seconds each.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import LRUCache

from yurthub.metrics import Metrics

MAX_LEARNED = 4096
DISCOVERY_RETRY = 60.0   # seconds before a group/version's discovery is asked again
MAX_ASKED = 256          # group/versions whose last ask is remembered


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
        # The cloud's discovery of one group/version, asked with the hub's own identity
        # (None when it cannot be had now); set by the app.
        self.ask: Callable[[str, str], bytes | None] | None = None
        self._asked: LRUCache[tuple[str, str], float] = LRUCache(MAX_ASKED)

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

    def discover(self, group: str, version: str) -> bool:
        """Learn the resources of ``group/version`` from the cloud's discovery; True when it
        answered.  Asked at most once per DISCOVERY_RETRY seconds (the caller's thread
        waits for the answer: the first list of a resource nothing showed the scope of)."""
        if self.ask is None or not group or not version:
            return False
        now = time.monotonic()
        with self._lock:
            last = self._asked.get((group, version))
            if last is not None and now - last < DISCOVERY_RETRY:
                return False
            self._asked[(group, version)] = now
        body = self.ask(group, version)
        try:
            resources = json.loads(body)["resources"] if body else None
        except (ValueError, TypeError, KeyError):
            resources = None
        if not isinstance(resources, list):
            return False
        for r in resources:
            if isinstance(r, dict) and isinstance(r.get("name"), str) and "/" not in r["name"] \
                    and isinstance(r.get("namespaced"), bool):
                kind = r.get("kind")
                self.learn(group, r["name"], r["namespaced"], kind if isinstance(kind, str) else "")
        return True
