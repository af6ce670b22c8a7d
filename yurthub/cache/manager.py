"""The cache's front door: decides what a response becomes in the cache, and opens its tee.

It owns the writer thread and knows each resource's scope (namespaced or not): from the
built-in table, from collections already on disk, and — for custom resources — from the
request and the objects themselves.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any

from yurthub.cache import discovery
from yurthub.cache.damage import Damage
from yurthub.cache.entry import Entry
from yurthub.cache.integrity import body_problem
from yurthub.cache.localwrites import StaleLocalWrite
from yurthub.cache.mutation import index_meta
from yurthub.cache.policy import cache_resource, cacheable
from yurthub.cache.reader import CacheReader
from yurthub.cache.scopes import Scopes
from yurthub.cache.staleness import agent_target
from yurthub.cache.tee import GATHER, Budget, Tee
from yurthub.cache.views import parse_selectors
from yurthub.cache.writer import CacheWriter
from yurthub.config import Config
from yurthub.errors import (
    ApiError,
    Conflict,
    DamagedObject,
    InvalidKeyError,
    LocalWriteError,
    NotFound,
    StorageError,
)
from yurthub.kube.accept import is_json_content_type, transform
from yurthub.kube.jsondepth import check_depth
from yurthub.kube.patchlimits import MAX_REQUEST_BYTES, check_result
from yurthub.kube.requestinfo import RequestInfo
from yurthub.kube.resources import ResourceType, builtin, known_kind
from yurthub.kube.status import not_found_message, resource_details
from yurthub.metrics import Metrics
from yurthub.storage import CollectionKey, DiskStore, LostObject

log = logging.getLogger(__name__)

_ENTRY_KIND = {"get": "object", "create": "object", "update": "object", "patch": "object",
               "list": "list", "watch": "watch"}
CRD_GROUP = "apiextensions.k8s.io"
LOCAL_WRITE_TIMEOUT = 10.0
LOCAL_WRITE_ATTEMPTS = 3
# An offline write may not make an object larger than kube-apiserver takes a request body.
MAX_LOCAL_OBJECT_BYTES = MAX_REQUEST_BYTES


class CacheManager:
    """Creates tees for cacheable responses and hands them to the writer."""

    def __init__(self, cfg: Config, store: DiskStore, metrics: Metrics) -> None:
        self.cfg = cfg
        self.store = store
        self.metrics = metrics
        self.agents = cfg.effective_cache_agents
        self.budget = Budget(cfg.cache_memory_limit)
        metrics.cache_tee_backlog.set_function(lambda: self.budget.used)
        self.writer = CacheWriter(store, metrics, self.learn_discovery)
        if store.quota is not None:
            self.writer.max_list_bytes = min(store.quota.total, store.quota.per_component)
        self.damage = Damage(store, metrics, self._type_of)
        self.reader = CacheReader(store, on_damaged=self._damaged,
                                  unsynced=self.writer.stale.unsynced)
        self.started_at = time.time()
        self.scopes = Scopes(metrics)
        # Responses that would have been cached and passed untouched (caching stopped, no
        # pipe for a tee): request threads count them, under the lock.
        self._passed = 0
        self._passed_lock = threading.Lock()

    def start(self, lost: list[LostObject] | None = None) -> None:
        """After the store has been opened: learn scopes from disk, mark the views that lost
        objects at recovery incomplete (``lost``), start the writer."""
        for ck in self.store.collections():
            if builtin(ck.group, ck.version, ck.resource) is None:
                self.scopes.learn(ck.group, ck.resource, ck.namespaced)
        self.damage.apply_recovery(lost or [])
        for key in discovery.LEARNED_AT_START:
            body = self.store.read_nonresource(key)
            if body is not None:
                try:
                    self.learn_discovery(key, json.loads(body))
                except ValueError:
                    log.warning("cached discovery document %s is not JSON; ignored", key)
        self.started_at = time.time()
        self.writer.start()

    def not_ready(self) -> str | None:
        """Why the cache is not doing its job (caching stopped), or None."""
        return self.writer.space.reason()

    def setbacks(self) -> int:
        """Responses the cache did not take so far (dropped, refused for want of room, or
        passed untouched while caching was stopped)."""
        return self.writer.drops + self.writer.space.stops + self._passed

    def _passed_by(self) -> None:
        with self._passed_lock:
            self._passed += 1

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the writer has done what it was handed (False: not within ``timeout``)."""
        return self.writer.wait_idle(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.writer.wait_idle(timeout)
        self.writer.stop()

    # -- scopes and types -------------------------------------------------------------------

    def resource_type(self, group: str, version: str, resource: str,
                      namespace_hint: bool | None = None, *,
                      learn: bool = False) -> ResourceType | None:
        """The type of a resource, or None while its scope is unknown (then it is not cached).

        ``namespace_hint`` is True when the request named a namespace (so the resource is
        namespaced) and False for an object request without one (cluster-scoped); it is
        remembered (``learn``) only once the cloud answered the request 2xx.
        """
        rt = builtin(group, version, resource)
        if rt is not None:
            return rt
        base = partial_metadata_base(group)
        if base is not None:  # metadata-only copies share the scope of the full objects
            full = self.resource_type(base, version, resource, namespace_hint, learn=learn)
            if full is None:
                return None
            return ResourceType(group, version, resource, "PartialObjectMetadata",
                                full.namespaced)
        known = known_kind(group, resource)
        learned = self.scopes.get(group, resource)
        kind = (learned[1] if learned else "") or (known[0] if known else "")
        if learned is not None:
            namespaced = learned[0]
        elif known is not None:
            namespaced = known[1]
        elif namespace_hint is not None:
            namespaced = namespace_hint
            if learn:
                self.scopes.learn(group, resource, namespaced)
        else:
            return None
        return ResourceType(group, version, resource, kind, namespaced)

    def _type_of(self, ck: CollectionKey) -> ResourceType | None:
        return self.resource_type(ck.group, ck.version, ck.resource, ck.namespaced)

    def _damaged(self, ck: CollectionKey, ns: str, name: str, why: str) -> None:
        self.damage.report(ck, ns, name, why, self.writer.call, self.writer.collection)

    def learn_resource(self, group: str, resource: str, kind: str, namespaced: bool) -> None:
        """Record what discovery says about a resource (custom resources included)."""
        self.scopes.learn(group, resource, namespaced, kind)

    # -- the request path -------------------------------------------------------------------

    def may_cache(self, info: RequestInfo, component: str, accept: str | None) -> bool:
        """Whether a 2xx JSON answer to this request would be cached (``tee_for`` opens a
        tee), from the request alone: a request that may not be cached needs no JSON."""
        if not info.is_resource_request or discovery.is_discovery_path(info.path):
            return info.verb == "get" and discovery.is_discovery_path(info.path)
        return cacheable(info, component, self.agents, accept).ok

    def tee_for(self, info: RequestInfo, component: str, accept: str, status: int,
                headers: Mapping[str, str], asked_at: float | None = None) -> Tee | None:
        """A tee for this response when it is to be cached, else None.  Never raises.

        ``asked_at``: when the request's response filters were chosen (``time.monotonic``;
        None: now), so that an answer filtered before a change of them never passes for
        one filtered after it (``mark_stale``)."""
        if not 200 <= status < 300:
            return None
        if not self.writer.space.accepting:
            # A full or read-only disk: nothing would land; the response passes untouched,
            # and the views it would have kept current no longer are.
            self._missed(info, component, headers, accept)
            return None
        if not info.is_resource_request or discovery.is_discovery_path(info.path):
            return self._document_tee(info, status, headers)
        # What the server sent decides, not what the client asked for: a Table request
        # answered with a plain list is a plain list.
        served = headers.get("Content-Type", "")
        if not is_json_content_type(served):
            return None
        if info.verb == "watch" and _asks_table(accept):
            # kube-apiserver labels Table events plain JSON: they are rows, not objects.
            return None
        decision = cacheable(info, component, self.agents, served)
        if not decision.ok:
            return None
        encoding = (headers.get("Content-Encoding") or "").strip().lower()
        if encoding not in ("", "identity", "gzip"):
            return None
        try:
            entry = self._entry(info, component, _filed_as(accept, served), encoding == "gzip")
            if asked_at is not None:
                entry.asked_at = asked_at
        except (ApiError, InvalidKeyError) as e:
            self.metrics.cache_invalid_keys.labels(self.metrics.component(component)).inc()
            log.warning("%s %s %s: not cached: %s", component, info.verb, info.path, e)
            return None
        return self._open(entry, big=entry.kind != "object")

    def _missed(self, info: RequestInfo, component: str, headers: Mapping[str, str],
                accept: str) -> None:
        """A list or watch that would have been cached passed while caching is stopped for a
        full or read-only disk: its collection's views become stale (``StaleMarks.missed``),
        so offline answers never pass them off as current (the cloud may have deleted what
        they hold)."""
        if info.verb not in ("list", "watch") or not info.is_resource_request:
            return
        served = headers.get("Content-Type", "")
        if not is_json_content_type(served) or not cacheable(info, component, self.agents,
                                                               served).ok:
            return
        try:
            entry = self._entry(info, component, _filed_as(accept, served), False)
        except (ApiError, InvalidKeyError):
            return
        # why: a list that passed while caching was stopped is one the cache did not take
        # (setbacks): the multiplexer's copy that holds no list is listed again for it,
        # not taken for one whose commit is on its way.
        self._passed_by()
        ck = entry.ck
        unsynced = self.writer.stale.unsynced
        if ck is None or ck in unsynced or ck not in set(self.store.collections()):
            return
        stop = self.writer.space.stopped
        why = (f"caching stopped ({stop.reason if stop else 'no-space'}) while the cloud's "
               "answers for it passed")
        unsynced[ck] = why
        self.writer.call(lambda: self.writer.stale.missed(entry, why))

    def _open(self, entry: Entry, big: bool) -> Tee | None:
        """The tee itself; without a pipe (no descriptors left) the response is not cached."""
        try:
            tee = Tee(entry, self.budget, min(self.cfg.cache_tee_budget, self.budget.limit),
                      big=big,
                      gather=GATHER if entry.kind == "list" else 0)
        except OSError as e:
            self._passed_by()
            self.metrics.cache_entries_dropped.labels(self.metrics.component(entry.component),
                                                      self.metrics.resource(entry.resource),
                                                      "no-pipe").inc()
            log.warning("%s: not cached, no pipe for its tee: %s", entry, e)
            return None
        return tee if self.writer.submit(tee, entry) else None

    def _entry(self, info: RequestInfo, component: str, accept: str, gzip: bool) -> Entry:
        group, version, resource = cache_resource(info, accept)
        kind = _ENTRY_KIND[info.verb]
        hint = bool(info.namespace) if info.namespace or kind == "object" else None
        rt = self.resource_type(group, version, resource, hint, learn=True)
        if rt is None and self.scopes.discover(partial_metadata_base(group) or group, version):
            rt = self.resource_type(group, version, resource, hint, learn=True)
        if rt is None:
            raise InvalidKeyError(f"the scope of {resource}.{group} is not known yet")
        ck = _collection_key(component, group, version, resource, rt.namespaced)
        selectors = None
        if kind in ("list", "watch"):
            selectors = parse_selectors(info.namespace, info.label_selector,
                                        info.field_selector, rt)
        return Entry(
            kind=kind, ck=ck, rt=rt, selectors=selectors, gzip=gzip,
            continue_token=info.continue_token,
            start_rv=_int(info.resource_version),
            consistent=kind in ("object", "list") and (
                info.verb not in ("get", "list") or not info.resource_version),
            describe=f"{component} {info.verb} {info.path}",
        )

    # -- discovery documents ----------------------------------------------------------------

    def _document_tee(self, info: RequestInfo, status: int, headers: Mapping[str, str]
                      ) -> Tee | None:
        if info.verb != "get" or headers.get("Content-Encoding", "") not in ("", "identity"):
            return None
        key = discovery.document_key(info.path, headers.get("Content-Type", ""))
        if key is None:
            return None
        entry = Entry(kind="nonresource", ck=None, rt=ResourceType("", "", "", "", False),
                      describe=f"document {key}", doc_key=key)
        return self._open(entry, big=False)

    def learn_discovery(self, key: str, doc: Any) -> None:
        """Learn kinds and scopes of resources from discovery documents passing through
        (the writer's callback for each one it stores).  Never raises."""
        discovery.learn(doc, self.learn_resource)

    # -- what the response filters need of the cache ---------------------------------------

    def set_extra_agents(self, agents: frozenset[str]) -> None:
        """Cache agents named by the cluster (yurt-hub-cfg) besides the configured ones."""
        self.agents = self.cfg.effective_cache_agents | agents

    def mark_stale(self, targets: set[tuple[str, str, str]], why: str) -> None:
        """Mark every cached view of these (agent, group, resource) stale, of each component
        of the agent (``kube-proxy``, ``kube-proxy@pod``...: the filters go by the name):
        what they hold was filtered under a configuration that no longer holds, so their
        next lists rewrite every object (StaleMarks.mark_views_refiltered).  Called right
        after the filters' snapshot changed: answers asked for before now may hold the old
        one's."""
        at = time.monotonic()
        entries = self.on_disk(lambda ck: agent_target(ck) in targets, why)
        if targets:
            self.writer.call(
                lambda: self.writer.stale.mark_views_refiltered(targets, entries, why, at))

    def on_disk(self, which: Callable[[CollectionKey], bool], why: str) -> list[Entry]:
        """The writer's entries of the collections on disk that ``which`` takes (those of
        a resource the hub no longer knows are left out)."""
        entries = []
        for ck in self.store.collections():
            if not which(ck):
                continue
            rt = self.resource_type(ck.group, ck.version, ck.resource, ck.namespaced)
            if rt is not None:
                entries.append(Entry(kind="object", ck=ck, rt=rt, describe=f"{ck} ({why})"))
        return entries

    def store_document(self, key: str, body: bytes) -> None:
        """Persist one of the hub's own documents (under ``_nonresource/``), off this thread."""
        self.writer.call(lambda: self.store.write_nonresource(key, body))

    def read_document(self, key: str) -> bytes | None:
        try:
            return self.store.read_nonresource(key)
        except (StorageError, InvalidKeyError) as e:
            log.warning("cannot read %s from the cache: %s", key, e)
            return None

    # -- the local proxy's side -------------------------------------------------------------

    def read_target(self, info: RequestInfo, component: str, accept: str
                    ) -> tuple[CollectionKey, ResourceType] | None:
        """The collection a request reads offline, or None when nothing can be cached for it."""
        group, version, resource = cache_resource(info, accept)
        return self._collection(component, group, version, resource,
                                bool(info.namespace) if info.namespace else None)

    def _collection(self, component: str, group: str, version: str, resource: str,
                    namespaced_hint: bool | None) -> tuple[CollectionKey, ResourceType] | None:
        """The collection a component's objects of a resource are filed under, if any."""
        if not component:
            return None
        rt = self.resource_type(group, version, resource, namespaced_hint)
        if rt is None:
            return None
        try:
            return _collection_key(component, group, version, resource, rt.namespaced), rt
        except InvalidKeyError:
            return None

    def kind_of(self, info: RequestInfo, component: str, accept: str) -> str:
        target = self.read_target(info, component, accept)
        if target is None:
            return ""
        state = self.store.state(target[0]) or {}
        return str(state.get("kind") or target[1].kind)

    def crd(self, group: str, resource: str, component: str) -> dict[str, Any] | None:
        """The CustomResourceDefinition of ``<resource>.<group>`` as the cache holds it.

        The asking component's copy comes first, then any other component's: the local
        proxy needs only its printer columns, which say nothing about any object.
        """
        name = f"{resource}.{group}"
        found = [ck for ck in self.store.collections()
                 if ck.group == CRD_GROUP and ck.resource == "customresourcedefinitions"]
        found.sort(key=lambda ck: (ck.component != component, ck.version != "v1"))
        for ck in found:
            try:
                body = self.store.read(ck, "", name)
                obj = json.loads(body) if body else None
            except (StorageError, InvalidKeyError, ValueError):
                continue
            if isinstance(obj, dict):
                return obj
        return None

    def has_object(self, component: str, group: str, version: str, resource: str,
                   namespace: str, name: str) -> bool:
        target = self._collection(component, group, version, resource, bool(namespace))
        return target is not None and (namespace, name) in self.store.entries(target[0])

    def object_version(self, component: str, group: str, version: str, resource: str,
                       namespace: str, name: str) -> int:
        """The resourceVersion the index holds for one cached object; 0 when not cached."""
        target = self._collection(component, group, version, resource, bool(namespace))
        entry = None if target is None else self.store.entries(target[0]).get((namespace, name))
        try:
            return int(entry.meta.get("rv") or 0) if entry is not None else 0
        except (TypeError, ValueError):
            return 0

    def write_local(self, info: RequestInfo, component: str, accept: str, name: str,
                    change: Callable[[dict[str, Any] | None], dict[str, Any]], *,
                    max_bytes: int = MAX_LOCAL_OBJECT_BYTES) -> bytes:
        """Apply an offline write to the cache; returns the new object's JSON.

        ``change`` (the stored object, or None for a create -> the new object) runs here, on
        the calling request thread: a patch is the client's work and never the writer's,
        which only commits the result, if the object is still the one ``change`` saw (else
        this tries again).  ApiErrors from ``change`` pass through; a result larger than
        ``max_bytes`` (or than the stored object, if that is larger) is 413.
        """
        group, version, resource = cache_resource(info, accept)
        entry = self._object_entry(component, group, version, resource, bool(info.namespace),
                                   f"{component} local {info.verb} {info.path}")
        if entry is None or entry.ck is None:
            raise LocalWriteError(f"{resource} is not cached for {component or 'this client'}")
        missing = NotFound(not_found_message(group, resource, name),
                           details=resource_details(name, group, resource))
        for _attempt in range(LOCAL_WRITE_ATTEMPTS):
            try:
                raw, trusted = self.store.read_object(entry.ck, info.namespace, name)
                if raw is not None and not trusted:
                    problem = body_problem(entry.ck, info.namespace, name, raw, entry.rt.kind)
                    if problem:
                        raise DamagedObject(f"the cached object cannot be trusted: {problem}")
                if raw is not None:
                    check_depth(raw, "the cached object")
                old = json.loads(raw) if raw is not None else None
            except InvalidKeyError:
                raise missing from None
            except (StorageError, ValueError) as e:
                raise LocalWriteError(f"cannot read the cached object: {e}") from e
            if old is None and info.verb != "create":
                raise missing
            new = change(old)
            body = check_result(new, max(max_bytes, len(raw or b"")))
            future = self.writer.submit_local(entry, info.namespace, name, body,
                                              index_meta(new, entry.rt), expect=raw)
            try:
                return future.result(LOCAL_WRITE_TIMEOUT)
            except StaleLocalWrite:
                continue  # the cloud's copy or another write landed meanwhile: again
            except FutureTimeout:
                raise LocalWriteError("the cache writer did not answer in time") from None
            except (StorageError, InvalidKeyError) as e:
                raise LocalWriteError(str(e)) from e
        qualified = f"{resource}.{group}" if group else resource
        raise Conflict(f'Operation cannot be fulfilled on {qualified} "{name}": the object has '
                       "been modified; please apply your changes to the latest version and "
                       "try again", details=resource_details(name, group, resource))

    def store_object(self, component: str, group: str, version: str, resource: str,
                     body: bytes) -> None:
        """Cache an object the hub fetched itself (e.g. the node Lease it renewed)."""
        try:
            obj = json.loads(body)
            md = obj.get("metadata") or {}
            namespace, name = md.get("namespace", ""), md.get("name", "")
            entry = self._object_entry(component, group, version, resource, bool(namespace),
                                       f"hub {resource}")
            if entry is None:
                return
            meta = index_meta(obj, entry.rt)
        except (ValueError, AttributeError, TypeError) as e:
            # why: the cloud's answer is no object (the caller's thread must not die of it)
            log.warning("%s %s from the cloud not cached: %s", component, resource, e)
            return
        self.writer.submit_local(entry, namespace, name, body, meta, local=False)

    def _object_entry(self, component: str, group: str, version: str, resource: str,
                      namespaced_hint: bool, describe: str) -> Entry | None:
        """The entry of one object the hub writes itself, or None when it cannot be filed."""
        target = self._collection(component, group, version, resource, namespaced_hint)
        if target is None:
            return None
        return Entry(kind="object", ck=target[0], rt=target[1], describe=describe)


@lru_cache(maxsize=1024)
def _collection_key(component: str, group: str, version: str, resource: str,
                    namespaced: bool) -> CollectionKey:
    """CollectionKey validates its segments when built: once per distinct key is enough."""
    return CollectionKey(component, group, version, resource, namespaced)


def partial_metadata_base(group: str) -> str | None:
    """The group of the full objects behind a PartialObjectMetadata collection, else None."""
    head, sep, _tail = group.partition(".partialobjectmetadatas.")
    if not sep or not group.endswith(".meta.k8s.io"):
        return None
    return "" if head == "core" else head


def _filed_as(accept: str | None, served: str) -> str:
    """The media type a response is filed by: the request's when it asks for metadata only
    (kube-apiserver labels a PartialObjectMetadata(List) plain ``application/json``, and the
    reads offline look for it where the request's Accept says), else the served one.  A
    server that ignored the ask sends whole objects, which the list's kind check refuses."""
    t = transform(accept)
    return accept or served if t is not None and t.is_partial_metadata else served


def _asks_table(accept: str) -> bool:
    """True when kube-apiserver would answer this Accept header with Tables."""
    t = transform(accept)
    return t is not None and t.is_table


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
