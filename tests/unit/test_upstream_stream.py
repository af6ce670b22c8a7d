"""Reading an upstream body over TLS: records that have arrived are joined, nothing waits."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import urllib3

from kubesandbox import tls
from yurthub import upstream as up

MiB = 1 << 20


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> tls.TLSMaterial:
    return tls.make_self_signed(tmp_path_factory.mktemp("pki"))


@contextmanager
def tls_server(material: tls.TLSMaterial, respond: Callable[[ssl.SSLSocket], None]
               ) -> Iterator[int]:
    """One HTTPS connection on a real socket, answered by ``respond``."""
    ctx = tls.server_context(material.server_cert, material.server_key, None)
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]

    def serve() -> None:
        conn, _ = lsock.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(4096)
            respond(s)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield port
    lsock.close()
    t.join(10)


def get(material: tls.TLSMaterial, port: int) -> urllib3.BaseHTTPResponse:
    pool = urllib3.HTTPSConnectionPool("127.0.0.1", port, ca_certs=material.ca_cert,
                                       retries=False, timeout=10)
    return pool.urlopen("GET", "/api/v1/pods", preload_content=False)


def test_tls_records_that_arrived_are_read_as_one_piece(material):
    body = os.urandom(3 * MiB)

    def respond(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)

    with tls_server(material, respond) as port:
        resp = get(material, port)
        pieces = []
        for piece in up.stream(resp):
            pieces.append(piece)
            time.sleep(0.02)  # a busy request thread: meanwhile more records arrive
    assert b"".join(pieces) == body
    # 3 MiB is 192 TLS records of 16 KiB: each read takes all the records waiting
    assert len(pieces) <= len(body) // (64 << 10), [len(p) for p in pieces]


def test_a_piece_never_waits_for_records_that_have_not_arrived(material):
    head = os.urandom(1000)
    tail = os.urandom(100_000)
    first_seen = threading.Event()

    def respond(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (len(head) + len(tail)) + head)
        first_seen.wait(10)  # the rest only once the client has the first piece
        s.sendall(tail)

    with tls_server(material, respond) as port:
        resp = get(material, port)
        pieces = up.stream(resp)
        started = time.monotonic()
        first = next(pieces)
        waited = time.monotonic() - started
        first_seen.set()
        rest = b"".join(pieces)
    assert first == head
    assert waited < 5
    assert first + rest == head + tail


def test_a_body_cut_short_over_tls_is_an_error(material):
    def respond(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500000\r\n\r\n" + os.urandom(200_000))
        s.shutdown(socket.SHUT_RDWR)

    with tls_server(material, respond) as port:
        resp = get(material, port)
        with pytest.raises(up.UpstreamError):
            for _ in up.stream(resp):
                pass
