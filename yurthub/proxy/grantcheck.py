"""Online, a bearer token's grant is confirmed with the cloud before an answer that does not
come from it (the multiplexer's shared state) relies on it.

The token memory (access/memory.py) says which access keys the cloud once allowed a token;
until the token expires (24 h, or a year for some ServiceAccount tokens) that is all the
shared state asks.  A deleted pod's token, or a removed RoleBinding, would keep reading.  So
while the cloud answers, a grant last confirmed more than ``token_recheck_interval`` seconds
ago is asked again: a ``limit=1`` list of the same collection (namespace, or all of them,
and the client's selectors) with the client's own token and User-Agent, which the
apiserver authenticates and authorizes as it would the client's request, and answers from
etcd with one object at most.  Its 200 renews the grant; its 401 or 403 drops it
(``AccessGuard.record``) and is the client's answer, as the cloud wrote it.  Any other
answer, or none, leaves the grant as it is (the memory decides, as offline), and is not
asked again before ``RETRY_AFTER``.

One check per token and key at a time (the others wait for it) and per interval, never one
per request.  Offline nothing is asked: the memory decides.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode

from cachetools import LRUCache
from werkzeug.wrappers import Response

from yurthub import upstream as up
from yurthub.access.guard import AccessGuard
from yurthub.access.keys import access_key, forbidden_message
from yurthub.errors import Forbidden, Unauthorized, YurthubError
from yurthub.proxy.context import RequestContext
from yurthub.proxy.responses import status_response

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 10.0
CHECK_BYTES = 64 * 1024     # a refusal's Status, or a list of one object
RETRY_AFTER = 30.0          # a check the cloud did not answer is not sent again before this
_KEPT = 4096                # checks in flight or recently failed that are remembered


class GrantCheck:
    """``confirm(ctx)`` before the shared state answers a request that carries a token."""

    def __init__(self, guard: AccessGuard, upstream: Any, interval: float) -> None:
        self.guard = guard
        self.upstream = upstream
        self.interval = interval
        self._lock = threading.Lock()
        self._busy: LRUCache[tuple[str, str, Any], threading.Lock] = LRUCache(_KEPT)
        self._failed: LRUCache[tuple[str, str, Any], float] = LRUCache(_KEPT)
        self.sent = 0   # checks sent, for tests and logs

    def confirm(self, ctx: RequestContext) -> Response | bool:
        """True when the shared state may answer (the grant is recent or was just confirmed,
        or the cloud could not say); False when the request must go the usual way (its
        grant was dropped meanwhile); else the cloud's refusal, for the client."""
        caller = ctx.caller
        auth = caller.authorization
        if not auth:
            return True   # the hub's own identity: its grants are the node's
        key = access_key(ctx.info)
        memory = self.guard.memory
        confirmed = memory.confirmed_at(auth, caller.component, key)
        if confirmed is None:
            return False
        if not self._due(confirmed):
            return True
        ident = (auth, caller.component, key)
        with self._lock:
            busy = self._busy.get(ident)
            if busy is None:
                busy = self._busy[ident] = threading.Lock()
        with busy:   # one check at a time per token and key: the others wait for its answer
            confirmed = memory.confirmed_at(auth, caller.component, key)
            if confirmed is None:
                return False   # dropped by the check this request waited for
            if not self._due(confirmed):
                return True
            with self._lock:
                failed = self._failed.get(ident)
            if failed is not None and time.monotonic() - failed < RETRY_AFTER:
                return True
            return self._check(ctx, ident)

    def _due(self, confirmed: float) -> bool:
        # The memory's times are wall-clock (a token's exp is): a grant confirmed "in the
        # future" was confirmed before the clock was set back, by an unknown amount.
        elapsed = self.guard.memory.clock() - confirmed
        return elapsed >= self.interval or elapsed < 0

    def _check(self, ctx: RequestContext, ident: tuple[str, str, Any]) -> Response | bool:
        servers = self.upstream.candidates()
        if not servers:
            return True   # offline: the memory decides
        info = ctx.info
        prefix = f"/apis/{info.api_group}/{info.api_version}" if info.api_group \
            else f"/api/{info.api_version}"
        # The client's selectors too: an authorizer may allow a list only with them
        # (kube-apiserver's AuthorizeWithSelectors).
        query = {"labelSelector": info.label_selector, "fieldSelector": info.field_selector}
        path = prefix + (f"/namespaces/{quote(info.namespace, safe='')}" if info.namespace
                         else "") + f"/{info.resource}?" + urlencode(
            {"limit": "1", **{k: v for k, v in query.items() if v}})
        headers = {"Accept": "application/json", "Authorization": ctx.caller.authorization,
                   "User-Agent": ctx.header("User-Agent") or "yurthub-grant-check"}
        self.sent += 1
        try:
            resp = self.upstream.send(servers[0], "GET", path, headers, None,
                                      read_timeout=CHECK_TIMEOUT)
        except YurthubError as e:
            log.debug("grant check of %s %s: %s", info.verb, info.resource, e)
            return self._failed_now(ident)
        try:
            data = up.read_small(resp, CHECK_BYTES)
        except YurthubError as e:
            log.debug("grant check of %s %s: %s", info.verb, info.resource, e)
            return self._failed_now(ident)
        status = resp.status
        # A list the cloud answered with its verdict on the client's token: the guard
        # renews (2xx) or drops (401, 403) the grant as for any answer it proxies.
        self.guard.record(ctx.caller, info, status)
        if status in (401, 403):
            log.info("grant check: the cloud refused %s %s to a token it once allowed (%d); "
                     "the shared state no longer answers it", info.verb, info.resource, status)
            if data is None:   # (no Status is that long: say it in the cloud's words)
                return status_response(Unauthorized("Unauthorized") if status == 401 else
                                       Forbidden(forbidden_message(info, "this token")))
            return Response(data, status=status, content_type=resp.headers.get(
                "Content-Type", "application/json"))
        if 200 <= status < 300:
            return True
        return self._failed_now(ident)

    def _failed_now(self, ident: tuple[str, str, Any]) -> bool:
        """The cloud did not say: the memory decides, and the check waits a while."""
        with self._lock:
            self._failed[ident] = time.monotonic()
        return True


__all__ = ["GrantCheck"]
