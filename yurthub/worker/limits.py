"""The worker's decisions, without sockets: which connections get a slot, where a request head
ends, which threads serve a request, and the answers sent without the app.

Pure: bytes, counts and settings in, values out; ``tests/unit/worker`` runs them alone.
"""

from __future__ import annotations

from collections import Counter
from enum import Enum
from http import HTTPStatus

from yurthub.connection import Role
from yurthub.errors import ApiError, BadRequest, RequestEntityTooLarge, TooManyRequests
from yurthub.kube.status import STATUS_CONTENT_TYPE, status_bytes
from yurthub.worker.bodies import MAX_BODY
from yurthub.worker.settings import Limits

# A request head longer than this is refused (431) before any thread sees it: kube-apiserver's
# (Go's http.Server, MaxHeaderBytes 1 << 20), so a long label selector or a large OIDC token
# passes here as it passes there.
MAX_HEAD = 1024 * 1024
# Every connection may hold a request (head and body) this long; the bytes of longer ones
# come out of one budget shared by all connections (``HeadBudget``), so a local process
# opening connections with 1 MiB heads or 3 MiB bodies holds HEAD_BUDGET at most, not that
# much for each of thousands of slots.
SMALL_HEAD = 32 * 1024
HEAD_BUDGET = 16 * 1024 * 1024
# gunicorn's parser reads the head the loop accepted: it must not refuse what kube-apiserver
# takes.  0 means no limit for the request line in gunicorn 20.1 and 2x alike (a value of
# 8190 or more is cut to 8190 in both); 0 means *no limit* for a field in 20.1 but 8190 in
# 2x, so the field size is given; 32768 fields is both versions' maximum.  MAX_HEAD bounds
# all three, since the parser never sees more than the loop read.
PARSER_LIMITS = {"limit_request_line": 0, "limit_request_field_size": MAX_HEAD,
                 "limit_request_fields": 32768}
HEAD_END = b"\r\n\r\n"
# kubelet's heartbeat: GET/PUT (and POST on first start) of the node's Lease.
LEASE_PREFIX = b"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

UNCOUNTED = "-"   # the per-UID key when the peer lookup is off


class Lane(Enum):
    """The thread pools.  ``general`` serves the proxy (``threads`` threads, every open watch
    holds one); ``lease`` serves kubelet's node-Lease requests and ``hub`` the hub server, each
    with a few threads nothing else can take."""

    GENERAL = "general"
    LEASE = "lease"
    HUB = "hub"


class Admission:
    """Connection slots per listener group and per peer UID (see ``Limits``).

    ``admit`` returns None when the connection gets a slot (then ``release`` must follow),
    else the reason it is refused: ``capacity`` or ``uid-capacity``.
    """

    def __init__(self, limits: Limits, kubelet_uid: int | None) -> None:
        self.limits = limits
        self.kubelet_uid = kubelet_uid
        self.open: Counter[str] = Counter()
        self.per_uid: Counter[tuple[str, object]] = Counter()

    @staticmethod
    def group(role: Role) -> str:
        return "hub" if role is Role.HUB_SERVER else "proxy"

    def _caps(self, group: str, uid: int | None, identified: bool) -> tuple[int, int]:
        lim = self.limits
        if group == "hub":
            return lim.hub_max_connections, lim.hub_per_uid
        if identified and uid is not None and uid == self.kubelet_uid:
            return lim.max_connections + lim.kubelet_reserve, lim.per_uid + lim.kubelet_reserve
        return lim.max_connections, lim.per_uid

    def admit(self, role: Role, uid: int | None, identified: bool) -> str | None:
        group = self.group(role)
        total_cap, uid_cap = self._caps(group, uid, identified)
        key = (group, uid if identified else UNCOUNTED)
        if identified and self.per_uid[key] >= uid_cap:
            return "uid-capacity"
        if self.open[group] >= total_cap:
            return "capacity"
        self.open[group] += 1
        self.per_uid[key] += 1
        return None

    def release(self, role: Role, uid: int | None, identified: bool) -> None:
        group = self.group(role)
        key = (group, uid if identified else UNCOUNTED)
        self.open[group] -= 1
        self.per_uid[key] -= 1
        if self.per_uid[key] <= 0:
            del self.per_uid[key]


