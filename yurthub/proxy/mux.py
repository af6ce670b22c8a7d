"""The node-level multiplexer: every local client's list and watch of a pool-scoped resource
answered from one shared state, fed by one upstream list+watch (YurtHub's multiplexer).

For each resource of ``pool_scope_resources`` the first client's request starts a Feed
(proxy/muxfeed.py); until its first list arrives clients wait a moment, then get 429 with
``Retry-After``.  Each answer follows kube-apiserver's watch cache: the client's namespace,
label and field selectors; a list or a watch-list (``sendInitialEvents``) "not older than" a
resourceVersion the state has not reached goes to the cloud while the cloud answers
(``Multiplexer._reached``), and waits for it while it does not (504 after 3 s, as the watch
cache does); ``limit`` is ignored (the
whole list is one consistent page, as the watch cache serves it); a list without a
resourceVersion (and a watch-list without one) is a consistent read: while the cloud
answers, the state must first reach the cloud's current resourceVersion (see
``Multiplexer._consistent``); a watch without a resourceVersion starts with ADDED events
of what exists, a watch from a version gets every change after it, or 410 Expired as an
ERROR event when the history no longer holds them; objects entering or leaving a selection
arrive as ADDED / DELETED; BOOKMARKs when allowed; timeoutSeconds.
Filters run per client on the way out and never change the shared objects.

Requests it does not take go the ordinary way: the multiplexer's own, exact historical
lists while the cloud answers (offline the shared history answers them: the list at that
version, 410 when the history no longer holds it, as kube-apiserver's), ``continue`` pages,
a watch of one named object, Table and metadata-only answers (offline the shared state
answers metadata-only lists and watches, as PartialObjectMetadata).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

from werkzeug.wrappers import Response

from yurthub.access.guard import AccessGuard
from yurthub.access.keys import access_key
from yurthub.cache.manager import CacheManager
from yurthub.cache.policy import is_historical_list
from yurthub.cache.views import Selectors, parse_selectors
from yurthub.config import MULTIPLEXER_AGENT, Config
from yurthub.errors import GatewayTimeout, Gone, TooManyRequests
from yurthub.filters.chain import Chain
from yurthub.filters.manager import FilterManager
from yurthub.filters.visibility import ClientView
from yurthub.kube.accept import Transform, negotiate
from yurthub.kube.listoptions import (
    check_list_options,
    parse_resource_version,
    too_large_resource_version,
)
from yurthub.kube.resources import ResourceType, builtin
from yurthub.kube.status import status_object
from yurthub.metrics import Metrics
from yurthub.proxy import filtering
from yurthub.proxy.context import RequestContext
from yurthub.proxy.grantcheck import GrantCheck
from yurthub.proxy.muxfeed import UNKNOWN, Feed, Latest, WsgiApp
from yurthub.proxy.muxstate import Obj, SharedState
from yurthub.proxy.muxwatch import (
    SharedWatch,
    dump,
    event_line,
    filtered_item,
    partial,
    selected,
)
from yurthub.proxy.streams import Reason, StreamRegistry

log = logging.getLogger(__name__)

JSON = "application/json"
SYNC_WAIT = 10.0          # how long a first request waits for the first list
TOO_LARGE_WAIT = 3.0      # kube's watch cache waits this long for a future resourceVersion
CONSISTENT_WAIT = 1.0     # a consistent read waits this long for a bookmark that is due
GZIP_MIN = 128 * 1024     # kube-apiserver compresses answers from this size on


class Shared:
    """One pool-scoped resource: its state and the feed that keeps it current."""

    def __init__(self, key: str, state: SharedState, feed: Feed,
                 latest: Latest | None = None) -> None:
        self.key = key
        self.state = state
        self.feed = feed
        self.latest = latest  # None: consistent reads are answered from the state as it is


class Multiplexer:
    """Takes the list and watch requests of pool-scoped resources and answers them."""

    def __init__(self, cfg: Config, streams: StreamRegistry, filters: FilterManager,
                 metrics: Metrics, *, guard: AccessGuard | None = None,
                 feed_environ: dict[str, Any] | None = None, upstream: Any = None,
                 cache: CacheManager | None = None) -> None:
        self.cfg = cfg
        self.cache = cache  # whose copy of each shared state a feed keeps complete
        self.upstream = upstream  # for the cloud's current resourceVersion (muxfeed.Latest)
        self.streams = streams
        self.filters = filters
        self.guard = guard
        self.feed_environ = dict(feed_environ or {})
        self.metrics = metrics
        self.resources = frozenset(cfg.pool_scope_resources)
        self.app: WsgiApp | None = None
        self._shared: dict[str, Shared] = {}
        self._lock = threading.Lock()
        self._stopped = False
        # Online, a token's grant is confirmed with the cloud at a bounded age before the
        # shared state answers it (proxy/grantcheck.py).
        self.grants = GrantCheck(guard, upstream, float(cfg.token_recheck_interval)) \
            if guard is not None and upstream is not None else None

    def attach(self, app: WsgiApp) -> None:
        """The proxy app the feeds send their list and watch through."""
        self.app = app

    def begin_shutdown(self) -> None:
        """The feeds stop retrying (safe in a signal handler: it only sets flags)."""
        for s in list(self._shared.values()):
            s.feed.stopping.set()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            shared = list(self._shared.values())
        for s in shared:
            s.feed.stop()

    # -- which requests ---------------------------------------------------------------------

    def takes(self, ctx: RequestContext) -> Shared | None:
        """The shared resource that answers this request, or None (it goes the usual way)."""
        info = ctx.info
        if (not info.is_resource_request or info.verb not in ("list", "watch")
                or info.subresource or info.name or ctx.method != "GET"):
            return None
        key = info.gvr_key
        if key not in self.resources or ctx.agent == MULTIPLEXER_AGENT:
            return None
        if info.verb == "list" and info.continue_token:
            return None
        if info.verb == "list" and is_historical_list(info) and self._cloud_answers():
            return None  # (offline, the shared history answers an exact list: _list)
        n = negotiate(ctx.accept, stream=info.verb == "watch")
        if n is None:
            return None  # 406: the cloud's, or offline the cache's (proxy/local.py)
        t = n.transform
        if t is not None and not (self._partial(t, info.verb) and not self._cloud_answers()):
            # Tables and metadata-only answers go upstream as before; offline the shared
            # state answers the metadata-only ones (the cache holds no copy of them but a
            # component's own, and only if it asked for them online).
            return None
        return self._get(key)

    @staticmethod
    def _partial(t: Transform, verb: str) -> bool:
        """A metadata-only list or watch (a list asks the list kind, a watch the object's;
        the other is 406 the usual way, as kube-apiserver's)."""
        want = "PartialObjectMetadataList" if verb == "list" else "PartialObjectMetadata"
        return t.kind == want and t.group == "meta.k8s.io"

    def _get(self, key: str) -> Shared | None:
        with self._lock:
            shared = self._shared.get(key)
            if shared is not None or self._stopped or self.app is None:
                return shared
            group, version, resource = key.split("/")
            rt = builtin(group, version, resource)
            if rt is None:
                return None
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            state = SharedState(rt, self.cfg.watch_history_size)
            feed = Feed(self.app, state, f"{prefix}/{resource}", self.cfg.node_name,
                        self.feed_environ, functools.partial(self._copy_problem, rt))
            latest = None
            if self.upstream is not None:
                latest = Latest(self.upstream, f"{prefix}/{resource}", feed.user_agent)
            shared = self._shared[key] = Shared(key, state, feed, latest)
            log.info("shared %s: first client request; starting the upstream list+watch", key)
            feed.start()
            return shared

    # -- answers ----------------------------------------------------------------------------

    def handle(self, ctx: RequestContext, shared: Shared) -> Response | None:
        """The answer from the shared state; None when the hub itself may not list the
        resource (the request then goes the usual way, with the client's credentials)."""
        info = ctx.info
        state = shared.state
        want = parse_selectors(info.namespace, info.label_selector, info.field_selector,
                               state.rt)
        caller = ctx.caller
        if (self.guard is not None and caller.authorization
                and not self.guard.memory.allows(caller.authorization, caller.component,
                                                 access_key(info))):
            # A token the cloud was never seen to allow this: the usual way decides (online
            # the cloud, whose answer the guard remembers; offline the guard refuses it).
            return None
        if self.grants is not None and caller.authorization:
            confirmed = self.grants.confirm(ctx)
            if confirmed is False:
                return None
            if isinstance(confirmed, Response):
                return confirmed   # the cloud's 401/403: it no longer allows this token
        check_list_options(info)  # 422/400 as the cloud answers, before any wait
        feed = shared.feed
        if not state.synced and not feed.refused:
            state.wait_for(lambda: state.synced or bool(feed.refused), SYNC_WAIT)
        if not state.synced:
            if feed.refused:
                log.debug("shared %s: not used (%s)", shared.key, feed.refused)
                return None
            raise TooManyRequests(f"the shared list of {info.resource} is being loaded; "
                                  "retry in a moment", details={"retryAfterSeconds": 1})
        if not info.resource_version and (info.verb == "list" or info.send_initial_events) \
                and not self._consistent(shared):
            return None  # the state could not catch up: the cloud answers this one
        if (info.verb == "list" or info.send_initial_events) \
                and info.resource_version not in ("", "0") \
                and not self._reached(shared, _rv(info.resource_version)):
            return None  # a version the cloud gave the client: the cloud answers at once
        # (the client's name is its to choose: Metrics.requests bounds it)
        self.metrics.requests.labels(ctx.agent, info.verb, "shared", "200").inc()
        n = negotiate(ctx.accept, stream=info.verb == "watch")
        t = n.transform if n is not None else None
        meta = t.api_version if t is not None else ""
        view = None if meta else self.filters.client_view(ctx.component, info.verb,
                                                          info.api_group, info.resource)
        chain = None if meta else self._chain(ctx)  # filters change plain objects only
        if info.verb == "list":
            resp = self._list(ctx, state, want, chain, view, meta)
        else:
            resp = self._watch(ctx, state, want, chain, view, meta)
        if not self._cloud_answers() and self.cache is not None:
            # The cloud is away: the state is the cache's copy, and the answer says so and
            # how old it is, as the local proxy's do.  The copy's view knows its age (the
            # feed's own clock does not: offline its watch hears the hub's bookmarks, and
            # after a restart its first list came from the cache).
            target = self.cache.read_target(info, MULTIPLEXER_AGENT, "")
            if target is not None:
                fresh = self.cache.reader.freshness(target[0], target[1], want)
                resp.headers.add("Warning", fresh.warning())
        return resp

    def _chain(self, ctx: RequestContext) -> Chain | None:
        info = ctx.info
        return self.filters.chain_for(ctx.agent, info.verb, info.api_group, info.api_version,
                                      info.resource)

    def _consistent(self, shared: Shared) -> bool:
        """Whether the state holds what the cloud holds now: a consistent read.

        kube-apiserver's watch cache asks etcd for its current revision and waits for it
        (etcd's progress notifications, asked for there and then, move it on when nothing
        changed).  Here a probe (muxfeed.Latest, a list with limit=1) gives the cloud's
        current resourceVersion, and the state answers when it has reached it: the change
        came before the probe's answer, or the collection has not changed since the last
        bookmark.  Nothing here can ask the apiserver for progress: a quiet collection in
        a busy cluster (the version moved with other resources) reaches it only at the
        next bookmark.  The state is waited for (up to CONSISTENT_WAIT) only when that
        bookmark is due by then (``Feed.bookmark_due``); kube-apiserver's come about once
        a minute, and waiting for one would only delay the answer.  False then, and the
        request goes the usual way (the cloud answers it, as kube-apiserver answered every
        consistent list from etcd before it could do it from its cache).  A feed whose
        watch has gone silent for longer than its bookmark cadence is stalled: its watch is
        ended, and it watches again from the state's version.  While the cloud is away (no
        probe can be sent) the state is the newest there is: True at once.  A cloud that
        answers the probe without its version (a 429 of its priority and fairness, a 5xx)
        shows nothing: False, and the cloud answers.
        """
        if shared.latest is None:
            return True
        state, feed = shared.state, shared.feed
        # The version the state had before the probe was sent: an event may reach the
        # state while the probe is out (a write in a busy cluster), and a probe's answer
        # below the state's version now proves nothing; below this one, that the cloud's
        # versions went back (etcd's revisions only grow).
        before = state.rv
        rv = shared.latest.get()
        if rv is not None and 0 < rv < before:
            # The cloud's versions went back (etcd restored from a backup): what the state
            # holds may be gone, and its watch waits for versions the cloud will reuse.
            first = feed.went_back()
            n = self.streams.interrupt_where(Reason.STATE_BEHIND, _feed_watch(shared.key))
            # (said once until the relist succeeds: every consistent read finds it so)
            log.log(logging.WARNING if first else logging.DEBUG,
                    "shared %s: at %d, past the cloud's %d (etcd restored?); listing again "
                    "(%d watch ended), the cloud answers meanwhile", shared.key, before,
                    rv, n)
            return False
        wait = CONSISTENT_WAIT if feed.bookmark_due(CONSISTENT_WAIT) else 0.0
        if rv is None or (rv != UNKNOWN and state.wait_rv(rv, wait)):
            return True
        if rv == UNKNOWN:
            log.debug("shared %s: the cloud did not say its version; a consistent read goes "
                      "to the cloud", shared.key)
            return False
        if feed.stalled():
            n = self.streams.interrupt_where(Reason.STATE_BEHIND, _feed_watch(shared.key))
            log.warning("shared %s: at %d, behind the cloud's %d, and its upstream watch has "
                        "been silent for %.0fs; watching again (%d ended)", shared.key,
                        state.rv, rv, time.monotonic() - feed.heard_at, n)
        else:
            log.debug("shared %s: at %d, behind the cloud's %d; a consistent read goes to "
                      "the cloud", shared.key, state.rv, rv)
        return False

    def _reached(self, shared: Shared, rv: int) -> bool:
        """Whether the state answers a list or a watch-list "not older than" ``rv``: it holds
        that version, or the cloud is away (then the request waits for it, 504 after the
        watch cache's wait).

        A version the state has not seen while the cloud answers is mostly one the cloud
        gave the client itself: a consistent list the cloud answered (see ``_consistent``),
        its version past the state of a quiet collection until the apiserver's next
        bookmark, about a minute away.  client-go relists at the last version it saw; the
        cloud answers that at once, where waiting here ends in a 504 after 3 s.  A
        watch-list's reflector retries at that version too (client-go's ``watchList``), and
        kube-apiserver's cache waits until it reaches it: the cloud answers it here.
        """
        if shared.state.rv >= rv or shared.latest is None or self.upstream is None:
            return True
        return not self.upstream.candidates()

    @staticmethod
    def _wait_rv(state: SharedState, rv: int) -> None:
        """Wait for the state to reach ``rv``; 504 after the watch cache's wait."""
        if not state.wait_rv(rv, TOO_LARGE_WAIT):
            raise too_large_resource_version(rv, state.rv)

    def _copy_problem(self, rt: ResourceType, mark: int | None) -> tuple[str, int]:
        """Why the cached copy of ``rt``'s shared state is no whole list, when a list now
        would make one (the cloud answers, caching works), else ""; and the cache's
        setbacks so far (a feed passes them back as ``mark`` after its next list).  A copy
        with no list at all since a list that the cache has not refused is left alone: that
        list's commit may still be on its way."""
        cache = self.cache
        if cache is None:
            return "", 0
        setbacks = cache.setbacks()
        if (self.upstream is None or not self.upstream.candidates()
                or cache.not_ready() is not None):
            return "", setbacks
        why, missing = cache.reader.whole_list_problem(MULTIPLEXER_AGENT, rt)
        if missing and setbacks == mark:
            return "", setbacks
        return why, setbacks

    def _cloud_answers(self) -> bool:
        return self.upstream is None or bool(self.upstream.candidates())

    def _list(self, ctx: RequestContext, state: SharedState, want: Selectors,
              chain: Chain | None, view: ClientView | None, meta: str = "") -> Response:
        rv_param = ctx.info.resource_version
        if rv_param not in ("", "0"):
            self._wait_rv(state, _rv(rv_param))
        if is_historical_list(ctx.info):
            # Exact (or a version with a limit): the list as it was at that version, from
            # the history, as the cloud answers it; 410 when the history no longer has it.
            rv = _rv(rv_param)
            at = state.snapshot_at(rv)
            if at is None:
                raise Gone("The resourceVersion for the provided list is too old.")
            objs = at
        else:
            rv, objs, _ = state.snapshot()
        if view is not None:
            view.served(str(rv))
        rt = state.rt
        head = dump({"kind": "PartialObjectMetadataList" if meta else rt.list_kind,
                     "apiVersion": meta or rt.group_version,
                     "metadata": {"resourceVersion": str(rv)}})
        pieces = [head[:-1], b',"items":[']
        sep = b""
        for o in objs:
            if not selected(want, o):
                continue
            raw = partial(o.body, meta) if meta else \
                o.item if chain is None else filtered_item(chain, o)
            if raw is None:
                continue
            pieces += (sep, raw)
            sep = b","
        pieces.append(b"]}")
        headers = []
        body: Iterator[bytes]
        if _accepts_gzip(ctx.header("Accept-Encoding")) and \
                sum(map(len, pieces)) >= GZIP_MIN:
            # As kube-apiserver: a big answer is compressed for a client that accepts it.
            headers = [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
            body = _gzipped(pieces)
        else:
            body = (b"".join(pieces[i:i + 512]) for i in range(0, len(pieces), 512))
        content_type = JSON
        if meta:
            group, _, version = meta.partition("/")
            content_type = f"{JSON};as=PartialObjectMetadataList;g={group};v={version}"
        return Response(body, status=200, content_type=content_type, headers=headers,
                        direct_passthrough=True)

    def _watch(self, ctx: RequestContext, state: SharedState, want: Selectors,
               chain: Chain | None, view: ClientView | None, meta: str = "") -> Response:
        info = ctx.info
        rv_param = info.resource_version
        initial = info.send_initial_events
        if initial is None:
            initial = rv_param in ("", "0")
        timeout = info.timeout_seconds
        if not timeout:
            # Unset or 0: kube-apiserver picks minRequestTimeout * [1, 2) for both.
            timeout = int(self.cfg.min_request_timeout * (1 + random.random()))  # noqa: S311
        first: list[Obj] = []
        if initial:
            if rv_param not in ("", "0"):  # (a watch-list, resourceVersionMatch=NotOlderThan)
                # Initial events "not older than" a version: the state must reach it first,
                # as a list at that version waits for it (only while the cloud is away: see
                # handle); kube-apiserver's watch cache ends such a watch with an ERROR
                # event (504 Too large resource version).
                try:
                    self._wait_rv(state, _rv(rv_param))
                except GatewayTimeout as e:
                    line = event_line("ERROR", dump(status_object(e)))
                    return Response([line], status=200, content_type=JSON)
            rv, objs, seq = state.snapshot()
            first = [o for o in objs if selected(want, o)]
            start_rv = rv
        else:
            outdated = filtering.outdated_watch(view, rv_param)
            if outdated is not None:
                return outdated
            start_rv = _rv(rv_param) if rv_param not in ("", "0") else state.rv
            got = state.seq_after(start_rv)
            if got is None:
                err = Gone(f"too old resource version: {start_rv} ({state.base_rv})")
                line = event_line("ERROR", dump(status_object(err)))
                return Response([line], status=200, content_type=JSON)
            seq = got
        stream = SharedWatch(self.streams, ctx, state, want, chain, view, seq=seq,
                             initial=first, start_rv=start_rv, timeout=timeout,
                             bookmark_interval=float(self.cfg.watch_bookmark_interval),
                             end_initial=bool(info.send_initial_events), meta=meta)
        return Response(stream, status=200, content_type=JSON, direct_passthrough=True)


def _feed_watch(key: str) -> Any:
    """Selects the upstream watch a feed is in (through the proxy: a remote stream)."""
    def match(stream: Any) -> bool:
        ctx = getattr(stream, "ctx", None)
        return (stream.source == "remote" and ctx is not None and ctx.agent == MULTIPLEXER_AGENT
                and ctx.info.verb == "watch" and ctx.info.gvr_key == key)
    return match


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


def _gzipped(pieces: list[bytes]) -> Iterator[bytes]:
    z = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing, fast level
    out = []
    for piece in pieces:
        got = z.compress(piece)
        if got:
            out.append(got)
            if len(out) >= 64:
                yield b"".join(out)
                out = []
    out.append(z.flush())
    yield b"".join(out)


def _rv(text: str) -> int:
    return parse_resource_version(text)


__all__ = ["Multiplexer", "Shared", "SharedWatch"]
