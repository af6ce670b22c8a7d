"""One HTTP/1.1 connection: read requests, apply faults, write responses (chunked for watches).

design: each accepted connection is served by its own thread (watches hold theirs for their
whole life, as kube-apiserver's goroutines do).  The handler is http.server's request parser
with our own writing: headers in one send, a body either whole (gzip over 128 KiB when asked)
or one chunk per watch event.  Faults act here: latency before the answer, a failure instead
of it, and a stall or a reset after a set number of body bytes.  :class:`Conn` lets the server
cut a connection from another thread (offline, stop) and lets a watch notice a vanished peer.
"""

from __future__ import annotations

import array
import email.utils
import fcntl
import logging
import select
import socket
import struct
import termios
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from kubesandbox.execws import is_exec_upgrade, serve_exec
from kubesandbox.faults import DROP, FAIL, RESET, STALL, Faults, Rule, reason_for
from kubesandbox.wire import GZIP_THRESHOLD, Headers, Request, Response, status_response
from yurthub.errors import ApiError, BadRequest, InternalError, Unauthorized
from yurthub.kube.requestinfo import parse_query

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
CONTROL_PREFIX = "/_sandbox"
_PEER_CHECK_INTERVAL = 1.0


class ConnectionCut(Exception):
    """The connection was cut on purpose (reset, offline, stop); nothing more can be sent."""


@dataclass
class RequestRecord:
    """One served request, for tests that assert what reached the apiserver."""

    method: str
    path: str
    query: str
    status: int
    duration: float
    user_agent: str
    watch: bool
    user: str = ""
    credential: str = ""


class Host(Protocol):
    """What a connection needs from the server that owns it."""

    faults: Faults
    stopping: threading.Event

    def handle_api(self, req: Request, is_closed: Callable[[], bool]) -> Response: ...
    def handle_control(self, req: Request) -> Response: ...
    def authenticate(self, headers: Headers, peercert: Any, method: str,
                     path: str) -> Any: ...
    def record(self, rec: RequestRecord) -> None: ...


