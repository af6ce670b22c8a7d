"""Fault injection: what the next requests suffer (fail, stall, reset, drop) and added latency.

Rules are consumed in the order they were added, one rule per request, by requests whose
``method path?query`` contains the rule's ``match`` text (every request when it is empty).
Control requests (``/_sandbox/...``) never match.  A stalled response waits on the
``released`` event, which :meth:`Faults.release` (or clearing the faults) sets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

FAIL, STALL, RESET, DROP = "fail", "stall", "reset", "drop"

# What kube-apiserver (or a proxy in front of it) sends with each status code.
_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource version is too old"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to "
          "try again later"),
    500: ("InternalError", "an error on the server (\"\") has prevented the request from "
          "succeeding"),
    502: ("InternalError", "bad gateway"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may "
          "still be processing the request"),
}


def reason_for(status: int) -> tuple[str, str]:
    """The Status reason and message that go with an injected HTTP status."""
    return _REASONS.get(status, ("InternalError" if status >= 500 else "BadRequest",
                                 f"injected failure (HTTP {status})"))


@dataclass
class Rule:
    """One armed fault: ``count`` more requests get ``kind``."""

    kind: str
    count: int
    match: str = ""
    status: int = 503
    after_bytes: int = 0
    retry_after: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "match": self.match,
                "status": self.status, "afterBytes": self.after_bytes,
                "retryAfter": self.retry_after}


class Faults:
    """The armed faults and the latency; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self.latency = 0.0
        self.released = threading.Event()

    def add(self, kind: str, count: int = 1, *, match: str = "", status: int = 503,
            after_bytes: int = 0, retry_after: int | None = None) -> None:
        if kind not in (FAIL, STALL, RESET, DROP):
            raise ValueError(f"unknown fault {kind!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if not 100 <= status <= 599:
            raise ValueError(f"status {status} is not an HTTP status")
        if after_bytes < 0:
            raise ValueError("after_bytes must not be negative")
        with self._lock:
            if kind == STALL:
                self.released.clear()
            self._rules.append(Rule(kind, count, match, status, after_bytes, retry_after))

    def take(self, target: str) -> Rule | None:
        """Consume and return the first rule matching ``target`` (``METHOD /path?query``)."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.match and rule.match not in target:
                    continue
                rule.count -= 1
                if rule.count <= 0:
                    del self._rules[i]
                return Rule(rule.kind, 1, rule.match, rule.status, rule.after_bytes,
                            rule.retry_after)
        return None

    def release(self) -> None:
        """Let every stalled response go on."""
        self.released.set()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.latency = 0.0
        self.released.set()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"latencyMs": round(self.latency * 1000, 3),
                    "rules": [r.describe() for r in self._rules],
                    "stalled": not self.released.is_set()}
