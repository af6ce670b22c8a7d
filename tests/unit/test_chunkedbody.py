"""A chunked upstream body read straight from the socket: the chunks that have arrived go on
as one piece, the framing checked, the connection reused (yurthub.chunkedbody)."""

from __future__ import annotations

import os
import random
import socket
import ssl
import threading
import time
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

from kubesandbox import tls
from tests.unit.test_upstream_stream import KeepAliveServer, answer, chunked_answer
from yurthub import upstream as up
from yurthub.chunkedbody import MAX_LINE, ChunkDecoder

MiB = 1 << 20


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> tls.TLSMaterial:
    return tls.make_self_signed(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def pool_for(material):
    made: list[Any] = []

    def make(server: KeepAliveServer) -> urllib3.HTTPSConnectionPool:
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", server.port,
                                           ca_certs=material.ca_cert, retries=False, maxsize=1)
        made.extend((server, pool))
        return pool

    yield make
    for thing in made:
        thing.close()


def framed(pieces: list[bytes], *, ext: bool = False, trailers: bytes = b"") -> bytes:
    out = b""
    for i, p in enumerate(pieces):
        size = b"%x" % len(p) if not (ext and i % 2) else b"%X ; name=value" % len(p)
        out += size + b"\r\n" + p + b"\r\n"
    return out + b"0\r\n" + trailers + b"\r\n"


def decode(body: bytes, cuts: list[int]) -> tuple[bytes, ChunkDecoder]:
    dec = ChunkDecoder()
    out = b""
    pos = 0
    for cut in [*cuts, len(body)]:
        piece = bytearray(body[pos:cut]) + bytearray(b"junk past the piece's end")
        out += b"".join(dec.feed(piece, cut - pos))
        pos = cut
    return out, dec


@pytest.mark.parametrize("seed", range(30))
def test_the_payload_comes_out_whatever_the_pieces_fed(seed):
    rng = random.Random(seed)
    pieces = [os.urandom(rng.choice([1, 2, 15, 16, 2048, 5000, 70_000]))
              for _ in range(rng.randint(0, 40))]
    trailers = rng.choice([b"", b"X-Trailer: 1\r\n", b"A: b\r\nC: d\r\n"])
    body = framed(pieces, ext=rng.random() < 0.3, trailers=trailers)
    cuts = sorted(rng.sample(range(len(body)), min(len(body), rng.randint(0, 50))))
    out, dec = decode(body, cuts)
    assert out == b"".join(pieces)
    assert dec.done and dec.extra == b""


def test_what_follows_the_last_chunk_is_kept_apart():
    out, dec = decode(framed([b"abc"]) + b"HTTP/1.1 200 OK\r\n", [])
    assert out == b"abc" and dec.done and dec.extra == b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize("body", [
    b"zz\r\nab\r\n0\r\n\r\n",                 # not hex
    b"-2\r\nab\r\n0\r\n\r\n",                 # negative
    b"\r\nab\r\n0\r\n\r\n",                   # no size
    b"2\r\nabc\r\n0\r\n\r\n",                 # more data than announced
    b"2\nab\r\n0\r\n\r\n",                    # a bare LF after the size
    b"2\r\nab\n0\r\n\r\n",                    # a bare LF after the data
    b"1" * 17 + b"\r\n",                      # a size of more than 64 bits
    b"1;" + b"x" * MAX_LINE + b"\r\n",        # an endless extension
    b"0\r\n" + b"T: " + b"x" * MAX_LINE + b"\r\n\r\n",  # endless trailers
])
@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_bad_framing_is_an_error(body, step):
    with pytest.raises(ProtocolError):
        decode(body, list(range(step, len(body), step)))


def test_a_body_without_its_last_chunk_is_not_done():
    _, dec = decode(framed([b"abc", b"defg"])[:-5], [])
    assert not dec.done


# -- from a real socket -------------------------------------------------------------------