class Conn:
    """A live connection that other threads may cut."""

    def __init__(self, sock: socket.socket, control_only: bool = False) -> None:
        self.sock = sock
        self.control_only = control_only
        self.closed = False
        self.watching = False
        self.watcher = ""  # the User-Agent of the watch being served
        self._peer_checked = 0.0
        self._peer_gone = False

    def cut(self) -> None:
        """Shut the socket down both ways; the owning thread's next read or write fails."""
        self.closed = True
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0 and close) once what was sent has left.

        An abortive close drops unsent data, so wait (up to a second) for the send queue to
        drain: the client then sees exactly the bytes sent before the reset.
        """
        self.closed = True
        queued = array.array("i", [0])
        deadline = time.monotonic() + 1.0
        try:
            while time.monotonic() < deadline:
                fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, queued)
                if queued[0] == 0:
                    break
                threading.Event().wait(0.002)
        except OSError:
            pass
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def peer_gone(self) -> bool:
        """Whether the client closed its side (checked at most once a second)."""
        now = time.monotonic()
        if self._peer_gone or now - self._peer_checked < _PEER_CHECK_INTERVAL:
            return self._peer_gone
        self._peer_checked = now
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if readable:
                # A watch client sends nothing: readable means EOF (or TLS close_notify).
                if hasattr(self.sock, "pending"):
                    self._peer_gone = True
                else:
                    self._peer_gone = self.sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            self._peer_gone = True
        return self._peer_gone


def _wants_gzip(headers: Headers) -> bool:
    for part in (headers.get("Accept-Encoding") or "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0")
    return False


def _fail_response(rule: Rule) -> Response:
    reason, message = reason_for(rule.status)
    details: dict[str, Any] = {}
    if rule.retry_after is not None:
        details["retryAfterSeconds"] = rule.retry_after
    return status_response(ApiError(message, code=rule.status, reason=reason, details=details))


class _BodyOut:
    """Writes body bytes (raw or as chunks), tripping a stall or reset fault on the way."""

    def __init__(self, handler: Handler, rule: Rule | None, chunked: bool) -> None:
        self.h = handler
        self.chunked = chunked
        self.rule = rule if rule is not None and rule.kind in (STALL, RESET) else None
        self.sent = 0

    def _send(self, data: bytes | memoryview) -> None:
        if self.h.conn.closed:
            raise ConnectionCut
        self.h.conn.sock.sendall(data)

    def write(self, data: bytes) -> None:
        if not data:
            return
        rule = self.rule
        if rule is None or self.sent + len(data) <= rule.after_bytes:
            self._send(b"%X\r\n%s\r\n" % (len(data), data) if self.chunked else data)
            self.sent += len(data)
            return
        cut = max(0, rule.after_bytes - self.sent)
        head = b"%X\r\n" % len(data) if self.chunked else b""
        self._send(head + data[:cut])
        self.sent += cut
        if rule.kind == RESET:
            log.info("fault: resetting the connection after %d body bytes", self.sent)
            self.h.conn.reset()
            raise ConnectionCut
        log.info("fault: stalling the response after %d body bytes", self.sent)
        host = self.h.host
        while not host.faults.released.wait(0.05):
            if self.h.conn.closed or host.stopping.is_set():
                raise ConnectionCut
        self.rule = None
        rest = memoryview(data)[cut:]
        self._send(bytes(rest) + b"\r\n" if self.chunked else rest)
        self.sent += len(rest)

    def finish(self) -> None:
        if self.chunked:
            self._send(b"0\r\n\r\n")


class Handler(BaseHTTPRequestHandler):
    """http.server's parser, with our dispatch and writing; one instance per connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each watch event goes out at once
    # Idle keep-alive connections close after this long, and a client that stops reading
    # a response for this long is dropped (a send timeout), so no thread waits forever.
    timeout = 600

    def __init__(self, conn: Conn, addr: Any, host: Host) -> None:
        self.conn = conn
        self.host = host
        super().__init__(conn.sock, addr, None)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionCut, OSError, ValueError):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise BadRequest("the request body is too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest("the request body is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _send_head(self, status: int, content_type: str, extra: list[tuple[str, str]]) -> None:
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}",
                 "Audit-Id: " + str(uuid.uuid4()),
                 "Cache-Control: no-cache, private",
                 "Content-Type: " + content_type,
                 "Date: " + email.utils.formatdate(usegmt=True)]
        lines += [f"{k}: {v}" for k, v in extra]
        if self.close_connection:
            lines.append("Connection: close")
        if self.conn.closed:
            raise ConnectionCut
        self.conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _serve(self) -> None:
        started = time.monotonic()
        path, _, qs = self.path.partition("?")
        headers = self.headers
        req = Request(self.command, path, parse_query(qs), headers,
                      user_agent=headers.get("User-Agent") or "")
        rule: Rule | None = None
        try:
            req.body = self._read_body()
            if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
                if not self.conn.control_only and self._authenticate(path) is None:
                    raise Unauthorized("Unauthorized")
                self._write(self.host.handle_control(req), None, False)
                return
            if self.conn.control_only:
                raise ApiError("the control port serves only /_sandbox/", code=404,
                               reason="NotFound")
            rule = self.host.faults.take(f"{self.command} {self.path}")
            if self.host.faults.latency:
                self.host.stopping.wait(self.host.faults.latency)
            if rule is not None and rule.kind == DROP:
                log.info("fault: dropping %s %s", self.command, self.path)
                self.conn.reset()
                raise ConnectionCut
            if rule is not None and rule.kind == FAIL:
                resp = _fail_response(rule)
            else:
                req.user = self._authenticate(path)
                if req.user is None:
                    raise Unauthorized("Unauthorized")
                if is_exec_upgrade(self.command, path, headers):
                    self.close_connection = True
                    serve_exec(self.conn.sock, headers, req.query)
                    self._record(req, 101, started, False)
                    return
                resp = self.host.handle_api(req, self._watch_closed)
        except ApiError as e:
            resp = status_response(e)
        except ConnectionCut:
            self.close_connection = True
            self._record(req, 0, started, False)
            return
        except Exception:
            log.exception("sandbox: %s %s failed", self.command, self.path)
            resp = status_response(InternalError("an error on the server has prevented the "
                                                 "request from succeeding"))
        watch = resp.stream is not None
        self.conn.watcher = req.user_agent
        try:
            self._write(resp, rule, _wants_gzip(headers) and not watch)
        except (ConnectionCut, OSError):
            self.close_connection = True
        finally:
            self._record(req, resp.status, started, watch)

    def _authenticate(self, path: str) -> Any:
        """The request's User (kubesandbox.auth), or None: 401."""
        peercert = None
        getpeercert = getattr(self.conn.sock, "getpeercert", None)
        if getpeercert is not None:
            peercert = getpeercert()
        return self.host.authenticate(self.headers, peercert, self.command, path)

    def _watch_closed(self) -> bool:
        return self.conn.closed or self.host.stopping.is_set() or self.conn.peer_gone()

    def _record(self, req: Request, status: int, started: float, watch: bool) -> None:
        duration = time.monotonic() - started
        if not req.path.startswith(CONTROL_PREFIX):
            log.info("%s %s %d %.1fms", req.method, self.path, status, duration * 1000)
            user = req.user
            self.host.record(RequestRecord(req.method, req.path, self.path.partition("?")[2],
                                           status, duration, req.user_agent, watch,
                                           getattr(user, "name", ""),
                                           getattr(user, "credential", "")))

    def _write(self, resp: Response, rule: Rule | None, gzip_ok: bool) -> None:
        extra = list(resp.headers)
        if resp.stream is not None:
            self.conn.watching = True
            out = _BodyOut(self, rule, chunked=True)
            try:
                self._send_head(resp.status, resp.content_type,
                                [*extra, ("Transfer-Encoding", "chunked")])
                for chunk in resp.stream:
                    out.write(chunk)
                out.finish()
            finally:
                self.conn.watching = False
                close = getattr(resp.stream, "close", None)
                if close is not None:
                    close()
            return
        body = b"".join(resp.body)
        if gzip_ok and len(body) > GZIP_THRESHOLD:
            packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip, kube-apiserver's level 1
            body = packer.compress(body) + packer.flush()
            extra += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        self._send_head(resp.status, resp.content_type,
                        [*extra, ("Content-Length", str(len(body)))])
        if self.command != "HEAD":
            _BodyOut(self, rule, chunked=False).write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
