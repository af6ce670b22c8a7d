"""One client connection in the worker's loop: its state, its request head being read, its
deadline, and the non-blocking TLS handshake of a wrapped listener.

A connection takes a thread only once its whole request has arrived: its head, then its
body (``bodies``: a length or chunked, at most kube-apiserver's 3 MiB).  Until then it lives
here, read by the loop thread with non-blocking ``recv``: an idle or slow client costs a
descriptor and a buffer (bytes beyond ``SMALL_HEAD`` charged to one budget), never a thread.
"""

from __future__ import annotations

import enum
import errno
import os
import socket
import ssl
from typing import Any

from yurthub.connection import ConnectionInfo
from yurthub.worker import bodies
from yurthub.worker.bodies import Framing
from yurthub.worker.limits import MAX_HEAD, HeadBudget, Lane, head_end, skip_empty_lines
from yurthub.worker.settings import ListenerSpec

_RECV = 64 * 1024
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class State(enum.Enum):
    HANDSHAKE = "handshake"   # TLS handshake under way (wrapped listeners only)
    HEAD = "head"             # reading a request head
    IDLE = "idle"             # kept alive, waiting for the next request
    BUSY = "busy"             # a thread has it (queued in a pool, or serving)
    LINGER = "linger"         # refused: what the client still sends is dropped, then close
    CLOSED = "closed"


class Read(enum.Enum):
    MORE = "more"             # wait for more bytes
    COMPLETE = "complete"     # the request is whole: hand the connection to a thread
    CLOSED = "closed"         # the client closed (or reset) the connection
    TOO_LARGE = "too-large"   # the head outgrew MAX_HEAD
    CROWDED = "crowded"       # the request outgrew SMALL_HEAD and the HeadBudget is spent
    BODY_TOO_LARGE = "body-too-large"  # the body is longer than bodies.MAX_BODY
    WANT_WRITE = "want-write"  # TLS needs to write before it can read
    TLS_HELLO = "tls-hello"   # a TLS handshake on a plain listener (an https:// client)


