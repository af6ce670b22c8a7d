"""Prometheus metrics: YurtHub's names where the meaning matches, plus the cache's own.

Each hub owns a private registry (tests run several hubs in one process).  Counters carry
the ``_total`` suffix that the Python client adds to every counter.  Label values that a
client chooses (its User-Agent, the resource in its URL) pass through a ``BoundedLabel``:
known values always, a few others first come first served, then ``other``; so ``/metrics``
stays the same size whatever clients send.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "OTHER", "Bounded", "BoundedLabel", "Metrics"]

OTHER = "other"
# How many values beyond the known ones each client-chosen label may take.
EXTRA_COMPONENTS = 16
EXTRA_RESOURCES = 16
EXTRA_SUBRESOURCES = 4
KNOWN_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete",
               "deletecollection", "head", "options", "proxy", "connect")
KNOWN_SUBRESOURCES = ("", "-", "status", "log", "exec", "attach", "portforward", "proxy",
                      "binding", "eviction", "scale", "token", "approval", "finalize",
                      "ephemeralcontainers", "resize")
# (with "@pod": a pod's component on 10268, as many as the names themselves; a local
# user's "@<uid>" is folded, as UIDs are not bounded)
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(@pod)?")


class BoundedLabel:
    """Keeps one label's distinct values bounded: ``known`` values pass, then the first
    ``extra`` other values that look like names (at most 63 characters of ``[a-z0-9._-]``,
    ``@pod`` after them), and everything else becomes ``other``.  Safe from any thread."""

    def __init__(self, name: str, known: Iterable[str] = (), extra: int = 0,
                 on_fold: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.extra = extra
        self._known = frozenset(known)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._on_fold = on_fold or (lambda name: None)

    def __call__(self, value: str) -> str:
        if value in self._known or value in self._seen or value == OTHER:
            return value  # (OTHER: a value already folded, bounded twice, takes no slot)
        if _NAME.fullmatch(value):
            with self._lock:
                if value in self._seen:
                    return value
                if len(self._seen) < self.extra:
                    self._seen.add(value)
                    return value
        self._on_fold(self.name)
        return OTHER

    @property
    def values(self) -> frozenset[str]:
        """Every value that passes as itself."""
        with self._lock:
            return self._known | frozenset(self._seen)


class Bounded:
    """A labelled counter whose first label values pass their ``BoundedLabel`` at every
    ``labels()`` call, whoever the caller: a proxy path that forgets to bound what a client
    chose cannot grow ``/metrics``."""

    def __init__(self, counter: Counter, *bounds: Callable[[str], str]) -> None:
        self.counter = counter
        self._bounds = bounds

    def labels(self, *values: str) -> Counter:
        bounded = [b(v) for b, v in zip(self._bounds, values, strict=False)]
        return self.counter.labels(*bounded, *values[len(bounded):])


class Metrics:
    """Every collector of one hub.

    ``components`` and ``resources`` are the values their labels always take as they are
    (the cache agents, the built-in resources); a few more are let through as they come.
    """

    def __init__(self, components: Iterable[str] = (), resources: Iterable[str] = ()) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.labels_folded = Counter(
            "yurthub_metrics_labels_folded", "label values reported as 'other' because too "
            "many distinct ones came from clients", ["label"], registry=r)
        fold = self._folded
        self.component = BoundedLabel("component", {*components, "unknown"},
                                      EXTRA_COMPONENTS, fold)
        self.resource = BoundedLabel("resource", {*resources, ""}, EXTRA_RESOURCES, fold)
        self.subresource = BoundedLabel("subresource", KNOWN_SUBRESOURCES, EXTRA_SUBRESOURCES,
                                        fold)
        self.verb = BoundedLabel("verb", KNOWN_VERBS, 0, fold)
        self.server_healthy = Gauge(
            "node_yurthub_server_healthy_status", "1 when the cloud server is healthy",
            ["server"], registry=r)
        self.in_flight = Gauge(
            "node_yurthub_in_flight_requests_total", "requests of the API proxy being "
            "served right now (from the cloud, the cache or the shared lists)",
            registry=r)
        self.traffic = Bounded(Counter(
            "node_yurthub_proxy_traffic_collector", "response bytes sent to clients by the "
            "remote proxy", ["client", "verb", "resource", "subresources"], registry=r),
            self._client, self.verb, self.resource, self.subresource)
        self.requests = Bounded(Counter(
            "yurthub_requests", "requests answered, by where the answer came from",
            ["client", "verb", "source", "code"], registry=r), self._client, self.verb)
        self.open_watches = Gauge(
            "yurthub_open_watches", "watches open right now", ["source"], registry=r)
        self.cache_entries_dropped = Counter(
            "yurthub_cache_entries_dropped", "responses not committed to the cache",
            ["component", "resource", "reason"], registry=r)
        self.cache_commits = Counter(
            "yurthub_cache_commits", "cache transactions committed", ["kind"], registry=r)
        self.cache_write_errors = Counter(
            "yurthub_cache_write_errors", "cache transactions that failed to commit",
            registry=r)
        self.cache_invalid_keys = Counter(
            "yurthub_cache_invalid_keys", "responses not cached because a name or path "
            "segment is not a valid cache key", ["component"], registry=r)
        self.cache_damaged = Counter(
            "yurthub_cache_damaged_files", "cached files found damaged while the hub ran "
            "(torn, replaced, naming another object) and set aside",
            ["component", "resource"], registry=r)
        self.requests_refused = Counter(
            "yurthub_requests_refused", "requests refused for who sent them: a user not "
            "allowed the hub's credentials, the node Lease from another user than kubelet's, "
            "a token offline that the cloud was never seen to accept for it", ["reason"],
            registry=r)
        self.cache_overflows = Counter(
            "yurthub_cache_tee_overflows", "responses whose cache copy overflowed the tee "
            "budget", registry=r)
        self.cache_evictions = Counter(
            "yurthub_cache_evictions", "what the cache's bounds made it forget: collections "
            "(quota, collections), views of a collection, learned resource scopes",
            ["what", "reason"], registry=r)
        self.cache_stopped = Gauge(
            "yurthub_cache_stopped", "1 while caching is stopped (quota, collections, "
            "no-space, read-only, root-gone); the hub goes on proxying", ["reason"], registry=r)
        self.insecure_upstream = Gauge(
            "yurthub_insecure_upstream", "1 for a cloud server reached without a verified "
            "TLS connection", ["server", "reason"], registry=r)
        self.cache_watch_events = Counter(
            "yurthub_cache_watch_events", "watch events read by the cache writer: applied, "
            "or skipped as the duplicate of one another watch of the same view applied",
            ["result"], registry=r)
        self.cache_tee_backlog = Gauge(
            "yurthub_cache_tee_backlog_bytes", "bytes of response copies waiting in memory "
            "for the cache writer (all tees together)", registry=r)

    def _folded(self, label: str) -> None:
        self.labels_folded.labels(label).inc()

    def bounded_label(self, name: str, known: Iterable[str], extra: int) -> BoundedLabel:
        """Another bounded label whose folds are counted with the others."""
        return BoundedLabel(name, known, extra, self._folded)

    def _client(self, component: str) -> str:
        """The client label of a request (its component, bounded; "unknown" when none)."""
        return self.component(component or "unknown")

    def add_collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Metrics computed at scrape time (cache sizes, sync ages) from a callback."""

        class _Collector:
            def collect(self) -> Iterable[Metric]:
                return collect()

            def describe(self) -> Iterable[Metric]:
                return []

        self.registry.register(_Collector())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


Certificates = Callable[[], Iterable[tuple[str, float, float | None]]]


def certificate_collector(certificates: Certificates) -> Callable[[], Iterable[Metric]]:
    """When the hub's certificates end and are due for renewal (``certificates``: which,
    expires at, renewal due at or None), so that a renewal that keeps failing (a CSR never
    approved, a clock ahead of the cloud's) can be alerted on before the certificate expires
    and readyz says so."""
    def collect() -> Iterable[Metric]:
        expires = GaugeMetricFamily(
            "yurthub_certificate_expiration_timestamp_seconds", "when the hub's certificate "
            "expires (client: its identity to the cloud; serving: port 10268)",
            labels=["certificate"])
        renewal = GaugeMetricFamily(
            "yurthub_certificate_renewal_timestamp_seconds", "when the hub asks for a new "
            "certificate (70-90% of its lifetime); past it, renewals are failing or due",
            labels=["certificate"])
        for which, not_after, due in certificates():
            expires.add_metric([which], not_after)
            if due is not None:
                renewal.add_metric([which], due)
        return [expires, renewal]
    return collect
