"""The node's ``Autonomy`` condition: evaluated from the cache, patched onto the Node.

As YurtHub does (openyurt#2033), the hub itself writes the condition to its Node's status
in the cloud, with its own identity; unlike YurtHub, which reads the whole Node and sends
it back with ``UpdateStatus`` (racing kubelet's own status updates), it sends a strategic
merge patch of ``status.conditions`` holding only the ``Autonomy`` entry: conditions merge
by ``type``, so kubelet's conditions are never replaced or reordered.  The verdict (see
cache/essentials.py) is evaluated every heartbeat interval; it is sent when it changes,
and every 5 minutes to renew ``lastHeartbeatTime``, whenever the cloud is healthy.  A
refused or failed report (no RBAC for ``nodes/status``, a server going away) is retried
after a pause and logged once per distinct error, not at every tick.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from urllib3.exceptions import HTTPError

from yurthub.cache.essentials import Verdict, evaluate
from yurthub.config import Config
from yurthub.storage import DiskStore
from yurthub.threads import BackgroundThread
from yurthub.upstream import Upstream, explain

log = logging.getLogger(__name__)

CONDITION = "Autonomy"
RENEW_SECONDS = 300.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AutonomyReporter(BackgroundThread):
    """Keeps ``verdict`` current and the Node's ``Autonomy`` condition in step with it."""

    name = "yurthub-autonomy"

    def __init__(self, cfg: Config, store: DiskStore, upstream: Upstream,
                 cloud_healthy: Callable[[], bool], ready: Callable[[], bool]) -> None:
        super().__init__()
        self.cfg = cfg
        self.store = store
        self.upstream = upstream
        self.cloud_healthy = cloud_healthy
        self.ready = ready
        self.verdict: Verdict | None = None
        self.reported: Verdict | None = None
        self.reported_at = 0.0          # wall time of the last successful patch
        self.report_error = ""
        self._said = ""  # the report error last logged
        self._sent_at = 0.0             # monotonic
        self._transition = ""           # lastTransitionTime of the status on the Node
        self._retry_at = 0.0            # monotonic: no report before this after a failure
        self._pause = max(5.0, min(60.0, 6.0 * cfg.heartbeat_interval_seconds))
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.wait(self.cfg.heartbeat_interval_seconds):
            self.tick()

    def tick(self) -> None:
        if not self.ready():
            return
        verdict = evaluate(self.store, self.cfg.node_name,
                           frozenset(self.cfg.pool_scope_resources))
        with self._lock:
            self.verdict = verdict
        due = (self.reported is None or self.reported != verdict
               or time.monotonic() - self._sent_at >= RENEW_SECONDS)
        if due and time.monotonic() >= self._retry_at and self.cloud_healthy():
            self._report(verdict)

    def status(self) -> dict[str, Any] | None:
        """For /status: the current verdict and how it reached the Node."""
        with self._lock:
            verdict = self.verdict
        if verdict is None:
            return None
        return {**verdict.to_json(),
                "reportedToNode": self.reported == verdict,
                "reportedAt": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.reported_at))
                               if self.reported_at else None),
                "reportError": self.report_error}

    # -- the Node in the cloud ----------------------------------------------------------------

    def _report(self, verdict: Verdict) -> None:
        node = self.cfg.node_name
        path = f"/api/v1/nodes/{node}/status"
        try:
            if not self._transition or (self.reported and self.reported.status != verdict.status):
                self._transition = self._current_transition(path, verdict.status)
            condition = {"type": CONDITION, "status": verdict.status, "reason": verdict.reason,
                         "message": verdict.message, "lastHeartbeatTime": _now(),
                         "lastTransitionTime": self._transition}
            status, body = self._request("PATCH", path, {"status": {"conditions": [condition]}})
            if status != 200:
                raise OSError(f"PATCH {path}: HTTP {status}: {body[:200]!r}")
        except (OSError, HTTPError, ValueError) as e:
            # why: urllib3 1.26 names the connection by its address ("<...FinalHTTPConnection
            # object at 0x7f..>"), new at every retry: the same failure logged every pause
            error = (explain(e) if isinstance(e, HTTPError) else str(e))[:300]
            # why: a report that raced the health checker to a cloud just gone said what
            # the checker's line says; a failure to connect is told when it happens again
            again = error == self.report_error
            if error != self._said and (again or not isinstance(e, HTTPError)):
                self._said = error
                log.warning("cannot report the Autonomy condition of node %s (retrying every "
                            "%.0fs): %s", node, self._pause, error)
            self.report_error = error
            self._retry_at = time.monotonic() + self._pause
            return
        if self.reported is None or self.reported.status != verdict.status:
            log.info("node %s: Autonomy=%s (%s): %s", node, verdict.status, verdict.reason,
                     verdict.message)
        self.reported, self.report_error, self._said = verdict, "", ""
        self.reported_at, self._sent_at = time.time(), time.monotonic()

    def _current_transition(self, path: str, status: str) -> str:
        """The Node's lastTransitionTime of ``status``, or now when the status changes."""
        code, body = self._request("GET", path)
        if code == 200:
            node = json.loads(body)
            if not isinstance(node, dict):
                raise ValueError(f"GET {path}: the answer is not a Node object")
            found = node.get("status")
            conditions = found.get("conditions") if isinstance(found, dict) else None
            for c in conditions if isinstance(conditions, list) else []:
                if isinstance(c, dict) and c.get("type") == CONDITION \
                        and c.get("status") == status:
                    return str(c.get("lastTransitionTime") or _now())
        elif code != 404:
            raise OSError(f"GET {path}: HTTP {code}")
        return _now()

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        servers = self.upstream.candidates()
        if not servers:
            raise OSError("no healthy cloud server")
        return self.upstream.own_request(
            servers[0], method, path, body, agent="yurthub/autonomy",
            content_type="application/strategic-merge-patch+json",
            timeout=self.cfg.heartbeat_timeout_seconds * 2)
