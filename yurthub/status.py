"""The status document: what ``/status`` shows and ``/v1/status`` returns, gathered from the
hub's parts at request time.

Everything here reads what the parts already keep (the servers' last probes, the store's
states and sizes, the stream registry's open watches, the recorder's recent fallbacks and
refusals, the metrics' counters): building the document changes nothing and takes no lock
that a request path holds for long.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from yurthub import __version__
from yurthub.cache.inventory import iso, store_rows
from yurthub.config import Config
from yurthub.credentials import CredentialSource
from yurthub.filters.manager import FilterManager
from yurthub.health import HealthChecker
from yurthub.metrics import Metrics
from yurthub.proxy.streams import StreamRegistry
from yurthub.recorder import FALLBACK, REFUSAL, Recorder
from yurthub.storage import DiskStore
from yurthub.storage.quarantine import quarantined_paths
from yurthub.upstream import Upstream


def quarantined_files(root: str) -> int:
    """The files in the cache's ``_quarantine/`` now: set aside by this run or an earlier
    one, until the operator removes them (``yurthub cache verify`` lists them).  The store
    counts only what this run set aside, which a restart would hide."""
    try:
        # The root itself may be reached through a symlink (an operator's choice).
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        return len(quarantined_paths(fd))
    finally:
        os.close(fd)


@dataclass
class StatusSource:
    """The hub's parts the status document is read from."""

    cfg: Config
    upstream: Upstream
    health: HealthChecker | None
    store: DiskStore
    streams: StreamRegistry
    recorder: Recorder
    metrics: Metrics
    filters: FilterManager
    credentials: CredentialSource
    ready: Callable[[], bool]
    autonomy: Callable[[], dict[str, Any] | None] = lambda: None
    # why the hub is not ready (readyz's text), and why caching stopped (None: it goes on)
    readiness: Callable[[], list[tuple[str, str | None]]] = lambda: []
    caching_stopped: Callable[[], str | None] = lambda: None

    def document(self) -> dict[str, Any]:
        now = time.time()
        doc: dict[str, Any] = {
            "node": self.cfg.node_name, "version": __version__, "time": iso(now),
            "mode": self.cfg.working_mode, "ready": self._ready(), "cloud": self._cloud(now),
            "cache": self._cache(now), "watches": self._watches(),
            "events": [dict(e.to_json(), ageSeconds=round(max(0.0, now - e.time)))
                       for e in self.recorder.recent()],
            "eventCounts": {"fallbacks": self.recorder.counts.get(FALLBACK, 0),
                            "refusals": self.recorder.counts.get(REFUSAL, 0)},
            "tee": self._tee(), "filters": self._filters(), "identity": self._identity(),
        }
        autonomy = self.autonomy()
        if autonomy is not None:
            doc["autonomy"] = autonomy
        return doc

    def _ready(self) -> dict[str, Any]:
        """What ``/v1/readyz`` says: a hub that stopped caching (a read-only or full disk) or
        waits for its identity or its filters' configuration is not ready."""
        checks = self.readiness()
        failing = [why for _, why in checks if why is not None]
        return {"ready": not failing, "reason": failing[0] if failing else None,
                "reasons": failing,
                "checks": [{"name": name, "ok": why is None, "reason": why}
                           for name, why in checks]}

    def _cloud(self, now: float) -> dict[str, Any]:
        online = self.upstream.any_healthy()
        since = self.health.cloud_since if self.health is not None else 0.0
        servers = []
        for s in self.upstream.servers:
            servers.append({
                "url": s.url, "healthy": s.healthy,
                "since": iso(s.since) or None, "sinceSeconds": _ago(now, s.since),
                "lastProbe": iso(s.last_probe) or None,
                "lastProbeSeconds": _ago(now, s.last_probe),
                "reason": s.last_error or ("" if s.healthy or not s.last_probe else
                                           "waiting for enough successful probes in a row"),
            })
        return {"online": online, "since": iso(since) or None,
                "sinceSeconds": _ago(now, since),
                "healthChecked": self.health is not None, "servers": servers}

    def _cache(self, now: float) -> dict[str, Any]:
        rows = store_rows(self.store) if self.ready() else []
        disk: dict[str, Any] = {}
        try:
            st = os.statvfs(self.cfg.disk_cache_path)
            disk = {"freeBytes": st.f_bavail * st.f_frsize,
                    "totalBytes": st.f_blocks * st.f_frsize}
            disk["freePercent"] = round(100 * disk["freeBytes"] / max(disk["totalBytes"], 1),
                                        1)
            if st.f_files:  # a file system out of inodes is full whatever bytes it has left
                disk.update(freeInodes=st.f_favail, totalInodes=st.f_files)
        except OSError as e:
            disk = {"error": e.strerror or str(e)}
        return {"root": self.cfg.disk_cache_path, "disk": disk,
                "stopped": self.caching_stopped(),
                "objects": sum(r.objects for r in rows), "bytes": sum(r.bytes for r in rows),
                "quarantined": quarantined_files(self.cfg.disk_cache_path),
                "damagedDocuments": self.store.damaged_documents() if self.ready() else [],
                "collections": [r.to_json(now) for r in rows]}

    def _watches(self) -> list[dict[str, Any]]:
        per: dict[str, dict[str, int]] = {}
        for (component, source), n in self.streams.open_watches().items():
            row = per.setdefault(component or "-", {"remote": 0, "local": 0, "shared": 0})
            row[source] = row.get(source, 0) + n
        return [{"component": c, **v} for c, v in sorted(per.items())]

    def _tee(self) -> dict[str, Any]:
        reg = self.metrics.registry
        dropped = [{"component": labels["component"], "resource": labels["resource"],
                    "reason": labels["reason"], "count": int(v)}
                   for labels, v in _samples(reg, "yurthub_cache_entries_dropped_total")]
        overflows = sum(v for _, v in _samples(reg, "yurthub_cache_tee_overflows_total"))
        return {"overflows": int(overflows), "budgetBytes": self.cfg.cache_tee_budget,
                "dropped": sorted(dropped, key=lambda d: (-d["count"], d["component"]))}

    def _filters(self) -> dict[str, Any]:
        snap = self.filters.snapshot
        return {"enabled": self.cfg.enable_resource_filter,
                "disabled": list(self.cfg.disabled_resource_filters),
                "active": [f.name for f in self.filters.active],
                "pool": snap.ctx.pool or None, "zone": snap.ctx.zone or None,
                "notReady": self.filters.not_ready()}

    def _identity(self) -> dict[str, Any]:
        c = self.credentials
        cert_file = str(getattr(c, "client_cert_file", "") or "")
        token_file = str(getattr(c, "token_file", "") or "")
        ca_file = str(getattr(c, "ca_file", "") or "")
        if cert_file:
            method = "client certificate"
        elif token_file or getattr(c, "token", ""):
            method = "bearer token"
        else:
            method = "none (anonymous)"
        out: dict[str, Any] = {"method": method,
                               "tls": ("NOT verified (insecure_skip_tls_verify)" if c.insecure
                                       else f"verified with {ca_file}" if ca_file
                                       else "verified with the system's CAs")}
        problem = c.identity_problem()
        if problem:
            out["problem"] = problem
        summary = getattr(c, "certificate_summary", None)  # a certificate the hub manages
        cert = summary() if summary is not None else None
        if cert is not None:
            out["certificate"] = cert
        for key, path in (("clientCertificate", cert_file), ("tokenFile", token_file)):
            if path:
                try:
                    out[key] = {"file": path, "modified": iso(os.stat(path).st_mtime)}
                except OSError as e:
                    out[key] = {"file": path, "error": e.strerror or str(e)}
        return out


def _ago(now: float, t: float) -> int | None:
    return round(max(0.0, now - t)) if t else None


def _samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for family in registry.collect():
        for s in family.samples:
            if s.name == name:
                out.append((dict(s.labels), float(s.value)))
    return out