class HeadBudget:
    """The bytes of requests (heads and bodies) beyond ``SMALL_HEAD``, summed over every
    connection that holds one (read by the loop or served by a thread), bounded by ``limit``;
    one peer user's connections together by half of it, so that a process sending huge
    heads or bodies slowly leaves room for everyone else's (kubelet's node status)."""

    def __init__(self, limit: int = HEAD_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self.per_owner: Counter[object] = Counter()

    def charge(self, held: int, size: int, owner: object = None) -> int | None:
        """A connection of ``owner`` (None: not told apart) charged ``held`` bytes now holds
        a request of ``size`` bytes: its new charge, or None when the budget (or the owner's
        half) has no room for it (the charge stays ``held``)."""
        want = max(0, size - SMALL_HEAD)
        if want <= held:
            return held
        if self.used + want - held > self.limit:
            return None
        if owner is not None:
            if self.per_owner[owner] + want - held > self.limit // 2:
                return None
            self.per_owner[owner] += want - held
        self.used += want - held
        return want

    def release(self, held: int, owner: object = None) -> None:
        self.used -= held
        if owner is not None and held:
            self.per_owner[owner] -= held
            if self.per_owner[owner] <= 0:
                del self.per_owner[owner]


def head_end(buf: bytes | bytearray, searched: int) -> int:
    """The offset just past the request head in ``buf`` (-1 while it has not all arrived);
    ``searched`` bytes were already looked at (the end may straddle two reads)."""
    at = buf.find(HEAD_END, max(0, searched - 3))
    return -1 if at < 0 else at + len(HEAD_END)


def skip_empty_lines(buf: bytearray) -> None:
    """Drop the empty lines a client may send before a request line (RFC 9112, 2.2)."""
    n = 0
    while n < len(buf) and buf[n] in (0x0D, 0x0A):
        n += 1
    if n:
        del buf[:n]


def lane_for(role: Role, head: bytes | bytearray, uid: int | None, identified: bool,
             kubelet_uid: int | None) -> Lane:
    """The pool that serves a request, from its listener, its request line and its peer."""
    if role is Role.HUB_SERVER:
        return Lane.HUB
    if identified and (uid is None or uid != kubelet_uid):
        return Lane.GENERAL
    line = bytes(head[:256]).split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) == 3 and _heartbeat(parts[0], parts[1]):
        return Lane.LEASE
    return Lane.GENERAL


def _heartbeat(method: bytes, target: bytes) -> bool:
    """A request for one named Lease in kube-node-lease, not a watch, or its creation:
    kubelet's heartbeat.  A list or a watch of them (any root process's informer) could hold
    the lane's few threads for as long as it streams, and kubelet's renewals would wait."""
    if method == b"POST" and target.partition(b"?")[0] == LEASE_PREFIX:
        return True
    if not target.startswith(LEASE_PREFIX + b"/"):
        return False
    path, _, query = target.partition(b"?")
    name = path[len(LEASE_PREFIX) + 1:]
    if not name or b"/" in name:
        return False
    return not any(p.split(b"=", 1)[0] == b"watch" for p in query.split(b"&"))


def canned(err: ApiError, *, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer carrying ``err``'s Status, closing the connection."""
    body = status_bytes(err)
    try:
        reason = HTTPStatus(err.code).phrase
    except ValueError:
        reason = "Error"
    head = [f"HTTP/1.1 {err.code} {reason}", f"Content-Type: {STATUS_CONTENT_TYPE}",
            f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def too_many_connections(reason: str, uid: int | None) -> bytes:
    who = "this user" if uid is None else f"user {uid}"
    why = (f"too many connections from {who}" if reason == "uid-capacity"
           else "too many open connections")
    return canned(TooManyRequests(f"yurthub: {why}; retry later",
                                  details={"retryAfterSeconds": 1}), retry_after=1)


def head_too_large() -> bytes:
    return canned(BadRequest(f"yurthub: the request head is larger than {MAX_HEAD} bytes",
                             code=431, reason="RequestHeaderFieldsTooLarge"))


def heads_crowded() -> bytes:
    return canned(TooManyRequests("yurthub: too many large request heads are being read; "
                                  "retry later", details={"retryAfterSeconds": 1}),
                  retry_after=1)


def body_too_large() -> bytes:
    """kube-apiserver's answer to a body over its limit (``MaxRequestBodyBytes``)."""
    return canned(RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY}"))


def body_timeout(seconds: float) -> bytes:
    return canned(BadRequest(f"yurthub: the request body did not arrive within {seconds:g}s "
                             "of its head", code=408, reason="Timeout"))


def head_timeout(seconds: float) -> bytes:
    return canned(BadRequest(f"yurthub: the request head did not arrive within {seconds:g}s",
                             code=408, reason="Timeout"))


def plain_http_on_tls() -> bytes:
    # Go's net/http answers a plain request on a TLS port with these words.
    return canned(BadRequest("Client sent an HTTP request to an HTTPS server."))


def tls_on_plain_http() -> bytes:
    # A Go client reads this as "http: server gave HTTP response to HTTPS client".
    return canned(BadRequest("yurthub: this port serves plain HTTP; use http://, not "
                             "https://"))
