"""The local proxy: answers a node's components from the cache while the cloud is away.

Reads are answered as the apiserver would have answered them (see cache/reader.py), each
with a ``Warning: 299`` header giving the age of the data; one that asks for a Table (as
kubectl does) gets the Table kube-apiserver prints (see proxy/tables.py), of the objects
the response filters leave the client, as a JSON answer would hold them.  Writes: this
node's own truth is applied to the cache (proxy/offlinewrites.py); deletes get 403 (kubelet
retries them after reconnect).  Nothing written here is claimed to have reached the cloud.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import socket
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.wrappers import Response

from yurthub.access.keys import legacy_component
from yurthub.cache import discovery
from yurthub.cache.manager import CacheManager, partial_metadata_base
from yurthub.cache.policy import CACHED_SUBRESOURCES
from yurthub.cache.reader import Freshness
from yurthub.cache.views import CollectionState, Selectors, parse_selectors
from yurthub.config import MULTIPLEXER_AGENT, Config
from yurthub.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    InvalidKeyError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    ServiceUnavailable,
)
from yurthub.filters.chain import Chain
from yurthub.filters.manager import FilterManager
from yurthub.filters.visibility import ClientView, resume_rv
from yurthub.filters.watchstream import WatchFilter
from yurthub.health import LEASE_NAMESPACE
from yurthub.kube import fields as kfields
from yurthub.kube.accept import accepts_plain_json, negotiate
from yurthub.kube.framing import Event
from yurthub.kube.listoptions import check_list_options, check_list_version, effective_limit
from yurthub.kube.naming import check_path_name
from yurthub.kube.requestinfo import RequestInfo
from yurthub.kube.resources import ResourceType, builtin
from yurthub.kube.status import not_found_message, resource_details, status_object
from yurthub.metrics import Metrics
from yurthub.proxy import filtering
from yurthub.proxy.context import RequestContext
from yurthub.proxy.localwatch import LocalWatch, bookmark_event, watch_start
from yurthub.proxy.offlinewrites import JSON, OfflineWrites
from yurthub.proxy.streams import StreamRegistry
from yurthub.proxy.tables import LocalTables, requested_table
from yurthub.proxy.tokens import KeptTokens

log = logging.getLogger(__name__)



class LocalProxy:
    """Serves requests from the cache (the cloud is unhealthy or unreachable)."""

    def __init__(self, cfg: Config, cache: CacheManager, streams: StreamRegistry,
                 metrics: Metrics, *, bookmark_interval: float = 30.0,
                 kubelet_seen: Any = None, filters: FilterManager | None = None,
                 upstream_ready: Callable[[], bool] | None = None,
                 tokens: KeptTokens | None = None) -> None:
        self.cfg = cfg
        # Whether requests go upstream again: a watch from here then ends (LocalWatch).
        self.upstream_ready = upstream_ready
        self.cache = cache
        self.reader = cache.reader
        self.streams = streams
        self.metrics = metrics
        self.bookmark_interval = bookmark_interval
        self.kubelet_seen = kubelet_seen or (lambda: None)
        self.tables = LocalTables(cache)
        self.filters = filters
        self.writes = OfflineWrites(cfg, cache, tokens)

    # -- routing helpers --------------------------------------------------------------------

    def can_serve(self, ctx: RequestContext) -> bool:
        info = ctx.info
        if not info.is_resource_request:
            return ctx.method in ("GET", "HEAD") and discovery.is_discovery_path(info.path)
        return info.verb in ("get", "list", "watch") and info.subresource in CACHED_SUBRESOURCES

    def takes_write(self, ctx: RequestContext) -> bool:
        """A write the cache applies while the cloud is away (see ``OfflineWrites``)."""
        return self.writes.takes(ctx)

    def serves_kubelet_lease(self, ctx: RequestContext) -> bool:
        """YurtHub's edge mode: kubelet's Lease is answered locally once the hub holds it.

        A create names its Lease in the body: only this node's own is answered here, any
        other goes where any other write goes (the cloud decides, or 503 offline).
        """
        if not self.writes.is_kubelet_lease(ctx) or ctx.info.dry_run:
            return False  # a dry run goes to the cloud, which alone can answer it
        if ctx.info.verb == "create" and self.writes.created_name(ctx) != self.cfg.node_name:
            return False
        self.kubelet_seen()
        return self.cache.has_object("kubelet", "coordination.k8s.io", "v1", "leases",
                                     LEASE_NAMESPACE, self.cfg.node_name)

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, ctx: RequestContext, why: str) -> Response:
        info = ctx.info
        if not info.is_resource_request:
            return self._nonresource(ctx)
        # Counted with its status: here, or where its error becomes a Status (the router).
        ctx.counted = "cache"
        log.debug("%s %s %s: from the cache (%s)", ctx.component or "-", info.verb,
                  ctx.path_qs, why)
        response = self._resource(ctx)
        self.metrics.requests.labels(ctx.agent, info.verb, "cache",
                                     str(response.status_code)).inc()
        return response

    def _resource(self, ctx: RequestContext) -> Response:
        info = ctx.info
        verb = info.verb
        if verb in ("get", "list", "watch") and info.subresource not in CACHED_SUBRESOURCES:
            # A pod's log, a node's proxy, a scale: none is the object the cache holds, and
            # its answer was never cached (kubectl would print the Pod as the log).
            raise ServiceUnavailable(
                f"the cloud is unreachable: {info.resource}/{info.subresource} is not served "
                "from the yurthub cache; retry when the cloud is back",
                details={"retryAfterSeconds": 5})
        rt = builtin(info.api_group, info.api_version, info.resource) \
            if info.subresource == "status" else None
        if rt is not None and "status" not in rt.subresources:
            # A ConfigMap's or a Secret's .../status: no such path in kube-apiserver (404),
            # never the object, which a status reader would take for its status.
            raise NotFound("the server could not find the requested resource")
        if info.in_namespace and not self._namespaced(ctx):
            # kube-apiserver serves no cluster-scoped resource under /namespaces/<ns>/: its
            # answer is this 404, never a list of nothing or the object the name names.
            raise NotFound("the server could not find the requested resource")
        if verb == "get":
            return self._get(ctx)
        if verb == "list":
            return self._list(ctx)
        if verb == "watch":
            return self._watch(ctx)
        if verb in ("delete", "deletecollection"):
            raise Forbidden(f"{verb} is not supported while the cloud is unreachable "
                            "(yurthub local cache); retry when it is back")
        if verb == "create":
            return self.writes.create(ctx)
        if verb in ("update", "patch"):
            return self.writes.write(ctx)
        raise MethodNotAllowed(f"{verb or ctx.method} is not supported while the cloud is "
                               "unreachable")

    # -- reads ------------------------------------------------------------------------------

    def _target(self, ctx: RequestContext) -> Any:
        info = ctx.info
        target = self.cache.read_target(info, ctx.component, ctx.accept)
        legacy = legacy_component(ctx.component)
        if legacy and target is not None and not self._holds(target):
            # A pod's (``<agent>@pod``) collection that was never filled: a hub before
            # "@pod" filed pods under their bare name, and the guard has checked that the
            # cloud allowed this token the read (offline its answer is the cached one).
            old = self.cache.read_target(info, legacy, ctx.accept)
            if old is not None and self._holds(old):
                target = old
        if target is not None and info.gvr_key in self.cfg.pool_scope_resources:
            # A pool-scoped resource: the one shared copy (the multiplexer's) answers, as it
            # answered online, gets and Tables too; a component's own copy only while no
            # shared one was made (a hub upgraded while offline).
            shared = self.cache.read_target(info, MULTIPLEXER_AGENT, ctx.accept)
            if shared is not None and CollectionState.from_json(
                    self.cache.store.state(shared[0]) or {}).views:
                target = shared
        if target is None:
            raise ServiceUnavailable(
                f"the cloud is unreachable and {info.resource or info.path} is not cached for "
                f"{ctx.component or 'clients without a User-Agent'}",
                details={"retryAfterSeconds": 5})
        return target

    def _holds(self, target: Any) -> bool:
        """Whether the collection of ``target`` holds something the cache can answer."""
        return bool(CollectionState.from_json(self.cache.store.state(target[0]) or {}).views)

    def _namespaced(self, ctx: RequestContext) -> bool:
        """False only for a resource known to be cluster-scoped."""
        target = self.cache.read_target(ctx.info, ctx.component, ctx.accept)
        return target is None or target[1].namespaced

    def _chain(self, ctx: RequestContext) -> Chain | None:
        """The filters for what the cache serves (it may hold what an older configuration
        or an older hub cached); raises 503 while the configuration is unknown."""
        info = ctx.info
        if self.filters is None or info.subresource not in filtering.FILTERED_SUBRESOURCES \
                or not (_plain(ctx.accept) or requested_table(ctx.accept) is not None):
            return None  # a Table is printed from the filtered objects
        return self.filters.chain_for(ctx.agent, info.verb, info.api_group,
                                      info.api_version, info.resource)

    def _view(self, ctx: RequestContext) -> ClientView | None:
        """The client's resume points (filters.visibility); taken before its chain."""
        info = ctx.info
        if self.filters is None:
            return None
        return self.filters.client_view(ctx.component, info.verb, info.api_group,
                                        info.resource)

    def _selectors(self, info: RequestInfo, rt: ResourceType) -> Selectors:
        """The request's selectors, refused (400) as kube-apiserver refuses them.

        A watch of one object by its path (``/api/v1/watch/namespaces/<ns>/pods/<name>``)
        selects that name, as kube-apiserver adds ``metadata.name=<name>`` (a field
        selector that pins another name or more is refused by ``check_list_options``,
        which the callers ask first).  A metadata-only
        collection (PartialObjectMetadata) indexes the objects' metadata alone: a field
        selector on the full objects' own fields (a pod's spec.nodeName) is one the cloud
        answers and the cache cannot evaluate, so 503, never a 400 that tells the client
        its request is wrong.
        """
        base = partial_metadata_base(rt.group)
        full = None if base is None else self.cache.resource_type(base, rt.version,
                                                                   rt.resource)
        fields = info.field_selector
        want = parse_selectors(info.namespace, info.label_selector, fields, full or rt)
        if info.name and want.fields.empty:
            fields = f"metadata.name={kfields.escape_value(info.name)}"
            want = parse_selectors(info.namespace, info.label_selector, fields, full or rt)
        if full is None:
            return want
        try:
            return parse_selectors(info.namespace, info.label_selector, fields,
                                   dataclasses.replace(rt, meta_fields=full.meta_fields))
        except BadRequest:
            raise ServiceUnavailable(
                f"the cloud is unreachable and the cache holds only the metadata of "
                f"{rt.resource}, which cannot select them by {fields!r}; retry when the "
                "cloud is back", details={"retryAfterSeconds": 5}) from None

    def _get(self, ctx: RequestContext) -> Response:
        info = ctx.info
        check_path_name(info.name)
        ck, rt = self._target(ctx)
        table = requested_table(ctx.accept)
        content_type = JSON if table else _content_type(ctx.accept, listing=False)
        chain = self._chain(ctx)
        missing = NotFound(not_found_message(info.api_group, info.resource, info.name),
                           details=resource_details(info.name, info.api_group, info.resource))
        # kube-apiserver's RequestInfo names a Namespace's own name as the namespace of
        # /api/v1/namespaces/<name>; a cluster-scoped object is filed under none.
        namespace = info.namespace if rt.namespaced else ""
        try:
            body, fresh = self.reader.get(ck, namespace, info.name, rt)
        except InvalidKeyError:  # not a name the cache can hold: it holds no such object
            raise missing from None
        if chain is not None:
            out = filtering.refilter_item(body, chain)
            if out is None:
                raise missing
            body = out
        if table is not None:  # kubectl's columns, printed as kube-apiserver prints them
            body = self.tables.one(ctx, rt, table, body)
        return _json(body, 200, fresh, content_type)

    def _list(self, ctx: RequestContext) -> Response:
        check_list_options(ctx.info)  # 422/400 as the cloud answers them
        ck, rt = self._target(ctx)
        table = requested_table(ctx.accept)
        content_type = JSON if table else _content_type(ctx.accept, listing=True)
        info = ctx.info
        want = self._selectors(info, rt)
        view = self._view(ctx)
        page = self.reader.list(ck, rt, want, limit=effective_limit(info.limit),
                                continue_token=info.continue_token, pinned_name=info.name)
        # The cache holds one state, at the page's version: a list at another says so.
        check_list_version(info, page.resource_version)
        if view is not None:
            view.served(str(page.resource_version))
        chain = self._chain(ctx)
        # kube-apiserver counts what is left only of a list without selectors: with them
        # the count is unknown, and left out.
        remaining = page.remaining if page.continue_token and want.key.unselected else None
        if table is not None:
            bodies = self.reader.bodies(ck, page.keys)
            if chain is not None:  # the rows of what the JSON list would hold
                bodies = (out for b in bodies
                          if (out := filtering.refilter_item(b, chain)) is not None)
            rows = self.tables.rows(ctx, rt, table, str(page.resource_version),
                                    page.continue_token,
                                    remaining,
                                    bodies)
            return _json(rows, 200, page.freshness, content_type)
        meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            meta["continue"] = page.continue_token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        head = json.dumps({"kind": page.kind, "apiVersion": page.api_version,
                           "metadata": meta}, separators=(",", ":"))
        prefix = head[:-1].encode() + b',"items":['

        def body() -> Iterator[bytes]:
            yield prefix
            first = True
            try:
                for item in self.reader.bodies(ck, page.keys, page.item_kind):
                    if chain is not None:
                        kept = filtering.refilter_item(item, chain)
                        if kept is None:
                            continue
                        item = kept
                    yield item if first else b"," + item
                    first = False
            except ServiceUnavailable as e:
                # A file damaged after the list was checked: the answer is broken off, never
                # ended short (a shorter pod list makes kubelet kill pods).
                log.warning("%s list %s: broken off: %s", ctx.component or "-", ctx.path_qs,
                            e.message)
                _abort(ctx)
                return
            yield b"]}\n"
        return _json(body(), 200, page.freshness, content_type)

    def _watch(self, ctx: RequestContext) -> Response:
        check_list_options(ctx.info)  # 422/400 as the cloud answers them
        # A Table or metadata-only watch is printed or read below; an Accept kube-apiserver
        # would not serve at all is its 406, never a stream of JSON events.
        _check_acceptable(ctx.accept, negotiate(ctx.accept, stream=True) is not None)
        ck, rt = self._target(ctx)
        info = ctx.info
        want = self._selectors(info, rt)
        timeout = info.timeout_seconds
        if not timeout:
            # Unset or 0: kube-apiserver picks minRequestTimeout * [1, 2) for both.
            timeout = int(self.cfg.min_request_timeout * (1 + random.random()))  # noqa: S311
        view = self._view(ctx)
        outdated = filtering.outdated_watch(view, info.resource_version)
        if outdated is not None:
            return outdated
        chain = self._chain(ctx)
        initial = info.send_initial_events
        try:
            start = watch_start(self.reader, ck, rt, want, info.resource_version, initial)
        except ApiError as e:
            if e.code not in (410, 504):
                raise
            line = json.dumps({"type": "ERROR", "object": status_object(e)}).encode() + b"\n"
            fresh = self.reader.freshness(ck, rt, want)
            return Response([line], status=200, content_type=JSON,
                            headers=[("Warning", fresh.warning())])
        if chain is not None:
            own = None
            if self.filters is not None:
                own = self.filters.visibility.view((ctx.component, info.api_group,
                                                    info.resource))
                if not initial:
                    own.since = resume_rv(info.resource_version)  # its client knows that much
            wf = WatchFilter(chain, own)
            decided = (wf.decide(Event(etype, raw.strip())) for etype, raw in start.events)
            start.events = (e for e in decided if e is not None)  # as the client reads
        bookmark = end_initial = None
        if info.allow_watch_bookmarks:
            kind = self.cache.kind_of(info, ctx.component, ctx.accept)
            bookmark = bookmark_event(kind, info.group_version, start.resource_version)
            if initial:
                end_initial = bookmark_event(kind, info.group_version, start.resource_version,
                                             initial_end=True)
        stream: Any = LocalWatch(self.streams, ctx, start, timeout=timeout, bookmark=bookmark,
                                 bookmark_interval=self.bookmark_interval, view=view,
                                 end_initial=end_initial, upstream_ready=self.upstream_ready)
        table = requested_table(ctx.accept)
        if table is not None:
            stream = self.tables.watch(ctx, rt, table, stream)
        headers = [("Warning", start.freshness.warning())]
        return Response(stream, status=200, content_type=JSON, headers=headers,
                        direct_passthrough=True)

    def _nonresource(self, ctx: RequestContext) -> Response:
        body = discovery.read(self.cache.store, ctx.info.path, ctx.accept)
        if body is None:
            # Not "no such path" (404): the cloud may well serve it.  A 404 on discovery
            # makes kubectl say the server "could not find the requested resource" and a
            # RESTMapper conclude that a group does not exist.
            raise ServiceUnavailable(f"the cloud is unreachable and {ctx.info.path} is not "
                                     "cached; retry when the cloud is back",
                                     details={"retryAfterSeconds": 5})
        doc, content_type = body
        return Response(doc, status=200, content_type=content_type,
                        headers=[("Warning", Freshness(self.cache.started_at).warning())])

