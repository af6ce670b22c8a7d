"""Prometheus metrics: YurtHub's names where the meaning matches, plus the cache's own.

Each hub owns a private registry (tests run several hubs in one process).  Counters carry
the ``_total`` suffix that the Python client adds to every counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Every collector of one hub."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.server_healthy = Gauge(
            "node_yurthub_server_healthy_status", "1 when the cloud server is healthy",
            ["server"], registry=r)
        self.in_flight = Gauge(
            "node_yurthub_in_flight_requests_total", "requests being served right now",
            registry=r)
        self.traffic = Counter(
            "node_yurthub_proxy_traffic_collector", "response bytes sent to clients by the "
            "remote proxy", ["client", "verb", "resource", "subresources"], registry=r)
        self.requests = Counter(
            "yurthub_requests", "requests answered, by where the answer came from",
            ["client", "verb", "source", "code"], registry=r)
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
        self.cache_overflows = Counter(
            "yurthub_cache_tee_overflows", "responses whose cache copy overflowed the tee "
            "budget", registry=r)

    def add_collector(self, collect: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        """Metrics computed at scrape time (cache sizes, sync ages) from a callback."""

        class _Collector:
            def collect(self) -> Iterable[GaugeMetricFamily]:
                return collect()

            def describe(self) -> Iterable[GaugeMetricFamily]:
                return []

        self.registry.register(_Collector())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
