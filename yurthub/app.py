"""The composition root: builds every part of the hub from a Config, in numbered steps.

Nothing here runs at import; ``Hub`` constructs objects (no threads), ``start`` opens the
cache tree and starts the background threads, ``begin_shutdown`` ends open streams
cleanly, ``stop`` stops the threads.  Nothing imports this module but the entry points.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from yurthub import cloudproxy, gil, linux
from yurthub import upstream as up
from yurthub.access.guard import AccessGuard
from yurthub.cache.manager import CacheManager
from yurthub.cache.mutation import load_meta
from yurthub.cache.views import CollectionState, check_state
from yurthub.cachemetrics import CacheMetrics
from yurthub.config import Config
from yurthub.connection import ConnectionInfo, Role, connection_of
from yurthub.errors import ServiceUnavailable
from yurthub.filters.manager import FilterManager
from yurthub.filtersource import PERSIST_KEY, FilterSource
from yurthub.health import LEASE_NAMESPACE, HealthChecker
from yurthub.hubserver import HubServer
from yurthub.identity.hub import HubIdentity
from yurthub.kube.printers import join_host_port
from yurthub.kube.resources import BUILTIN
from yurthub.metrics import Metrics, certificate_collector
from yurthub.nodecondition import AutonomyReporter
from yurthub.proxy import filtering
from yurthub.proxy.local import LocalProxy
from yurthub.proxy.mux import Multiplexer
from yurthub.proxy.remote import RemoteProxy
from yurthub.proxy.responses import status_response
from yurthub.proxy.rewinds import Rewinds, is_events
from yurthub.proxy.router import ProxyApp
from yurthub.proxy.secure import secure_request_identity
from yurthub.proxy.streams import Reason, StreamRegistry
from yurthub.proxy.tokens import KeptTokens
from yurthub.proxy.watchdog import Watchdog
from yurthub.recorder import Recorder
from yurthub.status import StatusSource
from yurthub.storage import DiskStore, Quota
from yurthub.storage.admintoken import AdminToken
from yurthub.worker import ConnectionStats, Limits, ListenerSpec, WorkerSettings
from yurthub.worker.settings import Wrapper

log = logging.getLogger(__name__)


class _AlwaysHealthy:
    """Cloud mode: no health checking, every configured server is trusted."""

    def __init__(self, upstream: up.Upstream) -> None:
        self.upstream = upstream

    def cloud_healthy(self) -> bool:
        return self.upstream.any_healthy()


class Hub:
    """Everything one gunicorn worker serves: the API proxy and the hub server."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._counted = gil.counted(self._dispatch)
        # Hundreds of threads (one per watch) would each get a malloc arena of their own,
        # and each arena keeps what was freed in it: a backlog once held stays as RSS.
        linux.limit_malloc_arenas(2)
        # Big bodies stream in pieces that are freed as fast as new ones are made: from
        # the arenas, not faulted in anew each time (the housekeeping's malloc_trim gives
        # back what stays free).
        linux.keep_freed_memory()
        # 1. metrics (labels that clients choose are bounded: the known values and a few),
        # and who may use the hub (raises ConfigError for an unknown kubelet_user)
        self.metrics = Metrics(components=cfg.effective_cache_agents - {"*"},
                               resources={r.resource for r in BUILTIN})
        self.guard = AccessGuard(cfg, self.metrics)
        # 2. the hub's identity towards the cloud and its serving certificate (raises
        #    ConfigError naming a bad file); no thread yet.  The worker wraps the secure
        #    proxy port's connections with the serving context of the moment.
        self.identity = HubIdentity(cfg)
        serving = self.identity.serving_tls
        self.worker_settings = worker_settings(cfg, self.guard.kubelet_uid,
                                               serving.wrap if serving else None)
        self._connections: ConnectionStats | None = None
        # 3. connection pools and server selection
        self.upstream = up.Upstream(cfg, self.identity.source)
        # 4. the cache tree and its writer
        self.store = DiskStore(cfg.disk_cache_path, history_limit=cfg.watch_history_size,
                               meta_loader=load_meta, state_check=check_state,
                               quota=Quota(cfg.cache_quota, cfg.cache_component_quota,
                                           cfg.cache_max_collections))
        self.cache = CacheManager(cfg, self.store, self.metrics)
        self.cache.scopes.ask = self.upstream.discovery
        # 5. streams, watchdog
        self.watchdog = Watchdog()
        self.streams = StreamRegistry(self.watchdog, self.metrics, cfg.client_send_timeout)
        # proxied watches from versions the cloud lost (etcd restored) end with 410
        self.rewinds = Rewinds(self.streams)
        self.cache.writer.on_went_back = lambda ck, rv, asked_at: \
            self.rewinds.collection_went_back(ck.group, ck.resource, rv, asked_at)
        # 6. health checking (edge mode): which servers to use, and the node Lease
        self.health: HealthChecker | None = None
        if cfg.working_mode == "edge":
            self.health = HealthChecker(cfg, self.upstream, self.metrics,
                                        on_change=self._cloud_changed, on_lease=self._lease,
                                        on_server_down=self._server_down)
        # 7. response filters: who gets which, and what they depend on (watched by the hub)
        self.filters = FilterManager(cfg)
        self.filters.on_change(self._filters_changed)
        self.filters.on_cache_agents(self.cache.set_extra_agents)
        self.filter_source = FilterSource(self.filters, self.upstream, cfg.node_name,
                                          self.cache.store_document)
        # 8. proxies and routing
        self.remote = RemoteProxy(
            self.upstream, self.cache, self.streams, self.metrics,
            max_watches=cfg.effective_max_watches,
            filters=self.filters, guard=self.guard,
            on_transport_error=self.health.suspect if self.health else None)
        self.local: LocalProxy | None = None
        self.tokens: KeptTokens | None = None
        if self.health is not None:
            self.tokens = KeptTokens(rotated=self.guard.memory.inherit)
            self.local = LocalProxy(cfg, self.cache, self.streams, self.metrics,
                                    bookmark_interval=cfg.watch_bookmark_interval,
                                    kubelet_seen=self.health.kubelet_lease_seen,
                                    filters=self.filters, upstream_ready=self._upstream_ready,
                                    tokens=self.tokens)
        cloud = self.health if self.health is not None else _AlwaysHealthy(self.upstream)
        self.recorder = Recorder()
        # 8b. the multiplexer: one upstream list+watch per pool-scoped resource, fed through
        # the proxy app itself (so it is cached, and served from the cache offline)
        self.mux: Multiplexer | None = None
        if cfg.pool_scope_resources:
            # The feed's requests come from the hub itself: a connection whose owner is not
            # looked up (trusted), not one the worker accepted.
            itself = ConnectionInfo(id=0, role=Role.PROXY, peer="yurthub", uid=None,
                                    identified=False, accepted_at=time.monotonic())
            self.mux = Multiplexer(cfg, self.streams, self.filters, self.metrics,
                                   guard=self.guard, feed_environ=itself.environ(),
                                   upstream=self.upstream, cache=self.cache)
        self.proxy_app = ProxyApp(self.remote, self.local, cloud, self.guard, self.recorder,
                                  self.mux, self.tokens)
        if self.mux is not None:
            self.mux.attach(self.proxy_app)
        self.metrics.add_collector(self._connection_metrics)
        self.metrics.add_collector(certificate_collector(self.identity.certificates))
        # 9. the hub server
        self.admin_token = AdminToken(cfg.disk_cache_path)
        self._ready = threading.Event()
        # 10. the node's Autonomy condition (edge mode, as YurtHub)
        self.autonomy: AutonomyReporter | None = None
        if self.health is not None:
            self.autonomy = AutonomyReporter(cfg, self.store, self.upstream,
                                             self.health.cloud_healthy, self._ready.is_set)
        reporter = self.autonomy
        self.metrics.add_collector(CacheMetrics(
            cfg, self.store, self.cache, self.metrics, self._ready.is_set,
            lambda: reporter.verdict if reporter is not None else None).collect)
        self.status = StatusSource(cfg, self.upstream, self.health, self.store, self.streams,
                                   self.recorder, self.metrics, self.filters,
                                   self.identity.source,
                                   ready=self._ready.is_set,
                                   autonomy=self.autonomy.status if self.autonomy else
                                   lambda: None,
                                   readiness=self.readiness_checks,
                                   caching_stopped=self.cache.not_ready)
        self.hub_app = HubServer(self.metrics, self.readiness_checks,
                                 status=self.status.document,
                                 purge=self.purge,
                                 cache_root=cfg.disk_cache_path,
                                 admin_token=lambda: self.admin_token.value,
                                 update_token=self.identity.update_token)
        self._not_ready_reason = "starting: the cache tree is being recovered"

    def start(self) -> None:
        for server, why in self.upstream.insecure_servers():
            self.metrics.insecure_upstream.labels(server, why).set(1)
            log.warning("cloud server %s is reached %s: its answers (and the credentials sent "
                        "to it) are not protected; use https:// with a verified certificate",
                        server, "over plain HTTP" if why == "http" else
                        "without checking its certificate (insecure_skip_tls_verify)")
        report = self.store.open()
        log.info("cache tree %s ready: %s", self.cfg.disk_cache_path, report.summary())
        self.guard.start(self.store)
        if self.tokens is not None:
            self.tokens.start(self.store)
        self.identity.start()
        self.cache.start(report.lost)
        self.filter_source.load(self.cache.read_document(PERSIST_KEY))
        # A start with other filter settings than the cache was written under marks views:
        # on disk before the first request, so no offline answer passes them for fresh.
        self.cache.settle()
        self.cache.set_extra_agents(self.filters.cache_agents())
        self.filter_source.start()
        if not self.admin_token.ensure():
            # The hub serves without it (a full disk); only a purge through it is refused,
            # until the cache writer's retries write it.
            self.cache.writer.space.retry(self.admin_token.ensure)
        self.watchdog.start()
        if self.health is not None:
            # YurtHub's initial probe: the cloud's state is known before the proxy serves.
            # Servers count as healthy until probed, and a cloud that takes connections but
            # answers none (after a reboot: a dead link, a load balancer without backends)
            # held kubelet's first requests until the read timeout (60 s) instead of
            # answering them from the cache.  A failed first probe is one attempt, so this
            # waits at most heartbeat_timeout_seconds per server; meanwhile requests get 503
            # with Retry-After.
            self._not_ready_reason = "starting: probing the cloud's servers"
            self.rewinds.lease_cached(self.cache.object_version(
                "kubelet", "coordination.k8s.io", "v1", "leases", LEASE_NAMESPACE,
                self.cfg.node_name))
            self.health.probe_all()
            self.health.start()
        self._ready.set()
        if self.autonomy is not None:
            self.autonomy.start()
        log.info("yurthub serving: proxy %s -> %s, hub server %s",
                 join_host_port(self.cfg.plain_bind_address, self.cfg.proxy_port),
                 ", ".join(cloudproxy.route(s.url).describe() for s in self.upstream.servers),
                 join_host_port(self.cfg.plain_bind_address, self.cfg.serve_port))
        if self.identity.serving_tls is not None:
            log.info("yurthub serving HTTPS: secure proxy %s (identity: %s)",
                     ", ".join(join_host_port(a, self.cfg.secure_proxy_port)
                               for a in self.cfg.secure_addresses),
                     self.identity.mode)
        elif self.cfg.secure_bind_address != self.cfg.plain_bind_address:
            log.warning("bind_address %s is for the TLS proxy port only, which is off "
                        "(secure_proxy_port = 0); the plain-HTTP ports listen on %s",
                        self.cfg.secure_bind_address, self.cfg.plain_bind_address)

    def _upstream_ready(self) -> bool:
        """Requests go upstream again: a healthy cloud, and the hub's own identity to use."""
        return self.health is not None and self.health.cloud_healthy() \
            and self.upstream.identity_problem() is None

    def _server_down(self, server: up.Server) -> None:
        """Requests sent to a server before it went silent would wait out their read timeout
        (60 s for a get): cut, a read goes to another server or to the cache now."""
        cut = self.upstream.cut_waiting(server)
        if cut:
            log.info("cut %d request(s) still waiting for %s's answer", cut, server.url)

    def _cloud_changed(self, healthy: bool) -> None:
        """Move open watches to where they should now be served."""
        if healthy:
            self.filter_source.cloud_healthy()
            n = self.streams.interrupt_all(Reason.CLOUD_UP, source="local")
        else:
            n = self.streams.interrupt_all(Reason.CLOUD_DOWN, source="remote")
        if n:
            log.info("ended %d watch(es) so their clients re-watch %s", n,
                     "upstream" if healthy else "from the cache")

    def _filters_changed(self, clients: set[tuple[str, str, str]], why: str) -> None:
        """What some clients should see changed: they relist, their cached views are stale.

        ``clients`` are (agent, group, resource): the filters go by the User-Agent's name,
        so every component of that name is touched (in-cluster ``kube-proxy@pod`` on 10268,
        another user's ``coredns@1000``), not only the one filed under the bare name."""
        n = self.streams.interrupt_where(Reason.FILTERS_CHANGED,
                                         filtering.watches_of(clients, by_agent=True))
        if n:
            log.info("ended %d watch(es) whose filters changed (%s)", n, why)
        self.cache.mark_stale(clients, f"the response filters changed ({why})")

    def _lease(self, body: bytes) -> None:
        """The node Lease the health checker renewed: kubelet's lease requests get it."""
        self.cache.store_object("kubelet", "coordination.k8s.io", "v1", "leases", body)
        try:
            rv = int(json.loads(body)["metadata"]["resourceVersion"])
        except (ValueError, KeyError, TypeError):
            return  # health.py checked it is a Lease; one without a version proves nothing
        # (answered now: the renewal was sent a moment ago)
        asked_at = time.monotonic()
        if self.rewinds.lease_renewed(rv, asked_at):
            # Every cached collection of kube-apiserver's etcd holds a past the cloud lost.
            # (also those kept from before this start, the Lease's baseline being older)
            why = f"the node Lease renewed at {rv}"
            self.cache.writer.went_back(
                rv, asked_at, why, lambda ck: is_events(ck.group, ck.resource),
                self.cache.on_disk(lambda ck: not is_events(ck.group, ck.resource), why))

    def attach_worker(self, stats: ConnectionStats) -> None:
        """The gunicorn worker's connection counts, for /metrics (called by the worker)."""
        self._connections = stats

    def _connection_metrics(self) -> Iterable[Metric]:
        stats = self._connections
        opened = GaugeMetricFamily("yurthub_connections_open", "client connections open, by "
                                   "listener", labels=["listener"])
        refused = CounterMetricFamily(
            "yurthub_connections_refused", "client connections refused or cut off by the "
            "worker: over capacity (overall or per user), owner unknown, request head too "
            "slow or too large, TLS handshake failed", labels=["reason"])
        busy = GaugeMetricFamily("yurthub_request_threads_busy", "requests given to a thread "
                                 "pool and not finished, by pool", labels=["pool"])
        if stats is not None:
            for role, n in sorted(stats.open.items()):
                opened.add_metric([role], n)
            for reason, n in sorted(stats.refused.items()):
                refused.add_metric([reason], n)
            for lane, n in sorted(stats.busy.items()):
                busy.add_metric([lane], n)
        return [opened, refused, busy]

    def purge(self, paths: list[tuple[str, str]]) -> int:
        """Empty the named collections (``yurthub cache purge`` beside this hub)."""
        by_path = {ck.path: ck for ck in self.store.collections()}
        keys = [by_path[p] for p in paths if p in by_path]
        removed = self.cache.writer.purge(keys).result(timeout=120)
        # Their clients list again, which fills the cache again: a watch would otherwise go
        # on (and be resumed upstream) with nothing listed, and the purged collections would
        # stay without a complete view, unusable offline, until the next list.
        n = self.streams.interrupt_where(Reason.PURGED, filtering.watches_of(
            {(ck.component, ck.group, ck.resource) for ck in keys}))
        log.warning("purged %d object(s) in %d collection(s) on request; ended %d watch(es) "
                    "so their clients list again", removed, len(keys), n)
        return removed

    def readiness(self) -> str | None:
        """The first reason the hub is not ready (readyz's first line), or None."""
        return next((why for _, why in self.readiness_checks() if why is not None), None)

    def readiness_checks(self) -> list[tuple[str, str | None]]:
        """Every readiness check in order, (name, None or why it fails): readyz shows each
        failing one, so fixing the first does not hide the next (a full disk and unknown
        filters and an expired certificate can all hold at once)."""
        if not self._ready.is_set():
            return [("started", self._not_ready_reason)]
        return [*self.identity.checks(), ("caching", self.cache.not_ready()),
                ("filters", self._filters_not_ready()),
                ("cache-views", self._incomplete_views())]

    def _filters_not_ready(self) -> str | None:
        """The filters' reason, and that their cached inputs were damaged when they were: a
        hub restarted offline would otherwise seem to wait for a configuration never had."""
        reason = self.filters.not_ready()
        if reason and PERSIST_KEY in self.store.damaged_documents():
            reason += (f"; the cached copy {PERSIST_KEY} was found damaged and is not "
                       "used until the cloud sends it again")
        return reason

    def _incomplete_views(self) -> str | None:
        """Views that lost a member: the hub could not answer their lists offline."""
        found = []
        for ck in self.store.collections():
            state = CollectionState.from_json(self.store.state(ck) or {})
            found += [f"{ck.component}/{ck.dirname} {view.key} ({view.incomplete})"
                      for view in state.views.values() if view.incomplete]
        if not found:
            return None
        shown = "; ".join(found[:10]) + (f"; and {len(found) - 10} more" if len(found) > 10
                                         else "")
        return (f"{len(found)} incomplete cache view(s), refused offline until the next list "
                f"from the cloud heals them: {shown}")

    def begin_shutdown(self) -> None:
        """End open watches cleanly so clients re-watch at once (safe in a signal handler)."""
        if self.mux is not None:
            self.mux.begin_shutdown()
        n = self.streams.shutdown()
        if n:
            log.info("shutting down: ended %d open stream(s)", n)

    def stop(self) -> None:
        self.begin_shutdown()
        if self.mux is not None:
            self.mux.stop()
        if self.health is not None:
            self.health.stop()
        self.filter_source.stop()
        if self.autonomy is not None:
            self.autonomy.stop()
        self.cache.stop()
        self.guard.stop()
        self.watchdog.stop()
        self.identity.stop()
        self.upstream.close()
        self.store.close()
        log.info("yurthub stopped")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The WSGI app of every listener; short requests are counted in gil.foreground, so
        that the cache writer's long jobs give them the GIL."""
        return self._counted(environ, start_response)

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The hub server by its role (by its port under another server than yurthub's
        worker), the API proxy otherwise."""
        conn = connection_of(environ)
        if conn is not None:
            hub_server = conn.role is Role.HUB_SERVER
        else:
            hub_server = environ.get("SERVER_PORT") == str(self.cfg.serve_port)
        if hub_server:
            return self.hub_app(environ, start_response)
        if not self._ready.is_set():
            # The worker serves while start() recovers the cache (a big cache on a slow disk
            # takes longer than gunicorn's timeout): a clear 503 clients retry, not a hang.
            err = ServiceUnavailable(f"yurthub is {self._not_ready_reason}; retry shortly",
                                     details={"retryAfterSeconds": 1})
            return status_response(err, [("Retry-After", "1")])(environ, start_response)
        if conn is not None and conn.role is Role.SECURE_PROXY:
            secure_request_identity(environ, self.cfg.node_name)
        return self.proxy_app(environ, start_response)


def worker_settings(cfg: Config, kubelet_uid: int, wrap: Wrapper | None = None
                    ) -> WorkerSettings:
    """What the gunicorn worker takes from the settings: its listeners' roles (and the TLS
    wrapper of the secure proxy port), its timeouts, its connection limits and who kubelet
    is."""
    listeners = [ListenerSpec(cfg.proxy_port, Role.PROXY),
                 ListenerSpec(cfg.serve_port, Role.HUB_SERVER)]
    if cfg.secure_proxy_port and wrap is not None:
        listeners.append(ListenerSpec(cfg.secure_proxy_port, Role.SECURE_PROXY, wrap))
    return WorkerSettings(
        listeners=tuple(listeners),
        peer_lookup=cfg.peer_lookup, kubelet_uid=kubelet_uid,
        header_timeout=cfg.client_header_timeout, body_timeout=cfg.client_body_timeout,
        send_timeout=cfg.client_send_timeout, request_timeout=cfg.request_timeout,
        limits=Limits(max_connections=cfg.max_connections,
                      per_uid=cfg.max_connections_per_uid))
