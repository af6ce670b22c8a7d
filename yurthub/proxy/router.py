"""The API proxy's WSGI app: parse once, route to the cloud or to the cache, answer errors.

Routing follows YurtHub: a healthy cloud gets the request; when no server is healthy, or a
request cannot reach any server (nothing was sent), the local proxy answers it from the
cache if it can: reads, and the writes it applies while the cloud is away.  Every
failure becomes a ``metav1.Status`` here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from yurthub.access.guard import AccessGuard
from yurthub.cache.reader import CONTINUE_EXPIRED, is_local_continue
from yurthub.connection import ENV_LONG_RUNNING
from yurthub.errors import (
    ApiError,
    BadGateway,
    Gone,
    IdentityUnavailable,
    ServiceUnavailable,
    UpstreamBroken,
    UpstreamUnavailable,
)
from yurthub.metrics import OTHER
from yurthub.proxy.context import RequestContext, build_context
from yurthub.proxy.remote import RemoteProxy
from yurthub.proxy.responses import Answer, internal_error, status_response
from yurthub.proxy.tokens import KeptTokens
from yurthub.recorder import FALLBACK, REFUSAL, Recorder

log = logging.getLogger(__name__)

# Statuses that mean "the hub would not do it", as opposed to an answer (404, 410, 400...).
_REFUSALS = frozenset({401, 403, 405, 408, 413, 429, 500, 502, 503, 504})


class LocalHandler(Protocol):
    def can_serve(self, ctx: RequestContext) -> bool:
        """True when the cache can answer this request while the cloud is away."""

    def takes_write(self, ctx: RequestContext) -> bool:
        """True for a write the cache applies while the cloud is away (body at hand)."""

    def serves_kubelet_lease(self, ctx: RequestContext) -> bool:
        """True for kubelet's own Lease requests once the hub holds the Lease (edge mode)."""

    def handle(self, ctx: RequestContext, why: str) -> Response:
        """Answer from the cache; raises ApiError subclasses for what it cannot answer."""


class SharedLists(Protocol):
    """The multiplexer (proxy/mux.py): lists and watches of pool-scoped resources."""

    def takes(self, ctx: RequestContext) -> Any:
        """What answers this request (None: it goes the usual way)."""

    def handle(self, ctx: RequestContext, shared: Any) -> Response | None:
        """Answer from the shared state (None: the usual way after all); raises ApiError
        subclasses."""


class CloudState(Protocol):
    def cloud_healthy(self) -> bool:
        """True while at least one server is healthy (or no health checking is done)."""


