"""Upgraded connections (exec, attach, port-forward): relayed to the cloud byte for byte, as
YurtHub's upgrade-aware handler relays them.

design: gunicorn knows nothing of upgrades.  The request thread opens a connection of its
own to a healthy server, sends the request head as it came (the hub's credentials when the
client brings none), and reads the answer's head.  A ``101 Switching Protocols`` is written
to the client's socket (``gunicorn.socket``) as it came, then a ``poll`` loop relays bytes
both ways until either side ends, and the client's socket is shut, so the answer gunicorn
still tries to send meets a closed connection (EPIPE, which the worker ignores).  Any other
answer (an error Status: 400 "Upgrade request required", 403, 404) is returned as a normal
response.  A session is a long-lived stream of source ``remote``: shutdown and the cloud
turning unhealthy end it, as they end a proxied watch.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
from typing import Any

from werkzeug.wrappers import Response

from yurthub import upstream as up
from yurthub.errors import BadGateway, UpstreamUnavailable
from yurthub.proxy.context import BUFFERED_BODY_LIMIT, RequestContext, connection_tokens
from yurthub.proxy.responses import upstream_headers
from yurthub.proxy.streams import Reason, StreamRegistry

log = logging.getLogger(__name__)

MAX_RESPONSE_HEAD = 64 * 1024
MAX_REFUSAL_BODY = 1024 * 1024
RESPONSE_TIMEOUT = 60.0   # seconds the cloud may take to answer the upgrade
PIECE = 64 * 1024


def is_upgrade(ctx: RequestContext) -> bool:
    """A request asking to switch protocols (RFC 9110 7.8): exec, attach, port-forward."""
    return bool(ctx.header("Upgrade")) and "upgrade" in connection_tokens(ctx.header("Connection"))


def request_head(ctx: RequestContext, host: str, token: str, length: int) -> bytes:
    """The head sent to the cloud: the client's headers (hop-by-hop ones dropped, the
    upgrade kept), ``Host`` for the server and the hub's token when given."""
    headers = ctx.forward_headers()
    if token:
        headers["Authorization"] = "Bearer " + token
    if length or ctx.method not in ("GET", "HEAD"):
        headers["Content-Length"] = str(length)
    lines = [f"{ctx.method} {ctx.path_qs} HTTP/1.1", f"Host: {host}",
             *(f"{k}: {v}" for k, v in headers.items()),
             "Connection: Upgrade", f"Upgrade: {ctx.header('Upgrade')}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """Status and headers of a response head (without its blank line); ValueError if bad."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


class Tunnel:
    """One upgraded session between the client's socket and the cloud's."""

    source = "remote"

    def __init__(self, client: socket.socket, cloud: socket.socket) -> None:
        self.client = client
        self.cloud = cloud
        self.reason: Reason | None = None
        self._lock = threading.Lock()

    def interrupt(self, reason: Reason) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
        for sock in (self.client, self.cloud):
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes the poll at once
            except OSError:
                pass  # why: already shut: the relay is ending anyway

    def relay(self) -> None:
        """Copy bytes both ways until either side ends (or ``interrupt``)."""
        peer = {self.client.fileno(): (self.client, self.cloud),
                self.cloud.fileno(): (self.cloud, self.client)}
        poller = select.poll()
        for fd in peer:
            poller.register(fd, select.POLLIN | select.POLLPRI)
        while self.reason is None:
            for fd, _event in poller.poll():
                src, dst = peer[fd]
                if not _copy(src, dst):
                    return


def _copy(src: socket.socket, dst: socket.socket) -> bool:
    """Move what ``src`` has to ``dst``; False when ``src`` ended or either side broke."""
    try:
        data = src.recv(PIECE)
        if not data:
            return False
        dst.sendall(data)
        # TLS: whole records may wait decrypted in the SSL object, where poll cannot see them.
        while isinstance(src, ssl.SSLSocket) and src.pending():
            dst.sendall(src.recv(PIECE))
    except (OSError, ValueError):
        return False
    return True


def serve(upstream: up.Upstream, streams: StreamRegistry, ctx: RequestContext,
          guard: Any = None) -> Response:
    """Relay an upgrade request (see the module's docstring); raises UpstreamUnavailable
    when no server could be reached (nothing was sent) and BadGateway when the cloud's
    answer never came whole."""
    client = ctx.client_socket
    if client is None:
        raise BadGateway("an upgraded connection needs the client's socket")
    body = ctx.read_body(BUFFERED_BODY_LIMIT) if ctx.has_body() else b""
    identity = not ctx.caller.authorization  # (what forward_headers keeps of it)
    cloud, token, server = _connect(upstream, identity)
    try:
        cloud.settimeout(RESPONSE_TIMEOUT)
        try:
            cloud.sendall(request_head(ctx, server.host, token, len(body)) + body)
            head, rest = _read_head(cloud)
            status, headers = parse_head(head)
        except (OSError, ValueError) as e:
            raise BadGateway(f"the cloud apiserver's answer to the upgrade broke: {e}",
                             details={"retryAfterSeconds": 1}) from e
        if guard is not None:
            guard.record(ctx.caller, ctx.info, status)
        if status != 101:
            return _refusal(cloud, status, headers, rest)
        tunnel = Tunnel(client, cloud)
        # The client's send timeout and the watchdog (client gone) come with the stream.
        with streams.open(tunnel, client, long_lived=True, watch=False,
                          component=ctx.component):
            cloud.settimeout(streams.send_timeout)
            try:
                client.sendall(head + b"\r\n\r\n" + rest)
            except OSError:
                return Response(status=101)  # the client went away before it began
            log.info("%s %s %s: upgraded (%s)", ctx.component or "-", ctx.method,
                     ctx.info.path, dict(headers).get("Upgrade", "?"))
            tunnel.relay()
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # why: the client already closed: the session is over either way
        log.info("%s %s %s: upgraded session ended%s", ctx.component or "-", ctx.method,
                 ctx.info.path, f" ({tunnel.reason.value})" if tunnel.reason else "")
        return Response(status=101)
    finally:
        cloud.close()


def _connect(upstream: up.Upstream, identity: bool) -> tuple[socket.socket, str, up.Server]:
    last: UpstreamUnavailable | None = None
    for server in upstream.candidates():
        try:
            sock, token = upstream.connect(server, identity)
            return sock, token, server
        except UpstreamUnavailable as e:
            log.warning("upgrade: %s", e)
            last = e
    raise last or UpstreamUnavailable("no healthy apiserver")


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head (without its blank line) and the bytes read past it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_RESPONSE_HEAD:
            raise ValueError("response head too large")
        data = sock.recv(PIECE)
        if not data:
            raise ValueError("connection closed before the answer's head")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _refusal(sock: socket.socket, status: int, headers: list[tuple[str, str]],
             rest: bytes) -> Response:
    """A non-101 answer, read whole (it is small: an error Status) and passed on."""
    fields = {k.lower(): v for k, v in headers}
    body = rest
    try:
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body = _dechunk(sock, rest)
        elif fields.get("content-length", "").isdigit():
            want = min(int(fields["content-length"]), MAX_REFUSAL_BODY)
            while len(body) < want:
                data = sock.recv(PIECE)
                if not data:
                    break
                body += data
            body = body[:want]
    except OSError as e:
        raise BadGateway(f"the cloud apiserver's answer to the upgrade broke: {e}") from e
    out = [(k, v) for k, v in upstream_headers(headers) if k.lower() != "content-length"]
    return Response(body, status=status, headers=out)


def _dechunk(sock: socket.socket, buf: bytes) -> bytes:
    out = b""
    while True:
        while b"\r\n" not in buf:
            data = sock.recv(PIECE)
            if not data:
                return out
            buf += data
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0 or len(out) + size > MAX_REFUSAL_BODY:
            return out
        while len(buf) < size + 2:
            data = sock.recv(PIECE)
            if not data:
                return out + buf[:size]
            buf += data
        out += buf[:size]
        buf = buf[size + 2:]
