"""What the filters depend on, watched by the hub itself: yurt-hub-cfg, this Node, NodePools,
and the Services' topology annotations.

design: one ``Reflector`` thread per collection lists it and then watches it from the
list's resourceVersion, under the hub's own identity, straight to the cloud (never through
the proxy, so nothing of it is cached under a client or filtered).  A watch that ends is
resumed from the last version seen; 410 Gone, an ERROR event or a broken stream relists;
an unreachable cloud is retried with backoff, keeping what was known.  Each reflector
hands the manager its whole part (a dict) after the list and after every event that
changes it; the manager swaps its snapshot and tells who is touched.  NodePools answered
with 404 (OpenYurt's CRD is not installed) count as known and empty, and are listed again
now and then.  After each change the manager's inputs are persisted (``persist``), so a
restart while the cloud is away starts from them; with them the hub's own settings they
were filtered under, so that a start with other settings marks what those touch (and
persists the new ones after the marks: the writer thread runs both in order).  Only the
Services with the ``openyurt.io/topologyKeys`` annotation are kept in memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from yurthub import upstream as up
from yurthub.errors import DecodeError, UpstreamBroken, UpstreamError, UpstreamUnavailable
from yurthub.filters.context import (
    namespace_name,
    node_pool_and_zone,
    pool_members,
    service_topology,
)
from yurthub.filters.manager import FilterManager, Inputs, Own
from yurthub.filters.settings import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE
from yurthub.kube.framing import ListParser, WatchFramer
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

USER_AGENT = "yurthub/filters"
WATCH_SECONDS = 300
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
ABSENT_RELIST = 60.0        # seconds between lists of a resource the server does not have
PERSIST_KEY = "/_yurthub/filter-inputs"

Key = tuple[str, str]
Objects = dict[Key, dict[str, Any]]


class _Relist(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class _StreamBroken(UpstreamError):
    """The answer's body broke off (the cloud went away, or a watch was cut on the way)."""


# Failures of the way to the cloud, not of what the reflector asked: the health checker
# says the cloud went away (once); a reflector says it only when they last while the cloud
# still looks healthy to the checker (LASTING failures in a row, about 15 s of backoff).
_TRANSPORT = (UpstreamUnavailable, UpstreamBroken, _StreamBroken, OSError)


