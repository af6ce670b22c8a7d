"""Connections to the cloud kube-apiservers: urllib3 pools, TLS, timeouts, server selection.

design: one pair of connection pools per server — one presenting the hub's client
certificate, one without it for requests that carry their own ``Authorization`` (the
caller's token is forwarded as-is, as YurtHub does).  When the hub's certificate rotates
(the credential source's ``generation`` changes), new pools are built with the new TLS
context and the old ones retired: requests already on them (open watches) finish there, new
ones take the new certificate, and a retired pool is closed a minute later, by which time no
thread can still be about to use it.  Pools never block (``block=False``):
every open watch holds one connection for its whole life.  Only connect errors are retried
(the request never left); a streamed body is never retried.  The read timeout is an idle
timeout, so watches get ``timeoutSeconds + 30 s`` and TCP keepalive catches dead links.
Works on urllib3 1.26 (Debian 12) and 2.x.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from yurthub import chunkedbody, cloudproxy
from yurthub.cloudconn import awaiting_body, cut_waiting, describe_error, final_answers, was_cut
from yurthub.config import Config
from yurthub.credentials import CredentialSource
from yurthub.errors import IdentityUnavailable, UpstreamBroken, UpstreamError, UpstreamUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
REQUEST_READ_TIMEOUT = 60.0
WATCH_TIMEOUT_SLACK = 30.0
# Reads of up to 1 MiB: a big list costs a quarter of the iterations (recv, send to the
# client, tee) that 256 KiB did, and a read never waits for more than has arrived.
STREAM_CHUNK = 1 << 18  # held per request until sent: 256 KiB keeps many slow readers cheap
JOIN_BELOW = 64 << 10  # TLS bodies longer than this are read from the socket directly
LEGACY_CHUNK = 64 * 1024

_KEEPALIVE = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
if hasattr(socket, "TCP_KEEPIDLE"):
    _KEEPALIVE += [(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
                   (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
                   (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)]
# Extend urllib3's defaults so TCP_NODELAY stays on.
SOCKET_OPTIONS = list(HTTPConnection.default_socket_options) + _KEEPALIVE

# Retry only what never reached the server.
# urllib3 1.26's HTTPResponse or 2.x's BaseHTTPResponse: the same API for what we use.
UpstreamResponse = Any

_RETRY = Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0,
               raise_on_redirect=False, raise_on_status=False, backoff_factor=0.1)
RETIRED_POOL_GRACE = 60.0  # seconds a replaced pool stays open for the threads that hold it


@dataclass
class Server:
    """One ``--server-addr`` entry and whether the health checker currently trusts it."""

    url: str
    healthy: bool = True
    host: str = field(init=False)
    # What the health checker last saw (wall times; 0 = never): for the status page.
    last_probe: float = field(default=0.0, init=False)
    last_error: str = field(default="", init=False)   # "" when the last probe succeeded
    since: float = field(default=0.0, init=False)     # when ``healthy`` last changed

    def __post_init__(self) -> None:
        self.host = urlsplit(self.url).netloc


class Upstream:
    """The cloud: pick a healthy server, send a request, stream the response back."""

    def __init__(self, cfg: Config, creds: CredentialSource) -> None:
        self._creds = creds
        self._lb_mode = cfg.lb_mode
        self.servers = [Server(url) for url in creds.servers]
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, bool], urllib3.HTTPConnectionPool] = {}
        self._generation = creds.generation
        self._retired: list[tuple[float, urllib3.HTTPConnectionPool]] = []
        self._maxsize = cfg.threads
        self._own_timeout = float(cfg.heartbeat_timeout_seconds)

    # -- server selection -------------------------------------------------------------------

    def healthy_servers(self) -> list[Server]:
        return [s for s in self.servers if s.healthy]

    def any_healthy(self) -> bool:
        return any(s.healthy for s in self.servers)

    def candidates(self) -> list[Server]:
        """Healthy servers in the order to try them: rotated (rr) or in flag order (priority)."""
        healthy = self.healthy_servers()
        if not healthy or self._lb_mode == "priority":
            return healthy
        start = next(self._rr) % len(healthy)
        return healthy[start:] + healthy[:start]

    def token(self) -> str:
        """The hub's own bearer token (empty when it authenticates by certificate only)."""
        return self._creds.bearer_token()

    def insecure_servers(self) -> list[tuple[str, str]]:
        """(server, why) for every server reached without a verified TLS connection: ``http``
        (plain HTTP) or ``insecure-skip-tls-verify`` (its certificate is not checked)."""
        out = []
        for s in self.servers:
            if s.url.startswith("http://"):
                out.append((s.url, "http"))
            elif self._creds.insecure:
                out.append((s.url, "insecure-skip-tls-verify"))
        return out

    def identity_problem(self) -> str | None:
        """None while the hub can act as itself upstream, else why not."""
        return self._creds.identity_problem()

    # -- requests ---------------------------------------------------------------------------

    def pool(self, server: Server, identity: bool) -> urllib3.HTTPConnectionPool:
        """The pool for ``server``; ``identity`` presents the hub's client certificate."""
        key = (server.url, identity)
        if self._creds.generation != self._generation:
            self._rotate()
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._new_pool(server.url, identity)
                    self._pools[key] = pool
        return pool

    def _rotate(self) -> None:
        """New credentials: retire every pool (new ones get the new TLS context)."""
        now = time.monotonic()
        with self._lock:
            generation = self._creds.generation
            if generation == self._generation:
                return
            self._generation = generation
            self._retired += [(now, p) for p in self._pools.values()]
            self._pools = {}
            expired = [p for t, p in self._retired if now - t > RETIRED_POOL_GRACE]
            self._retired = [(t, p) for t, p in self._retired if now - t <= RETIRED_POOL_GRACE]
        for p in expired:
            p.close()  # idle connections only: those in use close when released
        log.info("new hub credentials: new upstream connections use them (open ones finish)")

    def _new_pool(self, url: str, identity: bool) -> urllib3.HTTPConnectionPool:
        kw: dict[str, Any] = {"maxsize": self._maxsize, "block": False,
                              "socket_options": SOCKET_OPTIONS, "retries": _RETRY}
        if url.startswith("https://"):
            kw["ssl_context"] = self._creds.ssl_context(identity)
            if self._creds.insecure:
                kw["cert_reqs"] = "CERT_NONE"
                kw["assert_hostname"] = False
            else:
                kw["cert_reqs"] = "CERT_REQUIRED"
        return final_answers(cloudproxy.connection_from_url(url, **kw))

    def send(self, server: Server, method: str, path_qs: str, headers: Mapping[str, str],
             body: bytes | Iterable[bytes] | None, *, read_timeout: float | None,
             ) -> UpstreamResponse:
        """Send one request to ``server`` and return the response with its body unread.

        The client's own ``Authorization`` goes through untouched; otherwise the hub's
        credentials are used.  Raises IdentityUnavailable when the hub has no identity to
        lend yet, UpstreamUnavailable when no connection could be made (the request never
        left: safe to answer from the cache or try another server) and UpstreamBroken for any
        other transport failure before the response headers (the request may have arrived: a
        read may be answered from the cache, a write may not be sent again).
        """
        out = dict(headers)
        identity = "authorization" not in {k.lower() for k in out}
        if identity:
            problem = self._creds.identity_problem()
            if problem is not None:
                raise IdentityUnavailable(problem)
            token = self._creds.bearer_token()
            if token:
                out["Authorization"] = "Bearer " + token
        timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout)
        chunked = body is not None and not isinstance(body, bytes)
        try:
            resp = self.pool(server, identity).urlopen(
                method, path_qs, body=body, headers=out, redirect=False,
                assert_same_host=False, timeout=timeout, preload_content=False,
                decode_content=False, release_conn=False, chunked=chunked,
                # A body shorter than its Content-Length is an error, not an end
                # (urllib3 1.26 does not check this by default).
                enforce_content_length=True)
        except MaxRetryError as e:
            reason: BaseException = e.reason or e
            if was_cut(e) and method in ("GET", "HEAD") and body is None:
                # No answer will come from a server declared gone: a read may go elsewhere.
                raise UpstreamUnavailable(f"{server.host}: declared gone while the request "
                                          "waited for its answer") from e
            # ProxyError: the proxy was not reached or refused the CONNECT; nothing left.
            if isinstance(reason, (NewConnectionError, ConnectTimeoutError, SSLError,
                                   ProxyError)):
                raise UpstreamUnavailable(f"{server.host}: {explain(reason)}") from e
            raise UpstreamBroken(f"{server.host}: {explain(reason)}") from e
        except (NewConnectionError, ConnectTimeoutError, ProxyError) as e:
            raise UpstreamUnavailable(f"{server.host}: {explain(e)}") from e
        except (ProtocolError, ReadTimeoutError, HTTPError, OSError) as e:
            raise UpstreamBroken(f"{server.host}: {explain(e)}") from e
        return resp

    @staticmethod
    def cut_waiting(server: Server) -> int:
        """Cut the requests still waiting for ``server``'s answer (it was declared gone)."""
        parts = urlsplit(server.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cut_waiting(parts.hostname or "", port)

    def connect(self, server: Server, identity: bool) -> tuple[socket.socket, str]:
        """A new connection of its own to ``server`` (TLS as the pool's, verified the same
        way) for an upgraded session, and the hub's bearer token to send ("" with none or
        when the client brings its own).  Raises IdentityUnavailable or
        UpstreamUnavailable."""
        token = ""
        if identity:
            problem = self._creds.identity_problem()
            if problem is not None:
                raise IdentityUnavailable(problem)
            token = self._creds.bearer_token()
        pool = self.pool(server, identity)
        conn = pool._new_conn()
        conn.timeout = CONNECT_TIMEOUT
        try:
            cloudproxy.open_tunnel(pool, conn)
        except (HTTPError, OSError) as e:
            conn.close()
            raise UpstreamUnavailable(f"{server.host}: {explain(e)}") from e
        sock = getattr(conn, "sock", None)
        if not isinstance(sock, socket.socket):
            conn.close()
            raise UpstreamUnavailable(f"{server.host}: no socket for an upgraded connection")
        return sock, token

    def own_request(self, server: Server, method: str, path: str, body: Any = None, *,
                    agent: str, content_type: str = "application/json",
                    timeout: float) -> tuple[int, bytes]:
        """One small JSON request of the hub's own (health probes, the Lease, the node's
        condition), with its identity; returns the status and the whole body.  Transport
        failures raise urllib3's HTTPError or OSError for the caller to judge."""
        headers = {"Accept": "application/json", "User-Agent": agent}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        token = self.token()
        if token:
            headers["Authorization"] = "Bearer " + token
        resp = self.pool(server, identity=True).urlopen(
            method, path, body=data, headers=headers, retries=False, redirect=False,
            timeout=urllib3.Timeout(total=timeout), assert_same_host=False)
        return resp.status, resp.data

    def discovery(self, group: str, version: str) -> bytes | None:
        """The cloud's discovery of ``/apis/<group>/<version>``, asked with the hub's own
        identity (cache.scopes: the scope of a custom resource no request showed); None
        when no healthy server answered it 200."""
        servers = self.candidates()
        if not servers:
            return None
        path = f"/apis/{quote(group, safe='')}/{quote(version, safe='')}"
        try:
            status, body = self.own_request(servers[0], "GET", path, agent="yurthub/discovery",
                                            timeout=self._own_timeout)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            log.info("GET %s (to learn a resource's scope): %s", path, e)
            return None
        if status != 200:
            log.info("GET %s (to learn a resource's scope): HTTP %d", path, status)
            return None
        return body

    def close(self) -> None:
        with self._lock:
            for pool in [*self._pools.values(), *(p for _, p in self._retired)]:
                pool.close()
            self._pools.clear()
            self._retired.clear()


def explain(e: BaseException) -> str:
    """What failed in a request to the cloud, in words (the caller names the server)."""
    if isinstance(e, MaxRetryError) and e.reason is not None:
        e = e.reason
    if isinstance(e, (NewConnectionError, ConnectTimeoutError)):
        return f"cannot connect: {describe_error(e)}"
    if isinstance(e, SSLError):
        return f"TLS failed: {describe_error(e)}"
    return describe_error(e)


def read_timeout_for(watch: bool, timeout_seconds: int | None, follow: bool = False
                     ) -> float | None:
    """Idle timeout of a request: watches live as long as they asked for, plus slack."""
    if watch:
        # timeoutSeconds=0 is unset to kube-apiserver (minRequestTimeout * [1, 2)), and a
        # negative one ends the watch at once: neither bounds how long it may stay idle.
        if timeout_seconds is None or timeout_seconds <= 0:
            return None
        return timeout_seconds + WATCH_TIMEOUT_SLACK
    if follow:
        return None
    return REQUEST_READ_TIMEOUT


def stream(resp: UpstreamResponse, *, coalesce: bool = False, cut_first: bool = False
           ) -> Iterator[bytes]:
    """The body as it arrives, compressed or not, never waiting to fill a buffer.

    Chunked bodies come one item per upstream chunk (a watch's events), or with
    ``coalesce`` (a list: the chunks' boundaries mean nothing) read from the socket
    directly, the chunks that have arrived as one piece (``chunkedbody``).  Bodies with a
    length come in pieces of up to STREAM_CHUNK, whatever has arrived: over TLS read from
    the socket directly (``_direct``), otherwise through urllib3 2's ``read1`` or, on
    urllib3 1.26 (whose ``read`` waits for the whole amount), http.client's.
    With ``cut_first`` (a get's or a list's, never a watch's), the wait for the first byte
    ends when the server is declared gone (``cut_waiting``), as the wait for the head does.
    Raises UpstreamError when the connection breaks before the body ended.
    """
    try:
        pieces = _pieces(resp, coalesce)
        if cut_first:
            with awaiting_body(getattr(resp, "_connection", None)):
                first = next(pieces, b"")
            if not first:
                return
            yield first
        yield from pieces
    except (ProtocolError, ReadTimeoutError, HTTPError, OSError, ValueError) as e:
        # ValueError: reading from a (TLS) socket that another thread shut down.
        raise UpstreamError(f"response broken: {describe_error(e)}") from e


def _pieces(resp: UpstreamResponse, coalesce: bool) -> Iterator[bytes]:
    chunked = bool(getattr(resp, "chunked", False))
    read1 = getattr(resp, "read1", None)
    direct = (_direct_chunked(resp) if coalesce else None) if chunked else _direct(resp)
    if direct is not None:
        yield from direct
    elif chunked:
        for chunk in resp.stream(STREAM_CHUNK, decode_content=False):
            if chunk:
                yield chunk
    elif read1 is not None:
        yield from iter(lambda: read1(STREAM_CHUNK, decode_content=False), b"")
    else:
        yield from _legacy_read1(resp)


def _legacy_read1(resp: UpstreamResponse) -> Iterator[bytes]:
    """urllib3 1.26: read what has arrived through http.client's own ``read1``.

    urllib3 1.26's ``read(amt)`` waits for ``amt`` bytes, so a big body would stream in
    64 KiB steps and a stalled one would hold back what already arrived.  http.client's
    response (``_fp``) has ``read1`` and keeps its own count of the Content-Length; at the
    end it is closed so the connection can go back to the pool.
    """
    fp: Any = getattr(resp, "_fp", None)
    raw_read1 = getattr(fp, "read1", None)
    if fp is None or raw_read1 is None:
        for chunk in resp.stream(LEGACY_CHUNK, decode_content=False):
            if chunk:
                yield chunk
        return
    yield from iter(lambda: raw_read1(STREAM_CHUNK), b"")
    if getattr(fp, "length", None):  # bytes still announced: the body was cut short
        raise ProtocolError(f"body ended {fp.length} bytes short of its Content-Length")
    fp.close()


def _direct_chunked(resp: UpstreamResponse) -> Iterator[bytes] | None:
    """A reader of a chunked body straight from the socket (``chunkedbody``), or None
    where that does not apply (no socket, already partly read, an answer without a body:
    to HEAD, 1xx, 204, 304)."""
    fp: Any = getattr(resp, "_fp", None)  # http.client's response (urllib3 1.26 and 2.x)
    sock = _sock_of(resp)
    started = getattr(resp, "_fp_bytes_read", 0) or getattr(fp, "chunk_left", 0) is not None
    if sock is None or not getattr(fp, "chunked", False) or fp.fp is None or started:
        return None
    if getattr(fp, "_method", "") == "HEAD" or fp.length == 0 or resp.status in (204, 304) \
            or resp.status < 200:
        return None
    return chunkedbody.read_chunked(resp, fp, sock)


def _direct(resp: UpstreamResponse) -> Iterator[bytes] | None:
    """A reader of a TLS body with a length straight from the socket, or None where that
    does not apply (plain TCP, no length, small, already partly read).

    Through urllib3 and http.client every 16 KiB TLS record costs a stack of Python calls
    (a 48 MB list: 3,000 of them, most of the hub's CPU over TLS).  Once http.client has
    parsed the headers, the body is the next ``length`` bytes of the connection: the bytes
    its buffered reader already holds, then the socket's.  Records are decrypted straight
    into one reused buffer, as many as have arrived (the socket is non-blocking meanwhile;
    waits use its own timeout), and each piece is handed on as a new ``bytes``.
    http.client's ``length`` is kept current; at the end its response is closed, so
    urllib3 puts the connection back into the pool as after any read.
    """
    fp: Any = getattr(resp, "_fp", None)  # http.client's response (urllib3 1.26 and 2.x)
    left = getattr(fp, "length", None)
    sock = _sock_of(resp)
    if (not isinstance(sock, ssl.SSLSocket) or not isinstance(left, int)
            or left <= JOIN_BELOW or getattr(fp, "chunked", True)
            or getattr(fp, "fp", None) is None or getattr(resp, "_fp_bytes_read", 0)):
        return None
    return chunkedbody.read_length(resp, fp, sock, left)


def interrupt(resp: UpstreamResponse) -> None:
    """Wake a thread blocked reading ``resp`` (from any thread): its read ends at once."""
    shutdown = getattr(resp, "shutdown", None)
    if shutdown is not None:  # urllib3 >= 2.3
        try:
            shutdown()
        except (OSError, ValueError, RuntimeError):
            # why: the body already ended (RuntimeError: its connection is back in the
            # pool; ValueError: it has no socket any more): there is nothing to wake
            pass
        return
    sock = _sock_of(resp)
    if sock is not None:
        try:
            # The base class' shutdown: SSLSocket's own drops its SSL object first.
            socket.socket.shutdown(sock, socket.SHUT_RD)
        except OSError:
            return  # why: already closed; nothing left to wake


def _sock_of(resp: UpstreamResponse) -> socket.socket | None:
    conn = getattr(resp, "_connection", None) or getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(resp, "_fp", None)
    raw = getattr(getattr(fp, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def finish(resp: UpstreamResponse, whole: bool) -> None:
    """Return the connection to the pool after a whole body, otherwise close it."""
    try:
        if whole:
            resp.release_conn()
        else:
            resp.close()
            conn = getattr(resp, "_connection", None) or getattr(resp, "connection", None)
            if conn is not None:
                conn.close()
    except (OSError, HTTPError):
        log.debug("closing an upstream response failed", exc_info=True)


def read_small(resp: UpstreamResponse, limit: int) -> bytes | None:
    """A small answer's whole body (a probe's, a check's), or None when it is longer than
    ``limit`` bytes; the connection goes back to the pool only after a whole body.  Raises
    UpstreamError when the connection breaks before the body ended."""
    whole = False
    try:
        data = b""
        for piece in stream(resp):
            data += piece
            if len(data) > limit:
                return None
        whole = True
        return data
    finally:
        finish(resp, whole)
