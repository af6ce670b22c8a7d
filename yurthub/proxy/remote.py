"""The remote proxy: forward a request to a healthy cloud server and stream the answer back.

design: the request thread reads the upstream body once, chunk by chunk, yields each chunk
to gunicorn (which writes it to the client at once) and then offers it to the cache tee.
The tee never blocks, so the client goes at the cloud's pace, not the disk's.  A watch
registers with the watchdog (client gone -> upstream read interrupted) and with the stream
registry (shutdown and health changes end it cleanly, on an event boundary, so client-go
re-watches at once from its last resourceVersion).  A body that breaks mid-way is never
made to look complete: the client connection is aborted and the tee told it was broken.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from yurthub import upstream as up
from yurthub.access.guard import AccessGuard
from yurthub.cache.manager import CacheManager
from yurthub.cache.tee import Tee
from yurthub.errors import (
    IdentityUnavailable,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    UpstreamBroken,
    UpstreamError,
    UpstreamUnavailable,
)
from yurthub.filters.chain import Chain
from yurthub.filters.manager import FilterManager
from yurthub.filters.visibility import ClientView, resume_rv
from yurthub.kube.accept import JSON, upstream_accept
from yurthub.kube.resources import builtin
from yurthub.kube.table import TableWriter
from yurthub.metrics import Metrics
from yurthub.proxy import filtering, tables, tunnel
from yurthub.proxy.context import RequestContext
from yurthub.proxy.responses import Answer, Passthrough, upstream_headers
from yurthub.proxy.streams import RELIST, OpenStream, Reason, StreamRegistry
from yurthub.proxy.tokens import is_token_request

log = logging.getLogger(__name__)


# The part of max_watches that a user not allowed the hub's credentials may hold: each
# other UID a quarter; the pods on 10268 (whose owner is unknown: kube-proxy and coredns
# among them when in-cluster) together half.
UNTRUSTED_WATCH_SHARE = 4
PODS_WATCH_SHARE = 2


class RemoteProxy:
    """Sends requests to the cloud; raises UpstreamUnavailable when no server can be reached."""

    def __init__(self, upstream: up.Upstream, cache: CacheManager, streams: StreamRegistry,
                 metrics: Metrics, *, max_watches: int, filters: FilterManager,
                 guard: AccessGuard | None = None,
                 on_transport_error: Any = None) -> None:
        self.upstream = upstream
        self.cache = cache
        self.streams = streams
        self.metrics = metrics
        self.max_watches = max_watches
        self.filters = filters
        self.guard = guard
        self.on_transport_error = on_transport_error

    def check_room(self, ctx: RequestContext) -> bool:
        """429 for a watch (or a followed log, or an upgraded session: exec, attach,
        port-forward) while ``max_watches`` streams hold request threads, from the cloud,
        the cache or the shared state alike: each holds one for as long as it lasts, and the
        threads past the bound serve everything else.  True when a slot was claimed for
        this request: the caller gives it back when the answer ends (``streams.unclaim``);
        its stream, once open, holds it instead."""
        info = ctx.info
        long_lived = info.verb == "watch" or tunnel.is_upgrade(ctx) or ctx.follows
        sock = ctx.client_socket
        # The hub's own in-process requests (the multiplexer's feed) hold no thread.
        if not long_lived or sock is None:
            return False
        caller = ctx.caller
        # A user that may not use the hub's credentials (another UID, a pod on 10268) holds
        # a share of the slots, never all: kubelet's informers must find room.
        owner = None if caller.trusted else ("uid", caller.uid)
        share = max(1, self.max_watches // (UNTRUSTED_WATCH_SHARE if caller.uid is not None
                                            else PODS_WATCH_SHARE))
        refused = self.streams.claim(sock, self.max_watches, owner, share)
        if refused == "share":
            who = "pods and unknown users" if caller.uid is None else f"user {caller.uid}"
            raise TooManyRequests(f"too many open watches for {who} ({share} of "
                                  f"{self.max_watches}); retry later",
                                  details={"retryAfterSeconds": 1})
        if refused:
            raise TooManyRequests(f"too many open watches ({self.max_watches}); retry later",
                                  details={"retryAfterSeconds": 1})
        return True

    def handle(self, ctx: RequestContext) -> Answer:
        if tunnel.is_upgrade(ctx):  # exec, attach, port-forward: relayed as they are
            return tunnel.serve(self.upstream, self.streams, ctx, self.guard)
        info = ctx.info
        watch = info.verb == "watch"
        follow = ctx.follows
        if self.streams.shutting_down.is_set():
            raise ServiceUnavailable("yurthub is shutting down", details={"retryAfterSeconds": 1})
        # Before anything is sent: until the filter configuration is known, a request some
        # filter could apply to gets a 503 (never unfiltered data).  The cache is told when
        # the filters were chosen: an answer filtered before they changed is no fresh one.
        asked_at = time.monotonic()
        chain = view = None
        # A HEAD's answer has no body: nothing to filter (an empty "list" is no torn one).
        if info.subresource in filtering.FILTERED_SUBRESOURCES and ctx.method != "HEAD":
            view = self.filters.client_view(ctx.component, info.verb, info.api_group,
                                            info.resource)
            if view is not None and info.verb == "list" and not info.continue_token:
                if not (info.label_selector or info.field_selector or info.limit):
                    view.covers = info.namespace  # every object there: drops start afresh
                else:
                    view.lists = info.namespace  # what it did not drop, it showed
            if view is not None and watch and not info.send_initial_events:
                view.since = resume_rv(info.resource_version)  # its client knows that much
            outdated = filtering.outdated_watch(view, info.resource_version) if watch else None
            if outdated is not None:
                return outdated
            chain = self.filters.chain_for(ctx.agent, info.verb, info.api_group,
                                           info.api_version, info.resource)
        headers = ctx.forward_headers()
        accept = headers.get("Accept")
        table: TableWriter | None = None
        path_qs = ctx.path_qs
        wants_table = tables.requested_table(accept) if chain is not None and accept else None
        if wants_table is not None:
            # The cloud's Table cannot be filtered (its rows hold no objects): the cloud is
            # asked for JSON, which is filtered and printed here (proxy/tables.py).  The
            # writer is made first: a bad includeObject is a 400 before anything is sent.
            table = tables.table_writer(self.cache, ctx, wants_table)
            headers["Accept"] = JSON
        elif accept and info.verb in ("get", "list") and chain is None \
                and tables.requested_table(accept) is not None \
                and self.cache.may_cache(info, ctx.component, JSON):
            # kubectl's Table, by a cache agent: the rows' whole objects are asked for, so
            # the cache stores them and prints the same columns offline.
            path_qs = tables.whole_objects_path(path_qs) or path_qs
        elif accept and (watch or chain is not None or is_token_request(info)
                         or self.cache.may_cache(info, ctx.component, accept)):
            # The cache and the filters read JSON only, and a watch is ended on an event
            # boundary found in JSON lines, and kubelet's tokens are kept as JSON
            # (proxy/tokens.py): those ask for JSON instead of protobuf.  Every
            # other request keeps the client's Accept (protobuf: a third of the bytes).
            headers["Accept"] = upstream_accept(accept)
        body = ctx.body_for_upstream()
        timeout = up.read_timeout_for(watch, info.timeout_seconds, follow)
        resp = self._send(ctx, headers, body, timeout, path_qs)
        if self.guard is not None:
            self.guard.record(ctx.caller, info, resp.status)
        # A list's chunks mean nothing: those that have arrived go on together.
        # A get or a list whose body stalls is cut once the cloud is declared gone.
        chunks = up.stream(resp, coalesce=not (watch or follow), cut_first=not (watch or follow))
        first = b""
        sent = list(resp.headers.items())  # a repeated name (Warning) once per value
        resp_headers = dict(sent)
        if chain is not None and not (200 <= resp.status < 300 and filtering.filterable(
                resp_headers.get("Content-Type"), resp_headers.get("Content-Encoding"))):
            chain = table = None  # an error Status passes through as it is
        if chain is not None:
            chunks, first, resp_headers = self._filtered(ctx, resp, chunks, chain, resp_headers,
                                                         view, table)
        elif not (watch or follow):
            # Read the first chunk before answering: if the connection breaks before any
            # byte, the client gets a Status (or the cache) instead of a reset.
            try:
                first = next(chunks, b"")
            except UpstreamError as e:
                up.finish(resp, False)
                raise UpstreamBroken(f"{ctx.info.verb} {ctx.path_qs}: {e}") from e
            if view is not None and resp.status == 200:
                # Not filtered now, but a change may give this client a filter: its list
                # is a resume point too (read from the list's head, when not compressed).
                filtering.served_list_head(view, first, resp_headers)

        status = resp.status

        def open_tee() -> Tee | None:
            if table is not None:
                return None  # a Table the hub printed: the cache keeps objects only
            return self.cache.tee_for(info, ctx.component, ctx.accept, status, resp_headers,
                                      asked_at)

        out_headers = upstream_headers(sent, resp_headers)
        stream = ProxiedStream(self, ctx, resp, open_tee, chunks, first,
                               long_lived=watch or follow, view=view if watch else None)
        self.metrics.requests.labels(ctx.agent, info.verb, "remote", str(resp.status)).inc()
        ctx.counted = "remote"
        return Passthrough(stream, resp.status, out_headers)

    def _filtered(self, ctx: RequestContext, resp: up.UpstreamResponse, chunks: Iterator[bytes],
                  chain: Chain, headers: dict[str, str], view: ClientView | None,
                  table: TableWriter | None = None
                  ) -> tuple[Iterator[bytes], bytes, dict[str, str]]:
        """Run the response filters: the client and the cache get the filtered body (the
        client its Table, with ``table``)."""
        gzipped = headers.get("Content-Encoding", "").strip().lower() == "gzip"
        verb = ctx.info.verb
        gzip_out = gzipped and verb != "watch" and filtering.accepts_gzip(
            ctx.header("Accept-Encoding"))
        out = {k: v for k, v in headers.items()
               if k.lower() not in ("content-length", "content-encoding")}
        if gzip_out:
            out["Content-Encoding"] = "gzip"
        log.debug("%s %s %s: filters %s", ctx.component, verb, ctx.path_qs, chain.names)
        if view is None:  # a get or patch: only what was dropped is tracked
            view = self.filters.visibility.view((ctx.component, ctx.info.api_group,
                                                 ctx.info.resource))
        rt = builtin(ctx.info.api_group, ctx.info.api_version, ctx.info.resource)
        try:
            body, whole = filtering.filter_stream(
                verb, chunks, chain, gzipped=gzipped, gzip_out=gzip_out, visibility=view,
                table=table, item_type=(rt.kind, rt.group_version) if rt else None)
        except UpstreamError as e:
            up.finish(resp, False)
            raise UpstreamBroken(f"{verb} {ctx.path_qs}: {e}") from e
        except NotFound:
            up.finish(resp, True)
            raise
        if whole is not None:
            out["Content-Length"] = str(len(whole))
            return iter(()), whole, out
        first = b""
        if verb != "watch":
            # As unfiltered: the first bytes before answering, so a connection that breaks
            # before any byte gets a Status (or the cache) instead of a reset.
            try:
                first = next(body, b"")
            except UpstreamError as e:
                up.finish(resp, False)
                raise UpstreamBroken(f"{verb} {ctx.path_qs}: {e}") from e
        return body, first, out

    def _send(self, ctx: RequestContext, headers: dict[str, str], body: Any,
              timeout: float | None, path_qs: str | None = None) -> up.UpstreamResponse:
        servers = self.upstream.candidates()
        if not servers:
            raise UpstreamUnavailable("no healthy apiserver")
        last: UpstreamUnavailable | None = None
        for server in servers:
            if last is not None and not server.healthy:
                continue  # declared gone since this request began
            try:
                return self.upstream.send(server, ctx.method, path_qs or ctx.path_qs, headers,
                                          body, read_timeout=timeout)
            except IdentityUnavailable:
                raise  # the hub itself is not ready: no server would do better
            except UpstreamUnavailable as e:
                log.warning("%s %s %s: %s", ctx.component or "-", ctx.info.verb, ctx.path_qs, e)
                if self.on_transport_error is not None:
                    self.on_transport_error(server)
                last = e
                if body is not None and not isinstance(body, bytes):
                    break  # a streamed body cannot be sent twice
        assert last is not None
        raise last


class ProxiedStream:
    """The response body: upstream chunks to the client first, then to the tee.

    The tee is opened once the first chunk has gone to the client: a small object's whole
    answer never waits for the pipe and the writer's bookkeeping.
    """

    source = "remote"

    def __init__(self, proxy: RemoteProxy, ctx: RequestContext, resp: up.UpstreamResponse,
                 open_tee: Callable[[], Tee | None], chunks: Iterator[bytes], first: bytes, *,
                 long_lived: bool, view: ClientView | None = None) -> None:
        self.proxy = proxy
        self.view = view  # a watch's client, whose filters may change under it
        self.ctx = ctx
        self.resp = resp
        self.open_tee: Callable[[], Tee | None] | None = open_tee
        self.tee: Tee | None = None
        self.chunks = chunks
        self.first = first
        self.long_lived = long_lived
        self.reason: Reason | None = None
        self.whole = False
        self.sent = 0
        self._closed = False
        self._lock = threading.Lock()
        self._life: OpenStream | None = None
        # (bounded by Metrics.traffic when counted)
        self._labels = (ctx.agent, ctx.info.verb, ctx.info.resource, ctx.info.subresource)

    def interrupt(self, reason: Reason) -> None:
        with self._lock:
            if self._closed or self.reason is not None:
                return
            self.reason = reason
        up.interrupt(self.resp)

    def __iter__(self) -> Iterator[bytes]:
        self._life = self.proxy.streams.open(self, self.ctx.client_socket,
                                             long_lived=self.long_lived,
                                             watch=self.ctx.info.verb == "watch",
                                             component=self.ctx.component)
        metrics = self.proxy.metrics
        aligned = True
        try:
            if self.long_lived:
                yield b""  # headers at once, as kube-apiserver does, not with the first event
            if self.view is not None and self.view.changed():
                # Changed after the view was taken, before this stream was registered (a
                # change after it interrupts the stream): not one event of the old filters.
                yield filtering.outdated_event(self.ctx.info.resource_version)
                return
            for chunk in itertools.chain((self.first,) if self.first else (), self.chunks):
                yield chunk
                self.sent += len(chunk)
                aligned = chunk.endswith(b"\n")
                if self.open_tee is not None:
                    self.tee, self.open_tee = self.open_tee(), None
                if self.tee is not None:
                    self.tee.write(chunk)
            self.whole = self.reason is None
        except UpstreamError as e:
            if self.long_lived and aligned and self.reason is not Reason.CLIENT_GONE:
                # End on an event boundary, as the apiserver ends a watch: client-go simply
                # re-watches from the last resourceVersion it saw (from the cache if the
                # cloud is gone).
                # DEBUG: a cut ends every watch at once, and the change of state is logged
                # once (the health checker's, or the summary of whoever ended them).
                why = self.reason.value if self.reason else f"upstream ended: {e}"
                log.debug("%s %s %s: ended (%s)", self.ctx.component or "-",
                         self.ctx.info.verb, self.ctx.path_qs, why)
                if self.reason in RELIST:
                    yield filtering.outdated_event(self.ctx.info.resource_version,
                                                   RELIST[self.reason])
                return
            if self.reason is not Reason.CLIENT_GONE:
                log.warning("%s %s %s: upstream broke after %d bytes: %s",
                            self.ctx.component or "-", self.ctx.info.verb, self.ctx.path_qs,
                            self.sent, e)
            self._abort_client()
        finally:
            metrics.traffic.labels(*self._labels).inc(self.sent)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._life is not None:
            self._life.close()
        if self.tee is not None:
            self.tee.close(self.whole)
        up.finish(self.resp, self.whole)
        log.debug("%s %s %s %d bytes in %.3fs", self.ctx.component or "-", self.ctx.info.verb,
                  self.ctx.path_qs, self.sent, time.monotonic() - self.ctx.started)

    def _abort_client(self) -> None:
        """Make the client see a broken body, never a short one that looks complete."""
        sock = self.ctx.client_socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # why: the client is already gone
