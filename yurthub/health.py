"""The health checker: which cloud servers are usable, and the node Lease heartbeat.

design: one thread probes every server each ``heartbeat_interval_seconds``.  A probe is
``heartbeat_failed_retry`` attempts of ``heartbeat_timeout_seconds`` each; a failed probe
marks its server unhealthy at once, ``heartbeat_healthy_threshold`` successes in a row make
it healthy again (YurtHub's semantics).  While kubelet is alive — it sent a lease request
within ``kubelet_health_grace_period`` — the probe of the first healthy server is the
renewal of this node's Lease in ``kube-node-lease`` (kubelet's own lease requests are
answered from the cache), so a dead kubelet still lets the node go NotReady.  Unlike
YurtHub, a dead kubelet does not make the cloud look unhealthy: the other probes are a
plain ``GET /readyz``.  A request that cannot connect wakes the checker for an immediate
probe instead of waiting for the next tick.
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

from yurthub.config import Config
from yurthub.errors import ProbeFailed
from yurthub.metrics import Metrics
from yurthub.threads import BackgroundThread
from yurthub.upstream import Server, Upstream, explain

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_of(data: bytes, path: str) -> dict[str, Any]:
    """The Lease a 200 answer carries.  A body that is none (a proxy's or captive portal's
    HTML page in front of the apiserver) is a failed probe: the apiserver did not answer,
    and the thread that reads it must not die of it."""
    try:
        lease = json.loads(data)
    except ValueError:
        lease = None
    if isinstance(lease, dict):
        md, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        if isinstance(md, dict) and isinstance(spec, dict) \
                and isinstance(md.get("annotations") or {}, dict):
            return lease
    raise ProbeFailed(f"GET {path}: HTTP 200 without a Lease: {data[:80]!r}")


class HealthChecker(BackgroundThread):
    """Keeps ``Server.healthy`` current and renews the node Lease."""

    name = "yurthub-health"

    def __init__(self, cfg: Config, upstream: Upstream, metrics: Metrics, *,
                 on_change: Callable[[bool], None] | None = None,
                 on_server_down: Callable[[Server], None] | None = None,
                 on_lease: Callable[[bytes], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.cfg = cfg
        self.upstream = upstream
        self.metrics = metrics
        self.on_change = on_change or (lambda healthy: None)
        self.on_server_down = on_server_down or (lambda server: None)
        self.on_lease = on_lease or (lambda body: None)
        self.clock = clock
        self._wake = threading.Event()
        self._successes: dict[str, int] = {}
        self._known: dict[str, bool] = {}
        self._kubelet_seen: float | None = None
        self._was_healthy: bool | None = None
        self.cloud_since = 0.0   # wall time the cloud last went healthy or unhealthy
        self.probes = 0
        for s in upstream.servers:
            metrics.server_healthy.labels(s.url).set(1 if s.healthy else 0)

    # -- called from request threads --------------------------------------------------------

    def cloud_healthy(self) -> bool:
        return self.upstream.any_healthy()

    def kubelet_lease_seen(self) -> None:
        """kubelet asked for its Lease: it is alive, keep heartbeating for it."""
        self._kubelet_seen = self.clock()

    def kubelet_alive(self) -> bool:
        seen = self._kubelet_seen
        return seen is not None and self.clock() - seen <= self.cfg.kubelet_health_grace_period

    def suspect(self, server: Server) -> None:
        """A request could not connect to ``server``: probe now rather than at the next tick."""
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        probe = self.probes == 0  # the hub probes once itself before it serves (app.Hub)
        while not self.stopping.is_set():
            if probe:
                self.probe_all()
            probe = True
            self._wake.wait(self.cfg.heartbeat_interval_seconds)
            self._wake.clear()

    def probe_all(self) -> None:
        # No lease renewal without the hub's own identity (bootstrapping, expired).
        renew = self.kubelet_alive() and self.upstream.identity_problem() is None
        for server in self.upstream.servers:
            if self.stopping.is_set():
                return
            ok = self._probe(server, renew_lease=renew)
            if ok and renew:
                renew = False  # one renewal per tick is enough
            self._record(server, ok)
        self.probes += 1
        healthy = self.upstream.any_healthy()
        if healthy != self._was_healthy:
            self.cloud_since = time.time()
            if self._was_healthy is None:
                # The state at start, so the journal says it even when it never changes.
                if healthy:
                    log.info("cloud is healthy at start")
                else:
                    log.warning("cloud is UNHEALTHY at start; serving from the cache")
            elif healthy:
                # why: at WARNING, the recovery fired the log-based alerts the outage did
                log.info("cloud is now healthy")
            else:
                log.warning("cloud is now UNHEALTHY; serving from the cache")
            self._was_healthy = healthy
            self.on_change(healthy)

    def _record(self, server: Server, ok: bool) -> None:
        first = server.url not in self._known
        was = server.healthy
        server.last_probe = time.time()
        self._known[server.url] = True
        if ok:
            n = self._successes.get(server.url, 0) + 1
            self._successes[server.url] = n
            if not server.healthy and (first or n >= self.cfg.heartbeat_healthy_threshold):
                log.info("server %s is healthy", server.url)
                server.healthy = True
        else:
            self._successes[server.url] = 0
            if server.healthy or first:
                log.warning("server %s is unhealthy: %s", server.url,
                            server.last_error or "the probe failed")
            server.healthy = False
            if was:
                self.on_server_down(server)  # before the cloud's change: reads go elsewhere
        if first or server.healthy != was:
            server.since = server.last_probe
        self.metrics.server_healthy.labels(server.url).set(1 if server.healthy else 0)

    def _probe(self, server: Server, renew_lease: bool) -> bool:
        for attempt in range(self.cfg.heartbeat_failed_retry):
            try:
                if renew_lease:
                    self._renew_lease(server)
                else:
                    self._readyz(server)
                server.last_error = ""
                return True
            except ProbeFailed as e:
                server.last_error = str(e)[:300]
                log.debug("probe %d of %s failed: %s", attempt + 1, server.url, e)
                if server.url not in self._known or self.stopping.is_set():
                    return False  # the first probe decides fast: serving must not wait
        return False

    # -- HTTP -------------------------------------------------------------------------------

    def _request(self, server: Server, method: str, path: str, body: Any = None
                 ) -> tuple[int, bytes]:
        try:
            status, data = self.upstream.own_request(
                server, method, path, body, agent="yurthub/health",
                timeout=self.cfg.heartbeat_timeout_seconds)
        except (HTTPError, OSError) as e:
            raise ProbeFailed(explain(e)) from e
        if status >= 500 or status == 429:
            raise ProbeFailed(f"{method} {path}: HTTP {status}")
        return status, data

    def _readyz(self, server: Server) -> None:
        status, _ = self._request(server, "GET", "/readyz")
        if status in (401, 403):
            log.debug("%s /readyz answered %d; reachable", server.url, status)

    def _renew_lease(self, server: Server) -> None:
        node = self.cfg.node_name
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{node}"
        status, data = self._request(server, "GET", path)
        spec = {"holderIdentity": node,
                "leaseDurationSeconds": self.cfg.kubelet_health_grace_period,
                "renewTime": _now_micro()}
        if status == 404:
            lease: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": LEASE_NAMESPACE}, "spec": spec}
            status, data = self._request(
                server, "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", lease)
        elif status == 200:
            lease = _lease_of(data, path)
            lease["spec"] = {**(lease.get("spec") or {}), **spec}
            annotations = (lease.get("metadata") or {}).get("annotations") or {}
            annotations.pop("openyurt.io/delegate-heartbeat", None)
            status, data = self._request(server, "PUT", path, lease)
        if status not in (200, 201):
            if status == 409:
                raise ProbeFailed("lease update conflicted")
            log.warning("renewing lease %s/%s on %s: HTTP %d", LEASE_NAMESPACE, node,
                        server.url, status)
            return  # reachable and answering: healthy, even if the lease was refused
        self.on_lease(data)
