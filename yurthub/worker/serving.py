"""The thread side of yurthub's worker: one request on a pool thread, from its head to its
last byte (gthread's ``handle`` around its ``handle_request``), the connection's facts in
the environ, a send timeout once the answer starts, and the unread body drained.

design: split out of ``gthread.py`` by responsibility: that module is the connection loop
(accept, admission, heads, deadlines, keep-alive), this one what a pool thread does with a
connection the loop handed it.  ``ThreadSide`` is a mixin that ``YurthubWorker`` puts before
gunicorn's ``ThreadWorker``; it only names (does not define) what it uses of that class.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn import http
from gunicorn.http import errors as http_errors

from yurthub.connection import ENV_LONG_RUNNING
from yurthub.errors import ApiError, BadRequest, Forbidden, InternalError, YurthubError
from yurthub.worker import limits
from yurthub.worker.chunked import ChunkedWrites, writes_chunks
from yurthub.worker.conn import Conn
from yurthub.worker.settings import WorkerSettings

log = logging.getLogger(__name__)

DRAIN_MAX = 64 * 1024    # unread request body drained before a connection is kept alive


class ThreadSide:
    """What a pool thread does with one connection (mixed into ``YurthubWorker``)."""

    # Set by YurthubWorker or gunicorn's ThreadWorker; annotations only, so the MRO finds
    # gunicorn's methods.
    cfg: Any
    alive: bool
    settings: WorkerSettings
    _local: threading.local
    _app: Callable[..., Any]
    handle_request: Callable[..., bool]

    def _serve(self, conn: Conn) -> tuple[bool, bytes]:
        """One request, on a pool thread: gthread's ``handle`` around its ``handle_request``."""
        req = None
        sock = conn.sock
        try:
            sock.settimeout(self.settings.body_timeout)
            parser = http.RequestParser(self.cfg, sock, conn.client)
            parser.unreader.unread(conn.take_buffer())
            req = next(parser)
            if not req:
                return False, b""
            self._local.conn = conn
            keepalive = self.handle_request(req, conn)
            if not (keepalive and self.alive and self._drain(req, sock)):
                return False, b""
            return True, parser.unreader.buf.getvalue()
        except http.errors.NoMoreData as e:
            log.debug("client closed early: %s", e)
        except StopIteration as e:
            log.debug("closing connection: %s", e)
        except ssl.SSLError as e:
            log.debug("TLS error from %s: %s", conn.client, e)
        except OSError as e:
            if isinstance(e, TimeoutError):
                # A write cut short by the Deadline times out as any write does.
                deadline = getattr(self._local, "deadline", None)
                late = isinstance(e, RequestTimeout) or (deadline is not None
                                                         and deadline.cut_short)
                log.info("%s %s: %s; connection reset", conn.info.role.value,
                         request_line(req), "its answer was not sent within request_timeout"
                         if late else "client stopped sending or reading")
                reset_on_close(sock)
            elif e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                log.warning("socket error serving %s: %s", request_line(req), e)
        except Exception as e:
            self.handle_error(req, sock, conn.client, e)
        finally:
            self._local.conn = None
            self._local.deadline = None
        return False, b""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to a request it could not parse or serve, as a Status (gunicorn
        writes an HTML page): clients of the hub are Kubernetes clients."""
        err = parse_error(exc)
        if err is None:
            log.error("error serving %s", request_line(req), exc_info=exc)
            err = InternalError("yurthub failed while serving the request; see its log")
        else:
            log.debug("bad request from %s: %s", addr, exc)
        try:
            client.sendall(limits.canned(err))
        except (OSError, ValueError):
            pass  # why: the client is gone; it gets the close instead

    def _drain(self, req: Any, sock: socket.socket) -> bool:
        """Read what the app left of the request body; False when too much is left."""
        body = getattr(req, "body", None)
        if body is None:
            return True
        sock.settimeout(self.settings.body_timeout)
        left = DRAIN_MAX
        while True:
            data = body.read(8192)
            if not data:
                return True
            left -= len(data)
            if left < 0:
                return False

    def _call_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The WSGI app as the threads call it: the connection's facts in, a send timeout out."""
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None:
            environ.update(conn.info.environ())
            if conn.info.tls:
                environ["wsgi.url_scheme"] = "https"
                environ["HTTPS"] = "on"
        result = self._app(environ, start_response)
        if conn is not None:
            # From here on the answer is being sent: one write may wait send_timeout, for
            # answers from the cache as for streamed upstream ones.
            try:
                conn.sock.settimeout(self.settings.send_timeout)
            except OSError:
                pass  # why: the client is gone; the first write will say so
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return result   # gunicorn sends it with sendfile
        if conn is not None and not environ.get(ENV_LONG_RUNNING):
            # The whole answer within request_timeout, as kube-apiserver sends it: a client
            # reading a little before each send_timeout would hold the thread for as long as
            # it likes, and enough of them starve every other request.
            result = self._local.deadline = Deadline(
                result, conn.sock, self.settings.request_timeout, self.settings.send_timeout)
        # gunicorn's Response (start_response is its method) would copy each chunk to
        # frame it: pieces of a chunked answer go out by sendmsg instead (worker.chunked).
        resp = getattr(start_response, "__self__", None)
        if resp is not None and writes_chunks(resp):
            return ChunkedWrites(result, resp)
        return result


