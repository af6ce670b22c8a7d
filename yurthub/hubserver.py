"""The hub's own server on port 10267: health, readiness, metrics, the status page and purge.

``/v1/healthz``, ``/v1/readyz`` and ``/metrics`` answer anyone the port is reachable from.
``/status`` (HTML), ``/v1/status`` (the same document as JSON) and ``POST /v1/cache/purge``
say what the node holds and change it: they answer loopback clients only, whatever
``bind_address`` is, and refuse others with a 403 that says so.  The purge also needs the
admin token the hub keeps in its cache tree (storage/admintoken.py), so a
web page a browser on the node loads cannot ask for it.

``POST`` (or ``PUT``) ``/v1/token`` with ``{"jointoken": "<id>.<secret>"}`` gives the hub a
new bootstrap token, as YurtHub's does: used when its certificate expired while the old
token expired too.  Only loopback clients of root or the hub's own user may (the kernel names
the connection's owner): the join token is the node's credential, which YurtHub takes from
any local process.  The token is checked against cluster-info (JWS and CA pin) before it is
stored; it never reaches a log or an answer.  One is checked at a time (a second gets a 429
meanwhile): the check asks the cloud, which may take its full timeout when the cloud is
away, and the port's few threads must stay free for healthz.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from yurthub.connection import connection_of
from yurthub.errors import ConfigError, UpstreamUnavailable, YurthubError
from yurthub.metrics import CONTENT_TYPE_LATEST, Metrics
from yurthub.statuspage import render

log = logging.getLogger(__name__)

# Every readiness check in order: (name, None when it passes, else why the hub cannot serve).
ReadinessCheck = Callable[[], "list[tuple[str, str | None]]"]
StatusSource = Callable[[], dict[str, Any]]
# (component, collection directory) pairs -> objects removed; raises on failure
Purger = Callable[[list[tuple[str, str]]], int]

PURGE_PATH = "/v1/cache/purge"
_MAX_PURGE_BODY = 1 << 20
# Takes a new join token; raises YurthubError (ConfigError: the token was refused).
TokenUpdate = Callable[[str], None]
MAX_TOKEN_BODY = 4096


class HubServer:
    """A tiny WSGI app; everything else on this port is 404."""

    def __init__(self, metrics: Metrics, readiness: ReadinessCheck,
                 status: StatusSource | None = None, purge: Purger | None = None,
                 cache_root: str = "", admin_token: Callable[[], str] = lambda: "",
                 update_token: TokenUpdate | None = None) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.status = status
        self.purge = purge
        self.cache_root = os.path.realpath(cache_root) if cache_root else ""
        self.admin_token = admin_token
        self.update_token = update_token
        self._token_busy = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path == PURGE_PATH:
            return self._purge(request)
        if path == "/v1/token":
            return self.token(request)
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed\n", status=405, mimetype="text/plain",
                            headers=[("Allow", "GET, HEAD")])
        if path == "/v1/healthz":
            return Response("OK", mimetype="text/plain")
        if path == "/v1/readyz":
            return readyz(self.readiness(), "verbose" in request.args)
        if path == "/metrics":
            return Response(self.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
        if path in ("/status", "/v1/status") and self.status is not None:
            refused = _not_loopback(request)
            if refused is not None:
                return refused
            doc = self.status()
            headers = [("Cache-Control", "no-store")]
            if path == "/v1/status":
                return Response(json.dumps(doc, indent=1) + "\n", mimetype="application/json",
                                headers=headers)
            refresh = _refresh(request.args.get("refresh", ""))
            return Response(render(doc, refresh), mimetype="text/html", headers=[
                *headers, ("Content-Security-Policy",
                           "default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
                ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY")])
        return Response("not found\n", status=404, mimetype="text/plain")

    def _purge(self, request: Request) -> Response:
        if self.purge is None:
            return Response("not found\n", status=404, mimetype="text/plain")
        if request.method != "POST":
            return Response("method not allowed\n", status=405, mimetype="text/plain",
                            headers=[("Allow", "POST")])
        refused = _not_loopback(request)
        if refused is not None:
            return refused
        token = self.admin_token()
        if not token:
            return _text(503, "the hub has not been able to write its admin token in the "
                         "cache tree (is the disk full?); it tries again every second: retry "
                         "once there is room")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _text(401, "a purge needs the admin token in the cache tree (run yurthub "
                         "cache purge as the hub's user or root)")
        if (request.content_length or 0) > _MAX_PURGE_BODY:
            return _text(413, "request body too large")
        try:
            doc = json.loads(request.get_data(cache=False))
            root = doc["cacheRoot"]
            pairs = [(str(c), str(d)) for c, d in doc["collections"]]
        except (ValueError, KeyError, TypeError) as e:
            return _text(400, f"bad purge request: {e}")
        if os.path.realpath(str(root)) != self.cache_root:
            return _text(409, f"this hub's cache is {self.cache_root}, not {root}")
        try:
            removed = self.purge(pairs)
        except (YurthubError, TimeoutError) as e:
            return _text(500, f"purge failed: {e}")
        return Response(json.dumps({"objects": removed, "collections": len(pairs)}) + "\n",
                        mimetype="application/json")


    def token(self, request: Request) -> Response:
        if request.method not in ("POST", "PUT"):
            return Response("method not allowed\n", status=405, mimetype="text/plain",
                            headers=[("Allow", "POST, PUT")])
        if self.update_token is None:
            return Response("this hub takes no join token\n", status=404, mimetype="text/plain")
        refused = _not_loopback(request) or _not_admin(request)
        if refused is not None:
            return refused
        raw = request.stream.read(MAX_TOKEN_BODY + 1)
        try:
            body = json.loads(raw) if len(raw) <= MAX_TOKEN_BODY else None
        except ValueError:
            body = None
        token = body.get("jointoken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return Response('could not decode tokens: send {"jointoken": "<id>.<secret>"}\n',
                            status=400, mimetype="text/plain")
        if not self._token_busy.acquire(blocking=False):
            return Response("another join token is being checked; retry later\n", status=429,
                            mimetype="text/plain", headers=[("Retry-After", "5")])
        try:
            self.update_token(token)
        except ConfigError as e:
            log.warning("POST /v1/token: refused: %s", e)
            return Response(f"join token refused: {e}\n", status=400, mimetype="text/plain")
        except UpstreamUnavailable as e:
            return Response(f"cannot check the join token now: {e}\n", status=503,
                            mimetype="text/plain")
        except YurthubError as e:
            return Response(f"could not update bootstrap token: {e}\n", status=500,
                            mimetype="text/plain")
        finally:
            self._token_busy.release()
        log.info("POST /v1/token: a new join token was verified and stored")
        return Response("update bootstrap token successfully\n", mimetype="text/plain")


def readyz(checks: list[tuple[str, str | None]], verbose: bool) -> Response:
    """200 ``OK`` when every check passes; else 503 whose first line names the first failing
    reason (what probes and scripts read), then every check as kube-apiserver lists them
    (``[+]name ok``, ``[-]name failed: why``), so no reason hides behind another.
    ``?verbose`` lists them on a 200 too, as kube-apiserver's ``/readyz?verbose``."""
    failing = [why for _, why in checks if why is not None]
    if not failing and not verbose:
        return Response("OK", mimetype="text/plain")
    lines = [f"not ready: {failing[0]}"] if failing else []
    lines += [f"[+]{name} ok" if why is None else f"[-]{name} failed: {why}"
              for name, why in checks]
    lines.append("readyz check failed" if failing else "readyz check passed")
    return Response("\n".join(lines) + "\n", status=503 if failing else 200,
                    mimetype="text/plain")


def _not_loopback(request: Request) -> Response | None:
    addr = (request.remote_addr or "").split("%")[0]
    try:
        ip = ipaddress.ip_address(addr)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return None
    except ValueError:
        pass
    return _text(403, f"{request.path} is served only to clients on this node's loopback "
                 f"interface (127.0.0.1 or ::1), not to {addr or 'an unknown address'}")


def _not_admin(request: Request) -> Response | None:
    """None when the client may replace the node's join token: root or the hub's own user
    (who can write the token's file anyway), as the kernel names the connection's owner;
    anyone when owners are not checked (``peer_lookup = off``, or not yurthub's worker)."""
    conn = connection_of(request.environ)
    if conn is None or not conn.identified or conn.uid in (0, os.geteuid()):
        return None
    who = "an unknown user" if conn.uid is None else f"user {conn.uid}"
    return _text(403, f"{request.path}: only root or the hub's own user may give the hub a "
                 f"join token, not {who}")


def _refresh(value: str) -> int:
    """Auto-refresh seconds from ``?refresh=N`` (off by default; 2..3600)."""
    try:
        n = int(value)
    except ValueError:
        return 0
    return min(max(n, 2), 3600) if n > 0 else 0


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")
