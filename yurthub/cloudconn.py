"""urllib3 connections to the cloud, with two corrections to http.client's reading.

Interim answers: http.client skips ``100 Continue`` only, and any other 1xx before the answer
(``103 Early Hints`` from a load balancer in front of kube-apiserver, ``102 Processing``) is
taken as the final response, with no body, the real answer left unread on the connection.
The hub then passed a 103 on, and its client waited for an answer that never came.
client-go and kubectl (Go's net/http) read past up to five 1xx answers and fail after that;
so do these connections.  ``101 Switching Protocols`` stays final (an upgrade).

Stray bytes: a server that sends more than its Content-Length leaves the rest on the kept-
alive connection.  urllib3 reuses a connection when its socket is not readable, but over TLS
the rest may already sit decrypted in the SSL object (``pending()``), not in the socket: the
next request on the connection, maybe another client's, got those bytes as its answer.  Such
a connection is closed and a new one made before a request is sent on it.

Malformed header lines: http.client's parser stops at a line that is no header (``X Bad:
v``, a bare CR) and silently drops every header after it, Content-Length and
Transfer-Encoding included; the body was then read until the connection closed (the read
timeout on a kept-alive one) and passed on with its chunk framing.  Go's net/http refuses
such an answer ("malformed MIME header line"); so do these connections.

Answers that will not come: a request sent before a server went silent (a link that drops
packets, an apiserver that hangs) waited for its answer up to the read timeout, 60 s for a
get or a list, while the health checker had long declared the server gone and every later
request went elsewhere.  ``cut_waiting`` ends the wait of every request still waiting for
its answer's head from that server: it breaks before any byte (``_CutOff``), so a read goes
to another server or, with none, to the cache.  A get's or a list's body that stalls before
its first byte (the head came, then silence) is cut the same way (``awaiting_body``): it
breaks, and the read is answered from the cache.  Only once the server is declared gone: a
list the apiserver is still computing is not cut, and a watch's body is never waited on so.

Idle connections closed: a server (or a load balancer) closes a kept-alive connection it
finds idle, and a request sent on it at that moment gets no answer (a reset, an end).
urllib3 checks a connection before it reuses it, but not against a close still on its way;
the read failed as if the cloud had broken (a 502, or the cache answering for a reachable
cloud).  Go's net/http sends such a request again on another connection when it may
(nothing was answered on it, the request is replayable); so do these pools, once, for a
GET or HEAD without a body (``_ClosedIdle``).
"""

from __future__ import annotations

import email.errors
import http.client
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

MAX_INTERIM = 5  # as Go's net/http: more 1xx answers than this are an error


class FinalResponse(http.client.HTTPResponse):
    """An http.client response whose status line is the first one that is not an interim
    1xx answer (101 excepted); the interim answers' headers are read and dropped."""

    def begin(self) -> None:
        super().begin()
        if any(isinstance(d, email.errors.MissingHeaderBodySeparatorDefect)
               for d in self.msg.defects):
            raise http.client.HTTPException("a malformed header line in the answer (the "
                                            "header lines after it would be lost)")

    def _read_status(self) -> tuple[str, int, str]:
        seen = 0
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            seen += 1
            if seen > MAX_INTERIM:
                raise http.client.HTTPException(
                    f"more than {MAX_INTERIM} interim (1xx) responses before the answer")
            http.client.parse_headers(self.fp)


_waiting: set[Any] = set()  # connections waiting for their answer's head
_waiting_lock = threading.Lock()


class _CutOff(ConnectionAbortedError):
    """The server was declared gone while this request waited for its answer."""


class _ClosedIdle(ConnectionResetError):
    """A kept-alive connection that had answered before was closed by the server with no
    answer to the next request: the server closed it as idle while the request was on its
    way (or closes every connection after one answer).  The request never reached it."""


class _Waits:
    """The wait for an answer's head, which ``cut_waiting`` may end."""

    host: Any
    port: Any
    sock: Any
    _cut = False
    _answers = 0  # answers begun on this connection since it was made

    def connect(self) -> None:
        self._answers = 0
        super().connect()  # type: ignore[misc]

    def server(self) -> tuple[Any, Any]:
        """The server's host and port (through a proxy, the tunnel's end, not the proxy)."""
        tunnel = getattr(self, "_tunnel_host", None)
        if tunnel:  # urllib3 1.26 keeps an IPv6 address's brackets there
            return tunnel.strip("[]"), getattr(self, "_tunnel_port", None)
        return self.host, self.port

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        self._cut = False
        with _waiting_lock:
            _waiting.add(self)
        try:
            resp = super().getresponse(*args, **kwargs)  # type: ignore[misc]
            self._answers += 1
            return resp
        except (OSError, http.client.HTTPException) as e:
            if self._cut:
                raise _CutOff("the server was declared gone while the request waited for "
                             "its answer") from e
            if self._answers and isinstance(e, (ConnectionResetError, BrokenPipeError)):
                raise _ClosedIdle(f"the server closed a kept-alive connection: {e}") from e
            raise
        finally:
            with _waiting_lock:
                _waiting.discard(self)


@contextmanager
def awaiting_body(conn: Any) -> Iterator[None]:
    """While inside, ``conn`` (a response's connection) waits for its body's first byte,
    which ``cut_waiting`` may end as it ends the wait for a head."""
    if not isinstance(conn, _Waits):
        yield  # no connection of ours (already released, or a test's double)
        return
    conn._cut = False
    with _waiting_lock:
        _waiting.add(conn)
    try:
        yield
    finally:
        with _waiting_lock:
            _waiting.discard(conn)


