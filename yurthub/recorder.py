"""The last few times the hub answered from the cache instead of the cloud, or refused.

One small, bounded recorder that the places where it happens report to (the router for
every answer from the cache and every refusal it turns into a Status); the status page
shows it.  Memory is bounded twice: at most ``limit`` events, each of bounded text.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from yurthub.redact import redact_url_secrets

LIMIT = 50
_TEXT_MAX = 300

FALLBACK = "fallback"   # answered from the cache
REFUSAL = "refusal"     # refused with a Status (503, 403, 429, ...)


@dataclass(frozen=True)
class Event:
    time: float
    kind: str
    component: str
    request: str
    reason: str
    code: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        return d


class Recorder:
    """Thread-safe; ``record`` never raises and costs one append."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._events: deque[Event] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self.counts = {FALLBACK: 0, REFUSAL: 0}

    def record(self, kind: str, component: str, request: str, reason: str,
               code: int = 200) -> None:
        # The page is any local user's to read: a credential in the target (``?access_token=``)
        # or in a reason quoting it is its sender's only, as in the log.
        texts = (_cut(component or "-"), _cut(redact_url_secrets(request)),
                 _cut(redact_url_secrets(reason)))
        with self._lock:  # the time read under the lock: the events stay in time order
            self._events.append(Event(time.time(), kind, *texts, code))
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def recent(self) -> list[Event]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._events))


def _cut(text: str) -> str:
    return text if len(text) <= _TEXT_MAX else text[:_TEXT_MAX - 3] + "..."