class RequestTimeout(YurthubError, TimeoutError):
    """An answer's time (``request_timeout``) ran out between two of its pieces."""


def reset_on_close(sock: socket.socket) -> None:
    """Make the close of a cut connection a reset: a FIN would wait behind the megabytes
    already in the socket's send buffer, which a client reading slowly takes minutes to
    drain, and the kernel would hold them until it did; the client would not learn it
    was cut until then."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # why: already closed; nothing is left to send


class Deadline:
    """The app's body, each piece handed on with the socket's timeout cut to what is left
    of ``timeout`` seconds from its first piece (TimeoutError once none is left: the thread
    closes the connection, as kube-apiserver aborts an answer past its --request-timeout).
    The clock starts at the first piece, so the head and its Status always go out; the time
    the cloud takes to begin is bounded by the upstream's own timeouts.  ``cut_short``: the
    socket's timeout is what is left of ``timeout``, not the whole send timeout (a write
    that times out then ran into the deadline; the client may be reading all along)."""

    __slots__ = ("_body", "_send_timeout", "_sock", "_timeout", "cut_short")

    def __init__(self, body: Iterable[bytes], sock: socket.socket, timeout: float,
                 send_timeout: float) -> None:
        self._body = body
        self._sock = sock
        self._timeout = timeout
        self._send_timeout = send_timeout
        self.cut_short = False

    def __iter__(self) -> Iterator[bytes]:
        deadline = None
        for piece in self._body:
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._timeout
            left = deadline - now
            if left <= 0:
                raise RequestTimeout("request_timeout")
            self.cut_short = left < self._send_timeout
            # (a settimeout is a syscall: made for each piece only once the deadline is near)
            if self.cut_short or self._sock.gettimeout() != self._send_timeout:
                self._sock.settimeout(min(self._send_timeout, left))
            yield piece

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


# gunicorn's parse errors (some only in 2x) and the codes it answers them with.
_PARSE_CODES = {"LimitRequestLine": (414, "RequestURITooLong"),
                "LimitRequestHeaders": (431, "RequestHeaderFieldsTooLarge"),
                "UnsupportedTransferCoding": (501, "NotImplemented"),
                "ExpectationFailed": (417, "ExpectationFailed")}


def parse_error(exc: BaseException) -> ApiError | None:
    """The Status for one of gunicorn's errors about the client's request (None: a bug)."""
    if isinstance(exc, (http_errors.ForbiddenProxyRequest, ssl.SSLError)):
        return Forbidden(f"yurthub: {exc}")
    response_errors = tuple(getattr(http_errors, name) for name in
                            ("InvalidResponseHeader", "InvalidResponseHeaderName")
                            if hasattr(http_errors, name))
    if response_errors and isinstance(exc, response_errors):
        return None   # the app's header: not the client's fault
    if not isinstance(exc, (http_errors.ParseException, http_errors.InvalidChunkSize,
                            http_errors.ChunkMissingTerminator)):
        return None
    code, reason = _PARSE_CODES.get(type(exc).__name__, (400, "BadRequest"))
    message = (str(exc) or type(exc).__name__)[:256]
    return BadRequest(f"yurthub: invalid request: {message}", code=code, reason=reason)


def request_line(req: Any) -> str:
    if req is None:
        return "-"
    return f"{getattr(req, 'method', '?')} {getattr(req, 'uri', '?')}"


__all__ = ["DRAIN_MAX", "Deadline", "ThreadSide", "parse_error", "request_line"]
