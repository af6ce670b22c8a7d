"""Chunked answers through the worker's WSGI call and gunicorn's own Response: the bytes on
the wire are gunicorn's framing, but each piece reaches the kernel as it is (no copy)."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

import pytest
from gunicorn import http
from gunicorn.config import Config
from gunicorn.http import wsgi

from yurthub.worker.chunked import ChunkedWrites, send_chunk, writes_chunks
from yurthub.worker.serving import ThreadSide
from yurthub.worker.settings import WorkerSettings


class Recording:
    """A plain socket that remembers the buffers handed to sendall and sendmsg."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls: list[tuple[str, list[Any]]] = []

    def sendall(self, data: Any) -> None:
        self.calls.append(("sendall", [data]))
        self.sock.sendall(data)

    def sendmsg(self, buffers: list[Any]) -> int:
        self.calls.append(("sendmsg", list(buffers)))
        return self.sock.sendmsg(buffers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class Side(ThreadSide):
    def __init__(self, app: Any) -> None:
        self._app = app
        self._local = threading.local()
        self.settings = WorkerSettings()


def serve(app: Any, sock: Any, request: bytes = b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n"
          ) -> None:
    """One request as gunicorn's gthread handle_request serves it, on ``sock``."""
    cfg = Config()
    peer, client = socket.socketpair()
    try:
        client.sendall(request)
        req = next(http.RequestParser(cfg, peer, ("127.0.0.1", 1)))
    finally:
        peer.close()
        client.close()
    resp, environ = wsgi.create(req, sock, ("127.0.0.1", 1), ("127.0.0.1", 2), cfg)
    body = Side(app)._call_app(environ, resp.start_response)
    try:
        for item in body:
            resp.write(item)
        resp.close()
    finally:
        if hasattr(body, "close"):
            body.close()


def read_until_closed(sock: socket.socket, out: bytearray) -> None:
    while data := sock.recv(1 << 20):
        out += data


def unchunk(wire: bytes) -> tuple[bytes, list[bytes]]:
    head, _, rest = wire.partition(b"\r\n\r\n")
    pieces = []
    while True:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line, 16)
        if not size:
            assert rest == b"\r\n"
            return head, pieces
        pieces.append(rest[:size])
        assert rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]


BIG = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit


def pieces_app(pieces: list[bytes], headers: list[tuple[str, str]] | None = None) -> Any:
    closed = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/json"), *(headers or [])])

        class Body:
            def __iter__(self) -> Any:
                return iter(pieces)

            def close(self) -> None:
                closed.append(True)
        return Body()
    app.closed = closed  # type: ignore[attr-defined]
    return app


def test_a_big_chunked_piece_reaches_the_kernel_without_a_copy():
    """kubelet's filtered pod list (48 MB) is sent chunked: gunicorn joined each 256 KiB
    piece with its size line into a new bytes before sendall, a copy of the whole list on
    the request thread; now the piece itself is one of sendmsg's buffers."""
    a, b = socket.socketpair()
    got = bytearray()
    reader = threading.Thread(target=read_until_closed, args=(b, got))
    reader.start()
    rec = Recording(a)
    app = pieces_app([b'{"kind":"PodList"', BIG, b"", b"]}"])
    try:
        serve(app, rec)
    finally:
        a.close()
        reader.join()
        b.close()
    head, pieces = unchunk(bytes(got))
    assert b"Transfer-Encoding: chunked" in head
    assert pieces == [b'{"kind":"PodList"', BIG, b"]}"]
    assert any(buf is BIG for kind, bufs in rec.calls if kind == "sendmsg" for buf in bufs)
    assert not [b for kind, bufs in rec.calls for b in bufs if len(b) > len(BIG)]  # joined
    assert app.closed == [True]


def test_partial_sends_keep_the_framing_exact():
    """A client reading slowly: sendmsg takes part of a chunk at a time."""
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.settimeout(20)
    got = bytearray()
    reader = threading.Thread(target=read_until_closed, args=(b, got))
    reader.start()
    rec = Recording(a)
    pieces = [BIG[:n] for n in (1, 15, 16, 4095, 70_000)] + [BIG]
    try:
        serve(pieces_app(pieces), rec)
    finally:
        a.close()
        reader.join()
        b.close()
    assert unchunk(bytes(got))[1] == pieces
    assert len([k for k, _ in rec.calls if k == "sendmsg"]) > len(pieces)  # it was partial


def test_a_client_that_stops_reading_times_out_and_the_socket_keeps_its_timeout():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.settimeout(0.2)
    try:
        with pytest.raises(TimeoutError):
            send_chunk(a, BIG * 4)
        assert a.gettimeout() == 0.2
    finally:
        a.close()
        b.close()


def test_answers_with_a_length_and_head_requests_are_gunicorns_to_write():
    a, b = socket.socketpair()
    rec = Recording(a)
    try:
        serve(pieces_app([b"abc", b"de"], [("Content-Length", "5")]), rec)
        serve(pieces_app([b"abc"]), rec, b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n")
        serve(pieces_app([b"abc"]), rec, b"GET /x HTTP/1.0\r\n\r\n")
    finally:
        a.close()
    assert [k for k, _ in rec.calls] == ["sendall"] * len(rec.calls)
    wire = b.recv(1 << 16)
    b.close()
    assert wire.count(b"abcde") == 1 and b"Transfer-Encoding" not in wire


def test_tls_sockets_have_no_sendmsg_and_stay_gunicorns():
    ctx = ssl.create_default_context()
    raw = socket.socket()
    try:
        tls = ctx.wrap_socket(raw, do_handshake_on_connect=False, server_hostname="x")
        resp = type("R", (), {"chunked": True, "send_headers": None, "sent": 0, "sock": tls})
        assert not writes_chunks(resp)
        resp.sock = raw
        assert writes_chunks(resp)
    finally:
        raw.close()


def test_close_reaches_the_apps_body_even_when_unread():
    app = pieces_app([b"x"])
    body = ChunkedWrites(app({}, lambda *a: None), object())
    body.close()
    assert app.closed == [True]
