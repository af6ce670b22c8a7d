"""A list body filtered item by item as it streams: bytes in, filtered bytes out.

design: ``ListParser.feed_pieces`` cuts the body into items and the bytes between them
(the list's head, the commas, its tail) without ever holding more than the item being
read.  Each item goes through ``Chain.apply_raw``; one no filter touches goes out as the
exact bytes it came in as (often without being decoded: ``may_change`` reads the bytes), so
a list nothing changed is byte-identical to the upstream one.  The comma before an item is
held back until that item is known to stay, so dropping any item leaves valid JSON.  Each
input chunk yields at most one output chunk: the client gets items as they are filtered.

Pure and independent of the proxy: a shared list (the node-level multiplexer) can run the
same function once per client over the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from yurthub.errors import DecodeError
from yurthub.filters.chain import Chain
from yurthub.filters.context import namespace_name
from yurthub.kube.framing import Item, ListInfo, ListParser

# Called with each dropped item's (namespace, name).
OnDropped = Callable[[tuple[str, str]], None]


@dataclass
class ListStats:
    """What one filtered list did: for logs and tests."""

    items: int = 0
    changed: int = 0
    dropped: int = 0
    info: ListInfo | None = None
    dropped_keys: list[tuple[str, str]] = field(default_factory=list)


class ListFilter:
    """Feed the chunks of one list body; get the filtered bytes back chunk by chunk."""

    def __init__(self, chain: Chain, *, on_dropped: OnDropped | None = None,
                 accelerate: bool | None = None) -> None:
        self.chain = chain
        self.stats = ListStats()
        self._on_dropped = on_dropped
        self._parser = ListParser(accelerate=accelerate)
        self._seen_item = False   # an item went by: later bytes are separators or the tail
        self._kept_any = False    # an item was sent: the next kept one needs its comma
        self._held: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """The filtered bytes that ``chunk`` completes (often b""); DecodeError on a body
        that is not a JSON list."""
        return self._emit(self._parser.feed_pieces(chunk))

    def close(self) -> bytes:
        """The last filtered bytes; DecodeError when the body ended early or is invalid."""
        pieces, info = self._parser.close_pieces()
        self.stats.info = info
        out = self._emit(pieces)
        tail = b"".join(self._held)
        self._held = []
        return out + tail

    def _emit(self, pieces: list[Item | bytes]) -> bytes:
        out: list[bytes] = []
        held = self._held
        for piece in pieces:
            if isinstance(piece, bytes):
                if self._seen_item:
                    held.append(piece)  # a separator or the tail: decided by what follows
                else:
                    out.append(piece)   # the head of the list
                continue
            self._seen_item = True
            raw = self._item(piece)
            if raw is None:
                held.clear()            # its comma goes with it
                continue
            if self._kept_any:
                out.extend(held)
            self._kept_any = True
            held.clear()
            out.append(raw)
        return b"".join(out)

    def _item(self, item: Item) -> bytes | None:
        stats = self.stats
        stats.items += 1
        obj = item.obj if item.decoded else None
        raw = self.chain.apply_raw(item.raw, obj)
        if raw is None:
            stats.dropped += 1
            key = namespace_name(item.obj)
            stats.dropped_keys.append(key)
            if self._on_dropped is not None:
                self._on_dropped(key)
        elif raw is not item.raw:
            stats.changed += 1
        return raw


def filter_list(chunks: Iterable[bytes], chain: Chain, *, on_dropped: OnDropped | None = None,
                stats: ListStats | None = None) -> Iterator[bytes]:
    """The filtered list, chunk by chunk (empty chunks are not yielded).

    Raises DecodeError (from the iteration) when the body is not a whole JSON list.
    ``stats``, when given, is filled in as the list streams.
    """
    lf = ListFilter(chain, on_dropped=on_dropped)
    if stats is not None:
        lf.stats = stats
    for chunk in chunks:
        out = lf.feed(chunk)
        if out:
            yield out
    out = lf.close()
    if out:
        yield out


__all__ = ["DecodeError", "ListFilter", "ListStats", "filter_list"]
