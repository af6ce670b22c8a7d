"""Reading an upstream body over TLS: records that have arrived are joined, nothing waits."""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


# -- the direct TLS reader: lengths, connection reuse, chunked, gzip ----------------------

class KeepAliveServer:
    """An HTTPS server on a real socket that answers every request on a connection in turn
    (``answers`` is consumed in order) and counts the connections it accepted."""

    def __init__(self, material: tls.TLSMaterial, answers: list[bytes | Callable[..., None]]
                 ) -> None:
        self.ctx = tls.server_context(material.server_cert, material.server_key, None)
        self.answers = answers
        self.accepted = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.connection, args=(conn,), daemon=True).start()

    def connection(self, conn: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as s:
                buf = b""
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        more = s.recv(4096)
                        if not more:
                            return
                        buf += more
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                    answer = self.answers.pop(0)
                    if callable(answer):
                        answer(s)
                    else:
                        s.sendall(answer)
        except OSError:
            return

    def close(self) -> None:
        self.lsock.close()


def answer(body: bytes, *headers: str) -> bytes:
    head = "".join(h + "\r\n" for h in headers)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (len(body), head.encode())) + body


def chunked_answer(pieces: list[bytes]) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in pieces:
        out += b"%x\r\n%s\r\n" % (len(p), p)
    return out + b"0\r\n\r\n"


def read_whole(pool: urllib3.HTTPSConnectionPool, timeout: float = 10.0) -> bytes:
    """What the hub does: stream the body, then hand the connection back to the pool."""
    resp = pool.urlopen("GET", "/api/v1/pods", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=timeout))
    body = b"".join(up.stream(resp))
    up.finish(resp, True)
    return body


@pytest.fixture
def pool_for(material):
    made: list[Any] = []

    def make(server: KeepAliveServer) -> urllib3.HTTPSConnectionPool:
        made.append(server)
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", server.port,
                                           ca_certs=material.ca_cert, retries=False, maxsize=1)
        made.append(pool)
        return pool

    yield make
    for thing in made:
        thing.close()


def test_big_tls_bodies_one_after_another_reuse_one_connection(material, pool_for):
    bodies = [os.urandom(3 * MiB + 17), os.urandom(200_001), b'{"kind":"Status"}',
              os.urandom(2 * MiB)]
    server = KeepAliveServer(material, [answer(b) for b in bodies])
    pool = pool_for(server)
    got = [read_whole(pool) for _ in bodies]
    assert [len(b) for b in got] == [len(b) for b in bodies]
    assert got == bodies
    assert server.accepted == 1  # the connection went back to the pool each time


def test_a_gzip_body_over_tls_passes_as_the_server_sent_it(material, pool_for):
    plain = b'{"kind":"PodList","items":[' + b",".join(
        b'{"metadata":{"name":"pod-%d"}}' % i for i in range(60_000)) + b"]}"
    packed = gzip.compress(plain, compresslevel=1)
    assert len(packed) > up.JOIN_BELOW
    server = KeepAliveServer(material, [answer(packed, "Content-Encoding: gzip"),
                                        answer(b"{}")])
    pool = pool_for(server)
    body = read_whole(pool)
    assert body == packed
    assert gzip.decompress(body) == plain
    assert read_whole(pool) == b"{}"
    assert server.accepted == 1


def test_a_chunked_body_over_tls_still_comes_whole_and_reuses_the_connection(material,
                                                                             pool_for):
    pieces = [os.urandom(100_000), b'{"type":"ADDED"}\n', os.urandom(300_000)]
    big = os.urandom(MiB)
    server = KeepAliveServer(material, [chunked_answer(pieces), answer(big)])
    pool = pool_for(server)
    assert read_whole(pool) == b"".join(pieces)
    assert read_whole(pool) == big
    assert server.accepted == 1


def test_bytes_past_the_content_length_are_never_read_as_the_next_answer(material, pool_for):
    body = os.urandom(500_000)
    server = KeepAliveServer(material, [answer(body) + b"HTTP/1.1 200 OK\r\ngarbage",
                                        answer(b'{"second":true}')])
    pool = pool_for(server)
    assert read_whole(pool) == body  # exactly the announced length
    # The stray bytes make the pooled connection look dropped: a new one is opened.
    assert read_whole(pool) == b'{"second":true}'
    assert server.accepted == 2


def test_a_tls_body_that_stalls_ends_with_an_error_at_the_read_timeout(material, pool_for):
    release = threading.Event()

    def stall(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 400000\r\n\r\n" + os.urandom(100_000))
        release.wait(30)

    server = KeepAliveServer(material, [stall])
    pool = pool_for(server)
    try:
        with pytest.raises(up.UpstreamError, match="timed out"):
            read_whole(pool, timeout=0.5)
    finally:
        release.set()


def test_a_tls_read_blocked_mid_body_is_interrupted_from_another_thread(material, pool_for):
    release = threading.Event()

    def stall(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 400000\r\n\r\n" + os.urandom(100_000))
        release.wait(30)

    server = KeepAliveServer(material, [stall])
    pool = pool_for(server)
    resp = pool.urlopen("GET", "/", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=60))
    got = bytearray()
    pieces = up.stream(resp)
    got += next(pieces)
    threading.Timer(0.3, up.interrupt, args=(resp,)).start()
    try:
        with pytest.raises(up.UpstreamError):
            for piece in pieces:
                got += piece
    finally:
        release.set()
        up.finish(resp, False)
    assert 0 < len(got) <= 100_000


def test_interrupting_a_response_that_already_ended_is_harmless(material, pool_for):
    """A watch's reader may end (the body closed, its connection back in the pool) just as
    another thread interrupts it, e.g. a reflector being stopped: nothing to wake, no error."""
    def small(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    server = KeepAliveServer(material, [small])
    pool = pool_for(server)
    resp = pool.urlopen("GET", "/", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=10))
    assert b"".join(up.stream(resp)) == b"hello"
    up.finish(resp, True)
    up.interrupt(resp)  # must not raise