def read_pieces(pool: urllib3.HTTPConnectionPool, timeout: float = 10.0) -> list[bytes]:
    """What the hub does with a list: stream it coalesced, hand the connection back."""
    resp = pool.urlopen("GET", "/api/v1/pods", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=timeout))
    pieces = []
    for piece in up.stream(resp, coalesce=True):
        pieces.append(piece)
        time.sleep(0.01)  # a busy request thread: meanwhile more chunks arrive
    up.finish(resp, True)
    return pieces


def go_chunks(payload: bytes, size: int = 2048) -> list[bytes]:
    return [payload[i:i + size] for i in range(0, len(payload), size)]


def test_small_chunks_that_arrived_come_as_one_piece_and_the_connection_is_reused(
        material, pool_for):
    """kube-apiserver's lists come in chunks of a few KiB: the hub hands on (sends, tees,
    filters) what has arrived together, not 2 KiB at a time."""
    payload = os.urandom(3 * MiB + 5)
    chunks = go_chunks(payload)
    server = KeepAliveServer(material, [chunked_answer(chunks), answer(b'{"next":1}'),
                                        chunked_answer(go_chunks(b"[1,2,3]" * 1000, 100))])
    pool = pool_for(server)
    pieces = read_pieces(pool)
    assert b"".join(pieces) == payload
    assert len(pieces) <= len(chunks) // 16, [len(p) for p in pieces]
    assert b"".join(read_pieces(pool)) == b'{"next":1}'
    assert b"".join(read_pieces(pool)) == b"[1,2,3]" * 1000
    assert server.accepted == 1  # the connection went back to the pool each time


@pytest.mark.parametrize("chunked", [True, False])
def test_a_slow_client_holds_at_most_256_kib_of_the_upstream_body_at_a_time(
        material, pool_for, chunked):
    """Each piece is held until the client took it: with a slow reader the kernel has
    megabytes ready, and a request must not take them all at once (issue 17: 100 slow
    readers of a list held 1 MiB each)."""
    payload = os.urandom(6 * MiB)
    body = chunked_answer(go_chunks(payload, 16384)) if chunked else answer(payload)
    pool = pool_for(KeepAliveServer(material, [body]))
    resp = pool.urlopen("GET", "/api/v1/pods", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=10))
    pieces = []
    for piece in up.stream(resp, coalesce=True):
        pieces.append(len(piece))
        time.sleep(0.05)  # the client reads slowly: the upstream's bytes pile up
    up.finish(resp, True)
    assert sum(pieces) == len(payload)
    assert max(pieces) <= 256 << 10, pieces