class Conn:
    """A connection of the worker.  ``sock``, ``client`` and ``server`` are what gunicorn's
    request handling reads from its own connection objects."""

    def __init__(self, sock: socket.socket, client: Any, server: Any, listener: ListenerSpec,
                 info: ConnectionInfo, heads: HeadBudget | None = None) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.listener = listener
        self.info = info
        self.state = State.HEAD
        self.buf = bytearray()
        self._searched = 0
        self.head_len = 0            # the head's length once it is whole (0: not yet)
        self.framing = Framing()     # its body, once the head is whole
        self._chunk_at = 0           # where the walk of a chunked body resumes
        self.in_body = False         # the head is whole, the body still arriving
        self.body_timed = False      # the body's deadline is set
        self.deadline = 0.0
        self.generation = 0          # bumped whenever the deadline changes
        self.lane: Lane | None = None
        self.registered = 0          # selector events registered for (0: none)
        self.heads = heads if heads is not None else HeadBudget()
        self.charged = 0             # bytes of self.heads this connection's request holds
        self.dropped = 0             # bytes read and dropped after a refusal (LINGER)
        self.refusal: bytes | None = None  # refused: the answer sent after the TLS handshake
        # Whose share of self.heads it is charged to: its peer user (None: not known).
        self.owner: object = ("uid", info.uid) if info.identified else None

    def fileno(self) -> int:
        return self.sock.fileno()

    def set_deadline(self, when: float) -> int:
        self.deadline = when
        self.generation += 1
        return self.generation

    # -- reading the head (loop thread, non-blocking socket) ----------------------------------

    def read_head(self) -> Read:
        """Take what has arrived; say whether the head is whole yet."""
        while True:
            try:
                data = self.sock.recv(_RECV)
            except ssl.SSLWantReadError:
                return Read.MORE
            except ssl.SSLWantWriteError:
                return Read.WANT_WRITE
            except (ssl.SSLError, ConnectionError):
                return Read.CLOSED
            except OSError as e:
                if e.errno in _AGAIN:
                    return Read.MORE
                return Read.CLOSED
            if not data:
                return Read.CLOSED
            self.buf += data
            if self._searched == 0:
                skip_empty_lines(self.buf)
                # A TLS record of type handshake (0x16) cannot begin an HTTP request: the
                # client wants https.  Saying so at once beats waiting out the head timeout
                # for a blank line a ClientHello never holds.
                if self.buf[:1] == b"\x16" and not isinstance(self.sock, ssl.SSLSocket):
                    return Read.TLS_HELLO
            result = self._measure()
            if result is not Read.MORE:
                return result
            # A TLS record may hold more than one recv returned; the socket will not show
            # readable for bytes the SSL object already decrypted.
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                return Read.MORE

    def take_buffer(self) -> bytes:
        """The bytes read so far (the request, and whatever followed it); the buffer empties."""
        data = bytes(self.buf)
        self.buf.clear()
        self._restart()
        return data

    def _restart(self) -> None:
        self._searched = 0
        self.head_len = 0
        self.framing = Framing()
        self._chunk_at = 0
        self.in_body = self.body_timed = False

    def refill(self, data: bytes) -> Read:
        """Bytes a thread read past the end of its request (a pipelined next request)."""
        self.buf[:] = data
        self._restart()
        skip_empty_lines(self.buf)
        if not self.buf:
            return Read.MORE
        return self._measure()

    def _measure(self) -> Read:
        """Where the request in ``buf`` stands: whole, too large, or more to come; its bytes
        beyond SMALL_HEAD are charged to the shared budget (CROWDED when it has no room)."""
        if not self.head_len:
            end = head_end(self.buf, self._searched)
            size = end if end >= 0 else len(self.buf)
            if size > MAX_HEAD:
                return Read.TOO_LARGE
            if not self._charge(size):
                return Read.CROWDED
            if end < 0:
                self._searched = len(self.buf)
                return Read.MORE
            self._head_done(end)
        return self._measure_body()

    def _head_done(self, end: int) -> None:
        self.head_len = end
        self.framing = bodies.framing(self.buf[:end])
        self._chunk_at = end
        if self.framing.expects:
            # Answered here, so the client sends its body to the loop; gunicorn must not
            # answer it again once the body is there.
            head = bodies.without_expect(self.buf[:end])
            self.buf[:end] = head
            self.head_len = self._chunk_at = len(head)
            if len(self.buf) == self.head_len and self.framing.length <= bodies.MAX_BODY:
                self.send_quietly(CONTINUE)

    def _measure_body(self) -> Read:
        f = self.framing
        if f.unknown or not f.has_body:
            return Read.COMPLETE   # no body, or framing only gunicorn's parser may judge
        if f.chunked:
            end, self._chunk_at = bodies.chunked_end(self.buf, self._chunk_at)
            if end == bodies.UNKNOWN:
                return Read.COMPLETE   # gunicorn's parser answers the bad framing
            reach = end if end >= 0 else max(len(self.buf),
                                              bodies.chunked_declared(self.buf, self._chunk_at))
            # Framing bytes, not the body's: a little more than the decoded body's limit.
            if reach - self.head_len > 2 * bodies.MAX_BODY:
                return Read.BODY_TOO_LARGE
        else:
            if f.length > bodies.MAX_BODY:
                return Read.BODY_TOO_LARGE
            end = self.head_len + f.length
        if not self._charge(min(len(self.buf), end) if end >= 0 else len(self.buf)):
            return Read.CROWDED
        if 0 <= end <= len(self.buf):
            self.in_body = False
            return Read.COMPLETE
        self.in_body = True
        return Read.MORE

    def _charge(self, size: int) -> bool:
        charged = self.heads.charge(self.charged, size, self.owner)
        if charged is None:
            return False
        self.charged = charged
        return True

    def release_head(self) -> None:
        """The request is served (or the connection closed): its bytes leave the budget."""
        self.heads.release(self.charged, self.owner)
        self.charged = 0

    # -- TLS (loop thread) ----------------------------------------------------------------------

    def handshake(self) -> Read:
        """One step of the handshake: MORE (wait to read), WANT_WRITE, or COMPLETE.

        Raises ssl.SSLError or OSError when the handshake fails.
        """
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return Read.MORE
        except ssl.SSLWantWriteError:
            return Read.WANT_WRITE
        return Read.COMPLETE

    def discard(self, limit: int) -> bool:
        """Read and drop what the client still sends (State.LINGER); True once it is done:
        closed, reset, or past ``limit`` bytes dropped in all."""
        while True:
            try:
                data = self.sock.recv(_RECV)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            except OSError as e:
                return e.errno not in _AGAIN
            if not data:
                return True
            self.dropped += len(data)
            if self.dropped > limit:
                return True

    def send_quietly(self, data: bytes) -> None:
        """Best effort, never blocking: an answer sent before closing (a refusal, a 431)."""
        try:
            self.sock.setblocking(False)
            self.sock.send(data)
        except (OSError, ValueError):
            pass  # why: the client is gone or not reading; it gets the close instead

    def send_plain_quietly(self, data: bytes) -> None:
        """Like ``send_quietly``, in clear on a TLS socket whose handshake failed: the
        answer to a client that spoke plain HTTP to the TLS port (Go's servers answer it
        so too)."""
        fd = self.sock.fileno()
        try:
            # OpenSSL read only the first record's header: the rest of the request, left
            # unread, would make the close a reset that can destroy the answer in flight.
            for _ in range(4):  # a bound: the loop thread must not spin on a sender
                if not os.read(fd, _RECV):
                    break
        except OSError:
            pass  # why: EAGAIN, nothing more has arrived (the socket is non-blocking)
        try:
            os.write(fd, data)
        except OSError:
            pass  # why: the client is gone or not reading; it gets the close instead

    def close(self) -> None:
        self.state = State.CLOSED
        self.release_head()
        try:
            self.sock.close()
        except OSError:
            pass  # why: closing twice, or a reset; nothing to report
