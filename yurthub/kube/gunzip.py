"""gzip bodies inflated as they stream, bounded: the cache side and the filters of a
``Content-Encoding: gzip`` response."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

from yurthub.errors import DecodeError

__all__ = ["MAX_INFLATED_BYTES", "Decompressor"]

# What a gzip body may inflate to unless its reader says otherwise (a 1 MiB bomb is 1 GiB).
MAX_INFLATED_BYTES = 64 << 20


class Decompressor:
    """gzip to bytes, for the cache side of a ``Content-Encoding: gzip`` response.

    Several concatenated gzip members are accepted, as Go's reader accepts them. ``close()``
    returns the last bytes, or raises DecodeError when the stream was cut short or never
    started.  Inflation is bounded: once more than ``limit`` bytes came out in all (None: no
    total limit, for streams whose readers bound each piece) ``feed`` and ``pieces`` raise
    DecodeError, and no call ever holds more than that in memory (a gzip bomb inflates 1 MiB
    to 1 GiB).
    """

    def __init__(self, limit: int | None = MAX_INFLATED_BYTES) -> None:
        self._z: Any = None
        self._members = 0
        self._limit = limit
        self.inflated = 0

    def _count(self, n: int) -> None:
        self.inflated += n
        if self._limit is not None and self.inflated > self._limit:
            raise DecodeError(f"gzip body inflates to more than {self._limit} bytes")

    def feed(self, data: bytes) -> bytes:
        """Everything ``data`` inflates to (at most the limit, else DecodeError)."""
        cap = MAX_INFLATED_BYTES if self._limit is None else self._limit
        return b"".join(self.pieces(data, max_piece=max(1, min(cap, 4 << 20))))

    def pieces(self, data: bytes, max_piece: int = 256 << 10) -> Iterator[bytes]:
        """Like ``feed``, but in pieces of at most ``max_piece`` bytes, so that a small gzip
        input that inflates to many megabytes never sits in memory at once."""
        while data:
            if self._z is None:
                self._z = zlib.decompressobj(wbits=31)
            try:
                piece = self._z.decompress(data, max_piece)
            except zlib.error as e:
                raise DecodeError(f"invalid gzip data: {e}") from e
            if piece:
                self._count(len(piece))
                yield piece
            if self._z.eof:
                data, self._z = self._z.unused_data, None
                self._members += 1
            else:
                data = self._z.unconsumed_tail

    def close(self) -> bytes:
        """Always ``b""`` today (feed returns everything); kept so callers need not know."""
        if self._z is not None:  # feed() retires every member that reached its end
            raise DecodeError("gzip stream is truncated")
        if not self._members:
            raise DecodeError("gzip stream is empty")
        return b""