class ProxyApp:
    """WSGI app of port 10261."""

    def __init__(self, remote: RemoteProxy, local: LocalHandler | None,
                 cloud: CloudState, guard: AccessGuard, recorder: Recorder | None = None,
                 mux: SharedLists | None = None, tokens: KeptTokens | None = None) -> None:
        self.remote = remote
        self.local = local
        self.cloud = cloud
        self.guard = guard
        self.recorder = recorder or Recorder()
        self.mux = mux
        # kubelet's ServiceAccount tokens: the cloud's answers kept for an outage
        self.tokens = tokens

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # Every request, from the cloud, the cache or the shared lists, until its body is
        # closed: offline, the watches the cache serves are as much in flight as any.
        in_flight = self.remote.metrics.in_flight
        in_flight.inc()
        try:
            body = self._serve(environ, start_response)
        except BaseException:
            in_flight.dec()
            raise
        return _OnClose(body, in_flight.dec)

    def _serve(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        ctx: RequestContext | None = None
        claimed = False
        try:
            ctx = build_context(request, self.guard.caller)
            environ[ENV_LONG_RUNNING] = ctx.long_running  # else request_timeout bounds it
            self.guard.admit(ctx.caller, ctx.info)
            # Offline and shared watches, and upgraded sessions (exec, port-forward), hold a
            # thread as remote watches do: one bound for all, its slot claimed here.
            claimed = self.remote.check_room(ctx)
            response = self.route(ctx)
        except ApiError as e:
            if e.code in _REFUSALS:
                target = environ.get("RAW_URI") or request.full_path.rstrip("?")
                self.recorder.record(REFUSAL, ctx.component if ctx else "",
                                     f"{request.method} {target}", str(e), e.code)
            self._count(ctx, e.code)
            response = status_response(e)
        except Exception:
            # The raw (still percent-encoded) target: a decoded one could carry a line break.
            target = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
            response = internal_error(f"serving {request.method} {target!r}")
            self._count(ctx, response.status_code)
        body = response(environ, start_response)
        if claimed and ctx is not None and ctx.client_socket is not None:
            streams, sock = self.remote.streams, ctx.client_socket
            return _OnClose(body, lambda: streams.unclaim(sock))
        return body

    def _count(self, ctx: RequestContext | None, code: int) -> None:
        """An error answer in yurthub_requests_total: the cache's under "cache", any other
        the hub made itself (a refusal, no cloud and no cache, a bug) under "hub"; an answer
        the cloud sent was counted where it arrived."""
        if ctx is not None and ctx.counted == "remote":
            return
        source = "cache" if ctx is not None and ctx.counted == "cache" else "hub"
        self.remote.metrics.requests.labels(ctx.agent if ctx else "unknown",
                                            ctx.info.verb if ctx else OTHER, source,
                                            str(code)).inc()

    def route(self, ctx: RequestContext) -> Answer:
        if self.mux is not None:
            # Online and offline alike: the shared state answers, wherever it was fed from.
            shared = self.mux.takes(ctx)
            if shared is not None:
                answer = self.mux.handle(ctx, shared)
                if answer is not None:
                    return answer
        local = self.local
        if local is not None:
            if local.serves_kubelet_lease(ctx):
                return local.handle(ctx, "kubelet's lease is renewed by the hub")
            if not self.cloud.cloud_healthy():
                return self._local(local, ctx, "cloud unhealthy")
        token = ctx.info.continue_token
        if token and ctx.info.verb == "list" and is_local_continue(token):
            # A page the cache began while the cloud was away: the cloud cannot read the
            # token (400).  410 makes client-go's pager and kubectl list again from the start.
            raise Gone(CONTINUE_EXPIRED)
        try:
            remote = self.remote.handle(ctx)
            if self.tokens is not None and self.tokens.applies(ctx):
                remote = self.tokens.kept_answer(ctx, remote)
            return remote
        except IdentityUnavailable as e:
            # The hub has no certificate to act with (bootstrapping, or expired): the cache
            # answers what it can; anything else waits for the identity.
            if local is not None and local.can_serve(ctx):
                try:
                    return self._local(local, ctx, str(e))
                except ApiError:
                    pass  # the cache cannot answer it: say what the hub is waiting for
            raise ServiceUnavailable(f"yurthub has no identity towards the cloud yet: {e}",
                                     details={"retryAfterSeconds": 5}) from e
        except UpstreamUnavailable as e:
            # Nothing reached the cloud: answer as the next moment will, once the health
            # checker has seen it go (reads from the cache, the node's own writes applied).
            if local is not None and (local.can_serve(ctx) or local.takes_write(ctx)):
                return self._local(local, ctx, f"cloud unreachable: {e}")
            raise ServiceUnavailable(f"the cloud apiserver is unreachable: {e}",
                                     details={"retryAfterSeconds": 1}) from e
        except UpstreamBroken as e:
            if local is not None and ctx.info.verb in ("get", "list") and local.can_serve(ctx):
                return self._local(local, ctx, f"connection to the cloud broke: {e}")
            raise BadGateway(f"the connection to the cloud apiserver broke before its answer "
                             f"arrived: {e}", details={"retryAfterSeconds": 1}) from e

    def _local(self, local: LocalHandler, ctx: RequestContext, why: str) -> Answer:
        """Answer from the cache instead of the cloud, only what the cloud was seen to allow
        this caller, and say so on the status page (a refusal is recorded by ``__call__``)."""
        self.guard.check_offline(ctx.caller, ctx.info)
        response = local.handle(ctx, why)
        self.recorder.record(FALLBACK, ctx.component, f"{ctx.method} {ctx.path_qs}", why,
                             response.status_code)
        return response


class _OnClose:
    """A body whose server ``close`` also runs ``then``, once: a request in flight is
    counted until then; a watch slot claimed is given back then, when no stream took it
    over (a refusal, an error, a short answer)."""

    __slots__ = ("_body", "_then")

    def __init__(self, body: Iterable[bytes], then: Callable[[], None]) -> None:
        self._body = body
        self._then: Callable[[], None] | None = then

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            then, self._then = self._then, None
            if then is not None:
                then()