class Reflector(BackgroundThread):
    """List, then watch, one collection; ``on_sync(objects)`` after each change.

    ``keep(obj)`` decides what is kept of an object (None: nothing), so a Service costs
    a few bytes when it has no topology annotation.
    """

    def __init__(self, name: str, upstream: up.Upstream, path: str, query: str,
                 on_sync: Callable[[dict[Key, Any] | None], None],
                 keep: Callable[[dict[str, Any]], Any] = lambda o: o, *,
                 absent_is_empty: bool = True) -> None:
        super().__init__()
        self.name = f"yurthub-watch-{name}"
        self.upstream = upstream
        self.path = path
        self.query = query
        self.on_sync = on_sync
        self.keep = keep
        self.absent_is_empty = absent_is_empty
        self.objects: dict[Key, Any] = {}
        self._resp: Any = None
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self._retry_now = threading.Event()  # cuts a backoff short (the cloud is back)

    def retry_now(self) -> None:
        """The cloud is healthy again: end a backoff wait at once (a watch keeps going)."""
        self._retry_now.set()

    def wake(self) -> None:
        self._retry_now.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            up.interrupt(resp)

    def run(self) -> None:
        failures = 0
        said = ""  # the failure last logged above DEBUG
        while not self.stopping.is_set():
            try:
                rv = self._list()
                failures, said = 0, ""
                if rv is None:  # the server does not serve the resource
                    self.stopping.wait(ABSENT_RELIST)
                    continue
                while not self.stopping.is_set():
                    rv = self._watch(rv)
            except _Relist:
                log.info("%s: resourceVersion too old, listing again", self.name)
                continue
            except (UpstreamError, DecodeError, OSError) as e:
                if self.stopping.is_set():
                    return
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                # why: the same failure every 15 s, per reflector, for as long as the cloud
                # is away (the health checker says that once) buried the log offline; and
                # each going away was twelve lines of four reflectors (the broken watch,
                # the refused connection, "no healthy apiserver") around the checker's one
                if isinstance(e, _TRANSPORT):
                    lasting = failures >= len(BACKOFF) and self.upstream.any_healthy()
                    level = logging.WARNING if lasting and not said else logging.DEBUG
                else:
                    level = (logging.WARNING if not said else
                             logging.INFO if str(e) != said else logging.DEBUG)
                if level > logging.DEBUG:
                    said = str(e)
                log.log(level, "%s: %s (again in %.1fs)", self.name, e, delay)
                self._retry_now.clear()
                self._retry_now.wait(delay)

    # -- one request ------------------------------------------------------------------------

    def _open(self, query: str, timeout: float | None) -> Any:
        servers = self.upstream.candidates()
        if not servers:
            raise UpstreamUnavailable("no healthy apiserver")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        resp = self.upstream.send(servers[0], "GET", f"{self.path}?{query}", headers, None,
                                  read_timeout=timeout)
        with self._lock:
            self._resp = resp
        if self.stopping.is_set():
            up.interrupt(resp)
        return resp

    def _close(self, resp: Any, whole: bool) -> None:
        with self._lock:
            self._resp = None
        up.finish(resp, whole)

    def _status(self, resp: Any) -> None:
        if resp.status == 410:
            raise _Relist()
        if resp.status != 200:
            body = b"".join(up.stream(resp))[:300]
            raise UpstreamError(f"{self.path}: HTTP {resp.status}: "
                                f"{body.decode('utf-8', 'replace')}")

    def _list(self) -> str | None:
        resp = self._open(self.query, up.REQUEST_READ_TIMEOUT)
        whole = False
        try:
            if resp.status == 404 and self.absent_is_empty:
                for _ in self._chunks(resp):
                    pass  # read to its end: the connection goes back to the pool clean
                whole = True
                self.objects = {}
                self._synced(None)
                return None
            self._status(resp)
            parser = ListParser()
            objects: dict[Key, Any] = {}
            for chunk in self._chunks(resp):
                for item in parser.feed(chunk):
                    self._put(objects, item.obj)
            info = parser.close()
            if info.is_status:
                raise UpstreamError(f"{self.path}: the list was a Status")
            whole = True
        finally:
            self._close(resp, whole)
        self.objects = objects
        self._synced(objects)
        return info.resource_version

    def _watch(self, rv: str) -> str:
        query = (f"{self.query}&watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
                 f"&timeoutSeconds={WATCH_SECONDS}")
        resp = self._open(query, up.read_timeout_for(True, WATCH_SECONDS))
        whole = False
        try:
            self._status(resp)
            framer = WatchFramer()
            for chunk in self._chunks(resp):
                for ev in framer.feed(chunk):
                    rv = self._event(ev.type, ev.obj) or rv
            framer.close()
            whole = True
        finally:
            self._close(resp, whole)
        return rv

    def _chunks(self, resp: Any) -> Iterator[bytes]:
        try:
            for chunk in up.stream(resp):
                if self.stopping.is_set():
                    raise UpstreamError("stopping")
                yield chunk
        except UpstreamError as e:
            if self.stopping.is_set():
                raise
            raise _StreamBroken(str(e)) from e

    def _event(self, etype: str, obj: dict[str, Any]) -> str:
        md = obj.get("metadata") if isinstance(obj, dict) else None
        rv = md.get("resourceVersion", "") if isinstance(md, dict) else ""
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise _Relist()
            raise UpstreamError(f"{self.path}: watch error: {obj.get('message', obj)}")
        if etype == "BOOKMARK":
            return str(rv)
        objects = dict(self.objects)
        if etype == "DELETED":
            objects.pop(namespace_name(obj), None)
        else:
            objects.pop(namespace_name(obj), None)
            self._put(objects, obj)
        if objects != self.objects:
            self.objects = objects
            self._synced(objects)
        return str(rv)

    def _put(self, objects: dict[Key, Any], obj: dict[str, Any]) -> None:
        kept = self.keep(obj)
        if kept is not None:
            objects[namespace_name(obj)] = kept

    def _synced(self, objects: dict[Key, Any] | None) -> None:
        self.on_sync(objects)
        self.synced.set()