def test_an_answer_to_head_is_not_read_for_a_body(material, pool_for):
    """Transfer-Encoding: chunked on the answer to a HEAD, which has no body: nothing to
    wait for."""
    server = KeepAliveServer(material, [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", answer(b"{}")])
    pool = pool_for(server)
    resp = pool.urlopen("HEAD", "/", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=5))
    assert b"".join(up.stream(resp, coalesce=True)) == b""
    up.finish(resp, True)


def test_without_coalescing_a_watch_keeps_one_piece_per_chunk(material, pool_for):
    events = [b'{"type":"ADDED","object":{"n":%d}}\n' % i for i in range(5)]
    server = KeepAliveServer(material, [chunked_answer(events)])
    pool = pool_for(server)
    resp = pool.urlopen("GET", "/", preload_content=False, release_conn=False,
                        decode_content=False)
    assert list(up.stream(resp)) == events
    up.finish(resp, True)


def test_a_chunk_never_waits_for_chunks_that_have_not_arrived(material, pool_for):
    more = threading.Event()
    first = [b'{"kind":"PodList","items":[', b'{"a":1}']

    def slow(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  framed(first)[:-5])  # the chunks, not the last one
        more.wait(10)
        s.sendall(b"2\r\n]}\r\n0\r\n\r\n")

    server = KeepAliveServer(material, [slow])
    pool = pool_for(server)
    resp = pool.urlopen("GET", "/", preload_content=False, release_conn=False,
                        decode_content=False)
    pieces = up.stream(resp, coalesce=True)
    got = next(pieces)
    while len(got) < len(b"".join(first)):
        got += next(pieces)
    assert got == b"".join(first)  # before the rest was even sent
    more.set()
    assert b"".join(pieces) == b"]}"
    up.finish(resp, True)


@pytest.mark.parametrize("cut", ["mid-data", "before the last chunk", "mid-size"])
def test_a_chunked_body_cut_short_is_an_error(material, pool_for, cut):
    body = framed(go_chunks(os.urandom(300_000)))
    end = {"mid-data": len(body) // 2, "before the last chunk": len(body) - 5,
           "mid-size": body.index(b"\r\n", 100_000) - 1}[cut]

    def short(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body[:end])
        s.shutdown(socket.SHUT_RDWR)

    server = KeepAliveServer(material, [short])
    pool = pool_for(server)
    with pytest.raises(up.UpstreamError):
        read_pieces(pool)


def test_bad_framing_from_the_server_is_an_error(material, pool_for):
    server = KeepAliveServer(material, [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        b"10\r\n0123456789abcdef\r\nnot a size\r\n"])
    pool = pool_for(server)
    with pytest.raises(up.UpstreamError, match="chunk size"):
        read_pieces(pool)


def test_bytes_past_the_last_chunk_are_never_read_as_the_next_answer(material, pool_for):
    server = KeepAliveServer(material, [chunked_answer([b"abc"]) + b"HTTP/1.1 200 OK\r\nxx",
                                        answer(b'{"second":true}')])
    pool = pool_for(server)
    assert b"".join(read_pieces(pool)) == b"abc"
    assert b"".join(read_pieces(pool)) == b'{"second":true}'
    assert server.accepted == 2


def test_a_chunked_body_that_stalls_ends_with_an_error_at_the_read_timeout(material,
                                                                           pool_for):
    release = threading.Event()

    def stall(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        release.wait(30)

    server = KeepAliveServer(material, [stall])
    pool = pool_for(server)
    try:
        with pytest.raises(up.UpstreamError, match="timed out"):
            read_pieces(pool, timeout=0.5)
    finally:
        release.set()


def test_a_chunked_body_over_plain_http_is_read_the_same_way():
    payload = os.urandom(MiB)
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]

    def serve() -> None:
        conn, _ = lsock.accept()
        with conn:
            for reply in (chunked_answer(go_chunks(payload)), answer(b"{}")):
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(4096)
                conn.sendall(reply)
            conn.recv(1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False, maxsize=1)
    try:
        pieces = read_pieces(pool)
        assert b"".join(pieces) == payload
        assert len(pieces) < len(payload) // 2048 // 16
        assert b"".join(read_pieces(pool)) == b"{}"  # on the same connection
    finally:
        pool.close()
        lsock.close()
        t.join(5)


def test_a_chunked_read_blocked_mid_body_is_interrupted_from_another_thread(material,
                                                                            pool_for):
    release = threading.Event()

    def stall(s: ssl.SSLSocket) -> None:
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  framed(go_chunks(os.urandom(100_000)))[:-5])
        release.wait(30)

    server = KeepAliveServer(material, [stall])
    pool = pool_for(server)
    resp = pool.urlopen("GET", "/", preload_content=False, release_conn=False,
                        decode_content=False, timeout=urllib3.Timeout(connect=5, read=60))
    pieces = up.stream(resp, coalesce=True)
    got = bytearray(next(pieces))
    threading.Timer(0.3, up.interrupt, args=(resp,)).start()
    try:
        with pytest.raises(up.UpstreamError):
            for piece in pieces:
                got += piece
    finally:
        release.set()
        up.finish(resp, False)
    assert 0 < len(got) <= 100_000
