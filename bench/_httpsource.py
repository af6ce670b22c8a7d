"""The HTTP side of the benches' event sources (``_eventsource.py``, ``_podcloud.py``).

Each is an upstream that must never be the bottleneck: one thread per connection, requests
read off a keep-alive connection by hand, watches answered with a chunked 200 that stays
open until the client leaves, ``/readyz``, ``/healthz`` and ``/livez`` answering 200 and
anything unknown a 404 Status.  What a source serves (its events, its other paths) is its
own: ``serve`` calls ``handle(sock, url, query)`` for each request.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import SplitResult, parse_qs, urlsplit

NOT_FOUND = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
             b'"message":"not found","reason":"NotFound","code":404}')
HEALTH = ("/readyz", "/healthz", "/livez")
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")

Query = dict[str, list[str]]
# Answers one request; True when the connection is done (a watch that ended).
Handler = Callable[[socket.socket, SplitResult, Query], bool]


def requests(sock: socket.socket) -> Iterator[tuple[SplitResult, Query]]:
    """The requests a client sends on one connection, until it closes it (bodies skipped)."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
        m = _LENGTH.search(head)
        if m:  # a body we do not need
            need = int(m.group(1))
            while len(buf) < need:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[need:]
        url = urlsplit(target)
        yield url, parse_qs(url.query)


def is_watch(query: Query) -> bool:
    return query.get("watch", [""])[0] in ("true", "1")


def start_watch(sock: socket.socket) -> None:
    """The headers of a watch: a chunked 200 that stays open."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Cache-Control: no-cache, private\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")


def hold(sock: socket.socket) -> None:
    """Until the client leaves (it sends nothing more on a watch; EOF ends it)."""
    while sock.recv(65536):
        pass


def respond(sock: socket.socket, body: bytes, ctype: bytes = b"application/json",
            status: bytes = b"200 OK") -> None:
    sock.sendall(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                 % (status, ctype, len(body), body))


def not_found(sock: socket.socket) -> None:
    respond(sock, NOT_FOUND, status=b"404 Not Found")


def health(sock: socket.socket, url: SplitResult) -> bool:
    """Answer a health probe; False when ``url`` is not one."""
    if url.path not in HEALTH:
        return False
    respond(sock, b"ok", b"text/plain")
    return True


def _conn(sock: socket.socket, handle: Handler) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for url, query in requests(sock):
            if handle(sock, url, query):
                return
    except OSError:
        return
    finally:
        sock.close()


def serve(port: int, name: str, handle: Handler) -> None:
    """Listen on 127.0.0.1:``port`` (0: any), print ``<name> <port>``, serve forever."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1024)
    print(f"{name} {lsock.getsockname()[1]}", flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=_conn, args=(conn, handle), daemon=True).start()