class FilterSource:
    """The hub's own watches that feed the filter manager, and the persisted copy."""

    def __init__(self, manager: FilterManager, upstream: up.Upstream, node_name: str,
                 persist: Callable[[str, bytes], None]) -> None:
        self.manager = manager
        self.persist = persist
        node = quote(f"metadata.name={node_name}", safe="")
        cm = quote(f"metadata.name={CONFIGMAP_NAME}", safe="")
        self.reflectors = [Reflector(
            "yurt-hub-cfg", upstream, f"/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps",
            f"fieldSelector={cm}", self._configmap)]
        if manager.needs_pool and not manager.cfg.nodepool_name:
            self.reflectors.append(Reflector("node", upstream, "/api/v1/nodes",
                                             f"fieldSelector={node}", self._node))
        if manager.needs_topology:
            self.reflectors.append(Reflector(
                "nodepools", upstream, "/apis/apps.openyurt.io/v1beta2/nodepools", "",
                self._nodepools, keep=pool_members, absent_is_empty=True))
            self.reflectors.append(Reflector(
                "services", upstream, "/api/v1/services", "", self._services,
                keep=lambda o: service_topology(o) or None))

    def load(self, body: bytes | None) -> None:
        """Start from the persisted copy (None or unreadable: from nothing)."""
        if body is None:
            return
        try:
            doc = json.loads(body)
            inputs = Inputs.from_json(doc)
        except ValueError as e:
            log.warning("the persisted filter configuration is unreadable (%s); "
                        "waiting for the cloud's", e)
            return
        own: Own | None = None
        try:
            own = Own.from_json(doc["own"])
        except KeyError:
            # Written by a hub that did not record its settings: they are taken to be the
            # same (marking every filtered view stale would cost each a relist for nothing).
            log.info("the persisted filter configuration does not say which settings it was "
                     "filtered under; taking this start's")
        except ValueError as e:
            log.warning("%s; taking this start's", e)
        self.manager.load(inputs, own)
        if own != self.manager.own:
            self._persist()

    def start(self) -> None:
        for r in self.reflectors:
            r.start()

    def cloud_healthy(self) -> None:
        """The cloud is back: reflectors waiting out a backoff try again now, so the
        configuration is known (and the hub ready) as soon as the cloud answers."""
        for r in self.reflectors:
            r.retry_now()

    def stop(self) -> None:
        for r in self.reflectors:
            r.stopping.set()
            r.wake()
        for r in self.reflectors:
            r.stop(timeout=5)

    # -- each reflector's part --------------------------------------------------------------

    def _update(self, why: str, **part: Any) -> None:
        before = self.manager.inputs
        self.manager.update(why, **part)
        after = self.manager.inputs
        if after != before:
            self._persist()

    def _persist(self) -> None:
        self.persist(PERSIST_KEY, json.dumps(self.manager.persisted(),
                                             separators=(",", ":")).encode())

    def _configmap(self, objects: dict[Key, Any] | None) -> None:
        cm = (objects or {}).get((CONFIGMAP_NAMESPACE, CONFIGMAP_NAME))
        data = cm.get("data") if isinstance(cm, dict) else None
        data = {k: v for k, v in data.items() if isinstance(v, str)} \
            if isinstance(data, dict) else {}
        self._update("kube-system/yurt-hub-cfg", configmap=data)

    def _node(self, objects: dict[Key, Any] | None) -> None:
        node = next(iter((objects or {}).values()), None)
        self._update(f"node {self.manager.cfg.node_name}", node=node_pool_and_zone(node))

    def _nodepools(self, objects: dict[Key, Any] | None) -> None:
        pools = {name: members for (_ns, name), members in (objects or {}).items()}
        self._update("nodepools", nodepools=pools)

    def _services(self, objects: dict[Key, Any] | None) -> None:
        self._update("services' topology annotations", services=dict(objects or {}))