def _abort(ctx: RequestContext) -> None:
    """Make the client see a broken body (the connection is shut down mid-answer)."""
    sock = ctx.client_socket
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # why: the client is already gone


def _json(body: Any, status: int, fresh: Freshness, content_type: str = JSON) -> Response:
    return Response(body, status=status, content_type=content_type,
                    headers=[("Warning", fresh.warning())], direct_passthrough=True)


def _content_type(accept: str, listing: bool) -> str:
    """The media type of an answer from the cache, or NotAcceptable.

    The cache holds plain objects (and PartialObjectMetadata where that was asked for);
    Tables are printed by ``yurthub.proxy.tables`` before this is asked.
    """
    n = negotiate(accept)
    t = n.transform if n is not None else None
    if t is not None and t.is_partial_metadata:
        kind = "PartialObjectMetadataList" if listing else "PartialObjectMetadata"
        if t.kind != kind:  # kube-apiserver's transformObject: no fallback to another entry
            raise NotAcceptable(f"you requested {t.kind}, but the requested object is "
                                f"{'a list' if listing else 'not a list'}")
        return f"{JSON};as={kind};g={t.group};v={t.version}"
    # The plain objects (what kube-apiserver would serve for no transform), or plain JSON
    # that the client also takes.
    _check_acceptable(accept, n is not None and t is None)
    return JSON


def _check_acceptable(accept: str, served: bool) -> None:
    """NotAcceptable unless ``served`` (kube-apiserver would serve what the cache answers)
    or the client also takes plain JSON."""
    if not served and not accepts_plain_json(accept):
        raise NotAcceptable("only application/json is served from the yurthub cache while "
                            "the cloud is unreachable")


def _plain(accept: str) -> bool:
    """Plain objects are served (not PartialObjectMetadata): the filters apply."""
    n = negotiate(accept)
    return n is None or n.transform is None
