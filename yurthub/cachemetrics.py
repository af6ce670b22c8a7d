"""The cache's figures for /metrics, computed at scrape time from the store: sizes, views'
freshness, the quota, the disk, the node's Autonomy verdict."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily

from yurthub.cache.essentials import Verdict
from yurthub.cache.manager import CacheManager
from yurthub.cache.views import CollectionState
from yurthub.config import Config
from yurthub.kube.resources import BUILTIN, ResourceType
from yurthub.metrics import EXTRA_RESOURCES, OTHER, Metrics
from yurthub.status import quarantined_files
from yurthub.storage import DiskStore


def _dirname(rt: ResourceType) -> str:
    """The cache's directory name of a resource (``pods.v1.core``)."""
    return f"{rt.resource}.{rt.version}.{rt.group or 'core'}"



class CacheMetrics:
    """The collector of the cache's gauges (``collect``); ``ready`` says the cache tree is
    recovered, ``verdict`` is the Autonomy condition's last verdict (None before one)."""

    def __init__(self, cfg: Config, store: DiskStore, cache: CacheManager, metrics: Metrics,
                 ready: Callable[[], bool], verdict: Callable[[], Verdict | None]) -> None:
        self.cfg = cfg
        self.store = store
        self.cache = cache
        self.metrics = metrics
        self._ready = ready
        self._verdict = verdict
        self._collection_label = metrics.bounded_label(
            "collection", {_dirname(r) for r in BUILTIN}, EXTRA_RESOURCES)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The cache's size and freshness, computed at scrape time from the store.

        Collections of components and resources beyond the labels' bounds are summed up
        under ``other`` (and their views not shown), so the output stays bounded.
        """
        labels = ["component", "resource"]
        objects = GaugeMetricFamily("yurthub_cache_objects", "objects in the cache", labels=labels)
        size = GaugeMetricFamily("yurthub_cache_bytes", "bytes of cached objects", labels=labels)
        history = GaugeMetricFamily("yurthub_cache_history_bytes", "bytes of watch history "
                                    "kept for offline watch resume", labels=labels)
        age = GaugeMetricFamily(
            "yurthub_cache_sync_age_seconds", "seconds since a cached view was last listed "
            "completely", labels=[*labels, "view"])
        stale = GaugeMetricFamily("yurthub_cache_view_stale", "1 when a cached view may be "
                                  "incomplete until its next list", labels=[*labels, "view"])
        incomplete = GaugeMetricFamily(
            "yurthub_cache_view_incomplete", "1 when a cached view lost a member (a damaged "
            "file set aside): offline lists it would answer are refused until its next list",
            labels=[*labels, "view"])
        quarantined = GaugeMetricFamily("yurthub_cache_quarantined_files",
                                        "files in the cache's _quarantine/, moved aside "
                                        "because they could not be trusted")
        quota = GaugeMetricFamily("yurthub_cache_quota_bytes", "the cache's quota",
                                  labels=["scope"])
        used = GaugeMetricFamily("yurthub_cache_used_bytes", "bytes the cache holds against "
                                 "its quota (objects and history)")
        collections = GaugeMetricFamily("yurthub_cache_collections", "collections in the cache")
        scopes = GaugeMetricFamily("yurthub_cache_learned_scopes", "resources whose scope the "
                                   "cache learned (bounded, least recently used forgotten)")
        out = [objects, size, history, age, stale, incomplete, quarantined, quota, used,
               collections, scopes]
        quota.add_metric(["total"], self.cfg.cache_quota)
        quota.add_metric(["component"], self.cfg.cache_component_quota)
        scopes.add_metric([], len(self.cache.scopes))
        disk_free = GaugeMetricFamily("yurthub_cache_disk_free_bytes", "bytes available to the "
                                      "hub on the cache's file system")
        disk_size = GaugeMetricFamily("yurthub_cache_disk_size_bytes",
                                      "size of the cache's file system")
        autonomy = GaugeMetricFamily("yurthub_node_autonomy", "1 while the node's Autonomy "
                                     "condition is True: everything its components need to run "
                                     "without the cloud is cached, fresh and complete")
        inodes_free = GaugeMetricFamily(
            "yurthub_cache_disk_free_inodes", "inodes available to the hub on the cache's "
            "file system (none on file systems that do not count them): with none left, "
            "caching stops however many bytes are free")
        out += [disk_free, disk_size, inodes_free, autonomy]
        verdict = self._verdict()
        if verdict is not None:
            autonomy.add_metric([], 1 if verdict.status == "True" else 0)
        try:
            st = os.statvfs(self.cfg.disk_cache_path)
            disk_free.add_metric([], st.f_bavail * st.f_frsize)
            disk_size.add_metric([], st.f_blocks * st.f_frsize)
            if st.f_files:
                inodes_free.add_metric([], st.f_favail)
        except OSError:
            pass  # no samples: an alert on the ratio stays silent, the status page says why
        if not self._ready():
            return out
        stats = self.store.stats()
        now = time.time()
        sums: dict[tuple[str, str], list[int]] = {}
        for ck, cs in stats.collections.items():
            key = (self.metrics.component(ck.component), self._collection_label(ck.dirname))
            total = sums.setdefault(key, [0, 0, 0])
            total[0] += cs.objects
            total[1] += cs.bytes
            total[2] += cs.history_bytes
            if OTHER in key:
                continue
            for view in CollectionState.from_json(self.store.state(ck) or {}).views.values():
                vkey = [*key, str(view.key)]
                age.add_metric(vkey, max(0.0, now - view.synced_at))
                stale.add_metric(vkey, 1 if view.stale else 0)
                incomplete.add_metric(vkey, 1 if view.incomplete else 0)
        for key, (n, b, h) in sums.items():
            objects.add_metric(list(key), n)
            size.add_metric(list(key), b)
            history.add_metric(list(key), h)
        used.add_metric([], sum(cs.bytes + cs.history_bytes
                                for cs in stats.collections.values()))
        collections.add_metric([], len(stats.collections))
        quarantined.add_metric([], quarantined_files(self.cfg.disk_cache_path))
        return out