def cut_waiting(host: str, port: int | None) -> int:
    """End the wait of every request sent to ``host``:``port`` whose answer (or the body
    after its head, in ``awaiting_body``) has not begun: its connection is shut down, the
    request breaks before any byte; how many."""
    with _waiting_lock:
        conns = [c for c in _waiting if c.server() == (host, port)]
        _waiting.difference_update(conns)
    n = 0
    for conn in conns:
        sock = getattr(conn, "sock", None)
        if not isinstance(sock, socket.socket):
            continue
        conn._cut = True
        try:
            # socket.socket's own shutdown: an SSLSocket's would drop its SSL object under
            # the thread reading it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
            n += 1
        except OSError:
            pass  # closed meanwhile: its wait is over anyway
    return n


def was_cut(error: BaseException | None) -> bool:
    """Whether ``error`` (urllib3's, wrapping what the connection raised) is a ``_CutOff``."""
    return caused_by(error, _CutOff)


def caused_by(error: BaseException | None, cls: type[BaseException]) -> bool:
    """Whether ``error`` (urllib3's, wrapping what the connection raised) is a ``cls``."""
    for _ in range(8):
        if error is None:
            return False
        if isinstance(error, cls):
            return True
        # urllib3 keeps the cause in ``reason`` (MaxRetryError) or ``args`` (ProtocolError);
        # an ssl.SSLError's ``reason`` is a string.
        reason = getattr(error, "reason", None)
        inner = [a for a in (reason, *error.args) if isinstance(a, BaseException)]
        error = inner[0] if inner else (error.__cause__ or error.__context__)
    return False


class FinalHTTPConnection(_Waits, HTTPConnection):
    response_class = FinalResponse


class FinalHTTPSConnection(_Waits, HTTPSConnection):
    response_class = FinalResponse

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._drop_stray_bytes()
        return super().request(*args, **kwargs)

    def request_chunked(self, *args: Any, **kwargs: Any) -> Any:  # urllib3 1.26
        self._drop_stray_bytes()
        return super().request_chunked(*args, **kwargs)

    def _drop_stray_bytes(self) -> None:
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            # why: bytes past the last answer's end are never the next request's answer
            log.debug("%s:%s sent %d bytes past its answer: new connection", self.host,
                      self.port, sock.pending())
            self.close()  # http.client connects again when the request is sent


# urllib3 names its connection or pool before the message: "<...HTTPConnection object at
# 0x7f..>: " (1.26), "FinalHTTPConnection(host='10.0.0.1', port=6443): " (2.x),
# "HTTPSConnectionPool(host='10.0.0.1', port=6443): ".
_WHO = re.compile(r"(?:<[\w.]+ object at 0x[0-9a-fA-F]+>|\b\w+\(host=[^()]*\)): ")
_FAILED = "Failed to establish a new connection: "


def describe_error(e: BaseException) -> str:
    """urllib3's error ``e`` in words an operator reads (a log line, /status, readyz).

    why: its text names internal classes and addresses ("FinalHTTPConnection(host=...,
    port=...)", "<yurthub.cloudconn.FinalHTTPConnection object at 0x7f..>") and, for a
    connect timeout, is a tuple's repr; the caller names the server already.
    """
    reason = getattr(e, "reason", None)  # MaxRetryError, ProxyError: the cause
    if isinstance(reason, BaseException) and reason is not e:
        return describe_error(reason)
    message = getattr(e, "_message", None)  # urllib3 2.x NewConnectionError
    args = e.args
    if isinstance(message, str):
        text = message
    elif (len(args) == 2 and isinstance(args[1], str)
          and not isinstance(args[0], (str, int))):  # (connection, message)
        text = args[1]
    elif len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], BaseException):
        # ProtocolError("Connection broken: InvalidChunkLength(...)", InvalidChunkLength(...))
        head = args[0].replace(repr(args[1]), "").rstrip(":. ")
        text = f"{head}: {describe_error(args[1])}"
    elif type(e).__name__ == "InvalidChunkLength":
        # why: what urllib3 2.x calls "Response ended prematurely", 1.26 called by its class
        text = ("the answer ended before its last chunk" if not getattr(e, "length", b"")
                else f"a chunk's length is not a number: {getattr(e, 'length', b'')!r}")
    else:
        text = str(e) or type(e).__name__
    text = _WHO.sub("", text)
    return text[len(_FAILED):] if text.startswith(_FAILED) else text


def final_answers(pool: Any) -> Any:
    """``pool`` (urllib3's HTTP or HTTPS pool), its new connections the ones above."""
    if issubclass(pool.ConnectionCls, HTTPSConnection):
        pool.ConnectionCls = FinalHTTPSConnection
    else:
        pool.ConnectionCls = FinalHTTPConnection
    pool.urlopen = _replaying(pool.urlopen)
    return pool


def _replaying(urlopen: Any) -> Any:
    """``urlopen`` sending a read again, once, when it met a ``_ClosedIdle`` connection."""

    def call(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        body = kwargs["body"] if "body" in kwargs else args[0] if args else None
        try:
            return urlopen(method, url, *args, **kwargs)
        except (HTTPError, OSError) as e:
            if method not in ("GET", "HEAD") or body or not caused_by(e, _ClosedIdle):
                raise
            log.debug("%s %s: %s; sending it again", method, url, describe_error(e))
        return urlopen(method, url, *args, **kwargs)

    return call
