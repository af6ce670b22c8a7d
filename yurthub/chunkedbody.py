"""An upstream body read straight from the socket: HTTP chunks that have arrived are handed
on together, not one by one; a TLS body with a length is decrypted into one reused buffer
(``read_length``).

design: kube-apiserver sends a big list with ``Transfer-Encoding: chunked`` (its length is
not known up front) in small chunks: Go's server writes each ``Write`` of the encoder as a
chunk of at most a few KiB (a streamed list item by item, gzip in 2 KiB pieces).  Through
urllib3 and http.client every chunk costs a stack of Python calls, and the hub then sent,
teed and filtered each one on its own: 48 MB in 2 KiB chunks took the request thread 3-4
times the CPU of the same body with a length.  Here, once http.client has parsed the
headers, ``read_chunked`` takes what has arrived (up to STREAM_CHUNK) from the socket
into one reused buffer, ``ChunkDecoder`` (pure) strips the framing, and the payload of all
those chunks goes on as one piece.  Only for bodies whose pieces need not keep the
upstream's chunk boundaries: a watch's events still come one per chunk (upstream.stream).

The framing is checked as RFC 9112 writes it (hex sizes, CRLF after each chunk's data,
chunk extensions and trailers skipped, lines of at most MAX_LINE bytes); anything else, or
the body ending before its last chunk, is a ProtocolError.  At the end the connection goes
back to the pool as after any read, unless the server sent more than the body.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from urllib3.exceptions import ProtocolError

STREAM_CHUNK = 1 << 18  # held per request until sent: 256 KiB keeps many slow readers cheap
MAX_LINE = 64 << 10  # a chunk-size line or the trailers, as http.client's limit
_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")
_NEXT = re.compile(rb"\r\n([0-9A-Fa-f]{1,16})\r\n")  # a chunk's end, the next one's size

_SIZE_LINE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkDecoder:
    """The payload of a chunked body, fed the body's bytes in any pieces.

    ``feed`` returns the payload the piece completes, as memoryviews of the piece (valid
    while it is not overwritten); ``done`` once the last chunk and its trailers were read;
    ``extra`` holds what the piece held past that.
    """

    def __init__(self) -> None:
        self.state = _SIZE_LINE
        self.left = 0          # bytes of the current chunk's data still to come
        self._line = b""       # a size line, CRLF or trailer line cut by the piece's end
        self._trailer = 0      # bytes of trailers read
        self.extra = b""

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def feed(self, data: bytes | bytearray, end: int | None = None) -> list[memoryview]:
        """Payload in ``data[:end]``; ProtocolError on bad framing."""
        out: list[memoryview] = []
        pos, end = 0, len(data) if end is None else end
        mv = memoryview(data)
        while pos < end:
            state = self.state
            if state == _DATA:
                n = min(self.left, end - pos)
                out.append(mv[pos:pos + n])
                pos += n
                self.left -= n
                if not self.left:
                    self.state = _DATA_END
                    # most often the next chunk's size line is here whole: read at once
                    m = _NEXT.match(data, pos, end)
                    if m is not None:
                        pos = m.end()
                        self.left = int(m.group(1), 16)
                        self.state = _DATA if self.left else _TRAILER
                continue
            if state == _DONE:
                self.extra = bytes(data[pos:end])
                break
            line, pos = self._take_line(data, pos, end)
            if line is None:
                break  # the line goes on in the next piece
            if state == _DATA_END:
                if line:
                    raise ProtocolError("no CRLF after a chunk's data")
                self.state = _SIZE_LINE
            elif state == _SIZE_LINE:
                m = _SIZE.fullmatch(line)
                if m is None:
                    raise ProtocolError(f"bad chunk size line {line[:40]!r}")
                self.left = int(m.group(1), 16)
                self.state = _DATA if self.left else _TRAILER
            elif not line:  # _TRAILER: an empty line ends the body
                self.state = _DONE
        return out

    def _take_line(self, data: bytes | bytearray, pos: int, end: int
                   ) -> tuple[bytes | None, int]:
        """The line starting at ``pos`` without its line end and the position after it, or
        (None, end) when the piece ends first (the part read is kept)."""
        nl = data.find(b"\n", pos, end)
        if nl < 0:
            self._line += bytes(data[pos:end])
            self._check_length(len(self._line))
            return None, end
        line = self._line + bytes(data[pos:nl])
        self._line = b""
        self._check_length(len(line))
        if self.state == _TRAILER:
            self._trailer += len(line)
            self._check_length(self._trailer)
        if line.endswith(b"\r"):
            line = line[:-1]
        elif self.state != _TRAILER:
            raise ProtocolError("a chunk's line ends without CRLF")
        return line, nl + 1

    @staticmethod
    def _check_length(n: int) -> None:
        if n > MAX_LINE:
            raise ProtocolError(f"a chunk-size line or trailers of more than {MAX_LINE} bytes")


def read_chunked(resp: Any, fp: Any, sock: socket.socket) -> Iterator[bytes]:
    """The payload of ``resp``'s chunked body, what has arrived as one piece each time.

    ``fp`` is http.client's response (headers parsed, nothing of the body read), ``sock``
    its connection's socket.  Raises ProtocolError when the framing is bad or the body
    ends before its last chunk, TimeoutError after the socket's timeout without a byte.
    """
    timeout = sock.gettimeout()
    dec = ChunkDecoder()
    first = fp.fp.read1(STREAM_CHUNK)  # what http.client's reader holds, or one read
    if not first:
        raise ProtocolError("the body ended before its first chunk")
    piece = dec.feed(first)
    if piece:
        yield b"".join(piece)
    buf = bytearray(STREAM_CHUNK)
    view = memoryview(buf)
    sock.settimeout(0.0)
    try:
        while not dec.done:
            got, ended = recv_arrived(sock, view, STREAM_CHUNK, timeout)
            if ended and not got:
                raise ProtocolError("the body ended before its last chunk")
            piece = dec.feed(buf, got)
            if piece:
                yield b"".join(piece)
    finally:
        view.release()
        restore_timeout(sock, timeout)
    fp.chunk_left = 0
    body_ended(resp, fp, sock, stray=bool(dec.extra))


def read_length(resp: Any, fp: Any, sock: ssl.SSLSocket, left: int) -> Iterator[bytes]:
    """The ``left`` bytes of a TLS body with a length, straight from the socket: records
    decrypted into one reused buffer, as many as have arrived, each piece a new ``bytes``
    (upstream._direct says when this applies)."""
    timeout = sock.gettimeout()
    # First what the buffered reader holds (after read1 of at least that much it is
    # empty), or one record when it holds nothing.
    pending = fp.fp.read1(min(left, STREAM_CHUNK))
    if not pending:
        raise ProtocolError(f"body ended {left} bytes short of its Content-Length")
    buf = bytearray(min(left, STREAM_CHUNK))
    view = memoryview(buf)
    sock.settimeout(0.0)
    try:
        while left:
            size = min(left, STREAM_CHUNK)
            got = len(pending)
            if got:
                view[:got] = pending
                pending = b""
            if got < size:
                n, ended = recv_arrived(sock, view[got:], size - got, timeout,
                                                    wait=not got)
                got += n
                if ended:
                    raise ProtocolError(f"body ended {left - got} bytes short of its "
                                        "Content-Length")
            left -= got
            fp.length = left
            yield bytes(view[:got])
    finally:
        view.release()
        restore_timeout(sock, timeout)
    body_ended(resp, fp, sock)


def restore_timeout(sock: socket.socket, timeout: float | None) -> None:
    """Give the socket back its blocking timeout after a direct read."""
    try:
        sock.settimeout(timeout)
    except OSError:
        pass  # why: the connection was closed meanwhile; it is not reused


def body_ended(resp: Any, fp: Any, sock: socket.socket, *, stray: bool = False) -> None:
    """The body was read whole, straight from the socket: the connection goes back to the
    pool, unless the server sent more than the body (``stray``, or bytes the TLS layer
    holds already): the pool then opens a new one, stray bytes are never an answer."""
    fp.close()
    pending = getattr(sock, "pending", None)
    if stray or (pending is not None and pending()):
        conn = getattr(resp, "_connection", None) or getattr(resp, "connection", None)
        if conn is not None:
            conn.close()


def recv_arrived(sock: socket.socket, view: memoryview, size: int, timeout: float | None,
                 *, wait: bool = True) -> tuple[int, bool]:
    """Read into ``view[:size]`` from a non-blocking ``sock`` what has arrived: waits (up
    to ``timeout``) only for the first byte, and not at all without ``wait`` (the caller
    holds bytes to hand on already).  Returns (bytes read, whether the peer closed the
    connection)."""
    got = 0
    while got < size:
        try:
            n = sock.recv_into(view[got:size], size - got)
        except (ssl.SSLWantReadError, BlockingIOError):
            if got or not wait:
                break  # hand on what has arrived
            wait_ready(sock, select.POLLIN, timeout)
            continue
        except ssl.SSLWantWriteError:  # a TLS 1.2 renegotiation
            wait_ready(sock, select.POLLOUT, timeout)
            continue
        if not n:
            return got, True
        got += n
    return got, False


def wait_ready(sock: socket.socket, event: int, timeout: float | None) -> None:
    """Wait for ``sock`` to be ready, as a blocking read with ``timeout`` would."""
    poller = select.poll()
    poller.register(sock.fileno(), event)
    if not poller.poll(None if timeout is None else timeout * 1000):
        raise TimeoutError(f"read timed out after {timeout} s")
