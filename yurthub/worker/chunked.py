"""Chunked answers written without a copy of their pieces: each piece goes to the kernel
with its size line and CRLF in one ``sendmsg`` (writev).

design: gunicorn frames every piece of an answer without a length (kubelet's filtered pod
list, a watch) as one HTTP chunk by joining the size line, the piece and CRLF into a new
``bytes`` (``gunicorn.util.write_chunk``) and ``sendall``-ing that: a second copy of
every byte the hub streams (48 MB for kubelet's 10,000 pods, ~2 ms of the request
thread's CPU).  ``ChunkedWrites`` wraps the app's iterable and, once gunicorn's
``Response`` has decided on chunked framing, writes each piece itself on a plain socket
and hands gunicorn nothing for it; gunicorn's bookkeeping stays its own: the head goes
first (``send_headers``), the bytes count for the access log (``sent``), and its
``close`` writes the last chunk.  A TLS socket has no ``sendmsg``: gunicorn writes those
pieces as before, and every piece of an answer with a length or none (HEAD, 204, 304).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

_CRLF = b"\r\n"


def send_chunk(sock: Any, piece: bytes) -> None:
    """``piece`` as one HTTP chunk on the plain socket ``sock``: the bytes gunicorn's
    ``write_chunk`` sends, all of them, within the socket's timeout for the whole chunk
    (``sendall``'s contract; TimeoutError past it)."""
    parts: list[Any] = [b"%X\r\n" % len(piece), piece, _CRLF]
    timeout = sock.gettimeout()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            parts = _after(parts, sock.sendmsg(parts))
            if not parts:
                return
            if deadline is not None:   # a partial send: what is left has the time left
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(left)
    finally:
        if deadline is not None and sock.gettimeout() != timeout:
            sock.settimeout(timeout)


def _after(parts: list[Any], sent: int) -> list[Any]:
    """What is left of ``parts`` after ``sent`` bytes of them went out."""
    for i, p in enumerate(parts):
        if sent < len(p):
            rest = parts[i:]
            if sent:
                rest[0] = memoryview(p)[sent:]
            return rest
        sent -= len(p)
    return []


def writes_chunks(resp: Any) -> bool:
    """Whether ``resp`` (gunicorn's Response: both 20.1 and 27 have these) may have its
    chunks written by ``send_chunk``: a plain socket with ``sendmsg``."""
    sock = getattr(resp, "sock", None)
    return (all(hasattr(resp, a) for a in ("chunked", "send_headers", "sent"))
            and hasattr(sock, "sendmsg") and not isinstance(sock, ssl.SSLSocket))


class ChunkedWrites:
    """The app's body as gunicorn iterates it, each piece of a chunked answer written here
    (and not handed on); ``close`` closes the app's body."""

    def __init__(self, body: Iterable[bytes], resp: Any) -> None:
        self._body = body
        self._resp = resp

    def __iter__(self) -> Iterator[bytes]:
        resp = self._resp
        for piece in self._body:
            # resp.chunked is known once start_response ran, before the first piece; an
            # empty piece is gunicorn's to skip (it would end the answer), a str its to
            # refuse.
            if not (resp.chunked and piece and type(piece) is bytes):
                yield piece
                continue
            resp.send_headers()
            resp.sent += len(piece)
            send_chunk(resp.sock, piece)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


__all__ = ["ChunkedWrites", "send_chunk", "writes_chunks"]
