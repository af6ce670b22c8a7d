"""Where a request body ends, read from its head and the bytes that arrived: a length, a
chunked body walked chunk by chunk, or no body; and a head's ``Expect: 100-continue``.

design: the worker's loop reads a request's body as it reads its head, so a thread only ever
gets a whole request: a client sending its body a byte at a time holds a descriptor and a
buffer in the loop, never one of the few threads (four serve healthz; a few hundred the
proxy).  Pure: bytes in, offsets out; ``tests/unit/worker/test_bodies.py`` runs it alone.
What this module cannot frame (two lengths, a transfer coding other than chunked) is
``UNKNOWN``: the loop hands such a request over as it is and gunicorn's parser refuses it
before it reads any body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# kube-apiserver refuses request bodies over 3 MiB (``MaxRequestBodyBytes``) with 413; the
# loop reads no more than that for one request.
MAX_BODY = 3 << 20
UNKNOWN = -2          # an offset the loop cannot know: gunicorn decides
MAX_CHUNK_LINE = 4096  # a chunk-size line (with extensions) longer than this is not framing

_HEX = re.compile(rb"[0-9a-fA-F]+")
_CONTINUE_LINE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue[ \t]*(?=\r\n)", re.I)


@dataclass(frozen=True)
class Framing:
    """A request's body as its head declares it: ``length`` bytes, or ``chunked``, or
    ``unknown`` (left to gunicorn's parser); ``expects`` an ``Expect: 100-continue``."""

    length: int = 0
    chunked: bool = False
    unknown: bool = False
    expects: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


def framing(head: bytes | bytearray) -> Framing:
    """The body framing of a request head (request line and fields, up to the blank line)."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    lines = bytes(head).split(b"\r\n")
    http10 = lines[0].endswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.lower()
        if name == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif name == b"transfer-encoding":
            codings += [c.strip(b" \t").lower() for c in value.split(b",")]
    expects = not http10 and _CONTINUE_LINE.search(bytes(head)) is not None
    if codings:
        # Both gunicorns refuse a length beside a coding (request smuggling) at once.
        if codings[-1] != b"chunked" or codings.count(b"chunked") > 1 or http10 or lengths:
            return Framing(unknown=True)
        return Framing(chunked=True, expects=expects)
    if not lengths:
        return Framing()
    if len(lengths) > 1 or not lengths[0].isdigit():
        return Framing(unknown=True)
    return Framing(length=int(lengths[0]), expects=expects)


def without_expect(head: bytes | bytearray) -> bytes:
    """The head without its ``Expect: 100-continue`` field: the loop answered it already,
    and gunicorn would send a second ``100 Continue`` (after the body arrived)."""
    return _CONTINUE_LINE.sub(b"", bytes(head), count=1)


def chunked_end(buf: bytes | bytearray, at: int) -> tuple[int, int]:
    """Walk a chunked body in ``buf`` from ``at``, the start of a chunk-size line.

    Returns ``(end, at)``: ``end`` is the offset just past the body (its last chunk and
    trailer fields), -1 while more must arrive, ``UNKNOWN`` when the bytes are not chunked
    framing; ``at`` is where the next call resumes (the first chunk not wholly arrived), so
    a body arriving in many pieces is walked once.
    """
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", at)
        if eol < 0:
            return (UNKNOWN if n - at > MAX_CHUNK_LINE else -1), at
        if eol - at > MAX_CHUNK_LINE:
            return UNKNOWN, at
        size_field = bytes(buf[at:eol]).split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(size_field):
            return UNKNOWN, at
        size = int(size_field, 16)
        if size == 0:
            fields = eol + 2
            if buf[fields:fields + 2] == b"\r\n":
                return fields + 2, at
            blank = buf.find(b"\r\n\r\n", fields)
            return (-1 if blank < 0 else blank + 4), at
        data_end = eol + 2 + size
        if data_end + 2 > n:
            # The declared end, past what arrived: the caller bounds it (MAX_BODY).
            return -1, at
        if buf[data_end:data_end + 2] != b"\r\n":
            return UNKNOWN, at
        at = data_end + 2


def chunked_declared(buf: bytes | bytearray, at: int) -> int:
    """The offset the chunk starting at ``at`` says it ends at (0 when its size line has not
    arrived or is not framing): lets the loop refuse a 1 GiB chunk before it arrives."""
    eol = buf.find(b"\r\n", at)
    if eol < 0:
        return 0
    size_field = bytes(buf[at:eol]).split(b";", 1)[0].strip(b" \t")
    if not _HEX.fullmatch(size_field):
        return 0
    return eol + 2 + int(size_field, 16) + 2
