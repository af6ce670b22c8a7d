"""A list body filtered item by item as it streams: bytes in, filtered bytes out.

design: ``ListParser.feed_pieces`` cuts the body into items and the bytes between them
(the list's head, the commas, its tail) without ever holding more than the item being
read.  Runs of items holding none of the chain's byte patterns (``Chain.interest``) come
as one verified ``Bulk`` and go out as they are, at about a millisecond per MiB (kubelet's
10,000-pod list, which ``serviceenvupdater`` must see, costs next to nothing).  Each
other item goes through ``Chain.apply_raw``; one no filter touches goes out as the exact
bytes it came in as (often without being decoded: ``may_change`` reads the bytes), so a
list nothing changed is byte-identical to the upstream one.  The comma before an item is
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
from yurthub.filters.visibility import object_rv
from yurthub.kube.bulk import TRUSTED_SEPARATOR, Finder
from yurthub.kube.framing import Bulk, Item, ListInfo, ListParser

# What follows an item when the next one is written as kube-apiserver writes it.
_NEXT_ITEM = TRUSTED_SEPARATOR[1:]
# The opening key of every item of kube-apiserver's built-in lists (no type the filters
# read has a nested "metadata" member; a string value is never followed by a colon).
_METADATA = b'"metadata":'

# Called with each dropped item's (namespace, name) and resourceVersion (0: unreadable).
OnDropped = Callable[[tuple[str, str], int], None]


@dataclass
class ListStats:
    """What one filtered list did: for logs and tests."""

    items: int = 0          # items seen one by one or in bulk runs (not those scanned)
    inspected: int = 0      # items looked at one by one
    scanned: int = 0        # bytes sent while scanning (items not counted)
    changed: int = 0
    dropped: int = 0
    info: ListInfo | None = None
    dropped_keys: list[tuple[str, str]] = field(default_factory=list)


class ListFilter:
    """Feed the chunks of one list body; get the filtered bytes back, piece by piece.

    Two modes.  Parsing: ``ListParser.feed_pieces`` (items, bulk runs, the bytes between).
    Scanning (kube-apiserver's built-in lists only, whose item separator cannot occur inside
    an item of the filtered types: ``kube.bulk.TRUSTED_SEPARATOR``): once an item has been
    sent, chunks are only searched for the chain's patterns and sent as they are, each held
    back until the next one shows that the item running across the two holds nothing of
    interest; the first pattern switches back to parsing from the last item boundary before
    it (sending what precedes), and parsing hands back to scanning as soon as it stands
    after an item with nothing of interest ahead.  The end of the body is always parsed, so
    a torn list is still an error.
    """

    def __init__(self, chain: Chain, *, on_dropped: OnDropped | None = None,
                 accelerate: bool | None = None) -> None:
        self.chain = chain
        self.stats = ListStats()
        self._on_dropped = on_dropped
        self._interest = chain.interest()
        self._parser = ListParser(accelerate=accelerate, bulk=self._interest)
        self._seen_item = False   # an item went by: later bytes are separators or the tail
        self._kept_any = False    # an item was sent: the next kept one needs its comma
        self._held: list[bytes] = []
        # scanning: the chunk not sent yet, and where in it the first whole item starts
        self._scan: bytes | None = None
        self._start = 0
        self._margin = self._interest.longest + 8  # a pattern across two chunks
        # items by their separators, each through the chain's byte path (see _split)
        self._split_on = chain.on_bytes and not chain.drops

    def feed(self, chunk: bytes) -> list[bytes]:
        """The filtered bytes ``chunk`` completes, in pieces (often none); DecodeError on a
        body that is not a JSON list."""
        if self._scan is not None:
            if self._split_on:
                held, self._scan = self._scan, None
                return self._split(held + chunk)
            return self._scan_feed(chunk)
        return self._parse(chunk)

    def close(self) -> list[bytes]:
        """The last filtered bytes; DecodeError when the body ended early or is invalid."""
        out: list[bytes] = []
        if self._scan is not None:
            held, self._scan = self._scan, None
            b = self._boundary(held)
            self.stats.scanned += b
            out.append(held[:b])
            out += self._pieces(self._parser.feed_pieces(held[b:]))
        pieces, info = self._parser.close_pieces()
        self.stats.info = info
        out += self._pieces(pieces)
        out += self._held
        self._held = []
        return [o for o in out if o]

    # -- parsing --------------------------------------------------------------------------

    def _parse(self, data: bytes) -> list[bytes]:
        out = self._pieces(self._parser.feed_pieces(data))
        if self._kept_any and not self._interest.everything \
                and self._parser.separator == TRUSTED_SEPARATOR:
            detached = self._parser.detach()
            if detached is not None:
                rest, at_item = detached
                if at_item:  # the separator before that item was held back: it goes first
                    rest = b"".join(self._held) + rest
                    self._held = []
                if self._split_on:
                    out += self._split(rest)
                elif self._interest.find(rest) >= 0:
                    out += self._pieces(self._parser.feed_pieces(rest))
                else:  # whole items of no interest go at once; the last one may run on
                    b = rest.rfind(TRUSTED_SEPARATOR) + 1
                    if b:
                        out.append(rest[:b])
                        self.stats.scanned += b
                    self._scan, self._start = rest[b:], 0
        return out

    def _pieces(self, pieces: list[Item | Bulk | bytes]) -> list[bytes]:
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
            raw: bytes | None
            if isinstance(piece, Bulk):  # whole items no filter can touch: as they came
                self.stats.items += piece.count
                raw = piece.raw
            else:
                raw = self._item(piece)
            if raw is None:
                held.clear()            # its comma goes with it
                continue
            if self._kept_any:
                out.extend(held)
            self._kept_any = True
            held.clear()
            out.append(raw)
        return [b"".join(out)] if len(out) > 1 else out

    def _item(self, item: Item) -> bytes | None:
        stats = self.stats
        stats.items += 1
        stats.inspected += 1
        obj = item.obj if item.decoded else None
        raw = self.chain.apply_raw(item.raw, obj)
        if raw is None:
            stats.dropped += 1
            key = namespace_name(item.obj)
            stats.dropped_keys.append(key)
            if self._on_dropped is not None:
                self._on_dropped(key, object_rv(item.obj))
        elif raw is not item.raw:
            stats.changed += 1
        return raw

    # -- splitting ---------------------------------------------------------------------------

    def _split(self, data: bytes) -> list[bytes]:
        """Splitting (a chain that can work on bytes and never drops): ``data`` begins right
        after an item; each whole item in it (up to the last separator) that holds something
        of interest goes through ``Chain.apply_raw`` without the parser, which for
        servicetopology's EndpointSlices splices bytes instead of decoding
        (filters/slicebytes.py); runs of whole items holding nothing of interest (the
        slices of Services without a topology) go out as they came, unread; the item
        running on waits for the next chunk.  After an item of no interest, the next one
        holding a pattern is found first (``Finder``: each byte searched once per pattern)
        and the items before it go as one run, their separators unread.  Items not written
        as kube-apiserver writes them (anything but ``,{"metadata":`` between two) that are
        read hand the list back to the parser for good."""
        out: list[bytes] = []
        apply = self.chain.apply_raw
        of_interest = self._interest.in_item
        stats = self.stats
        pos = run = 0  # run: where the items of no interest not sent yet begin
        sep = TRUSTED_SEPARATOR
        whole = data.rfind(sep) + 1  # the end of the last whole item (0: none)

        def send_run() -> None:  # the items of no interest up to pos, as they came
            if run < pos:
                out.append(data[run:pos])
                stats.scanned += pos - run

        # Each item after the first begins with ``,{"metadata":`` by construction (below).
        ok = whole == 0 or data.startswith(_NEXT_ITEM)
        finder = Finder(self._interest)  # each byte searched once per pattern in this call
        skip = ok  # after an item of no interest: jump over the items holding no pattern
        while pos < whole:
            if skip:
                hit = finder.find(data, pos, whole)
                if hit < 0:
                    pos = whole  # nothing of interest up to the last whole item
                    break
                b = data.rfind(sep, pos, hit) + 1  # the boundary before the hit's item
                if b > pos:
                    pos = b
                skip = False
            # The item ends where the next "metadata" key begins the next item: one item
            # that is not (another separator, spaced or not, went unseen; a label named
            # "metadata") hands the list to the parser, never two items to the filters.
            nxt = data.find(_METADATA, pos + len(_NEXT_ITEM)) - 3
            if not ok or nxt < pos or not data.startswith(sep, nxt):
                send_run()
                self._split_on = False
                return [b"".join(out), *self._parse(data[pos:])]
            if not of_interest(data, pos, nxt + 1):
                pos = nxt + 1  # as it came, with the run it belongs to
                skip = True
                continue
            send_run()
            item = data[pos + 1:nxt + 1]
            new = apply(item)
            if new is None:  # cannot happen: the chain never drops
                raise DecodeError("a filter that never drops dropped a list item")
            stats.items += 1
            stats.inspected += 1
            if new is not item:
                stats.changed += 1
            out += (b",", new)
            pos = run = nxt + 1
        send_run()
        done = [b"".join(out)] if out else []
        rest = data[pos:]
        if len(rest) >= len(_NEXT_ITEM) and not rest.startswith(_NEXT_ITEM):
            # not an item as kube-apiserver writes one: the parser takes over now (holding
            # every chunk until a trusted separator showed up could hold the whole list)
            self._split_on = False
            return [*done, *self._parse(rest)]
        self._scan, self._start = rest, 0
        return done

    # -- scanning ---------------------------------------------------------------------------

    def _boundary(self, held: bytes) -> int:
        """The last item boundary in ``held`` (right after an item's closing brace)."""
        r = held.rfind(TRUSTED_SEPARATOR, self._start)
        return r + 1 if r >= 0 else self._start

    def _scan_feed(self, c: bytes) -> list[bytes]:
        held = self._scan
        assert held is not None
        find = self._interest.find
        m = self._margin
        junction = find(held[-m:] + c[:m]) >= 0
        fs = c.find(TRUSTED_SEPARATOR)
        if fs < 0:  # no item ends in this chunk: one big item goes on
            if junction or find(c) >= 0:
                return self._to_parsing(held, c)
            self._scan = held + c
            return []
        if junction or find(c, 0, fs + 1) >= 0:  # the item running across the two chunks
            return self._to_parsing(held, c)
        hit = find(c, fs + 1)
        self.stats.scanned += len(held)
        if hit < 0:
            # Nothing of interest in c: send it up to its last item boundary at once, keep
            # only the item running on into the next chunk (a slow upstream's client sees
            # every whole item it has sent, not one chunk less).
            b = c.rfind(TRUSTED_SEPARATOR, fs) + 1
            self.stats.scanned += b
            self._scan, self._start = c[b:], 0
            return [b"".join((held, memoryview(c)[:b]))]
        r = c.rfind(TRUSTED_SEPARATOR, fs, hit)
        if r < 0:
            return self._to_parsing(held, c)
        b = r + 1
        self._scan = None
        self.stats.scanned += b
        return [held, c[:b], *self._parse(c[b:])]

    def _to_parsing(self, held: bytes, c: bytes) -> list[bytes]:
        """A pattern in the item that ``held`` ends with: parse from that item on."""
        b = self._boundary(held)
        self._scan = None
        self.stats.scanned += b
        return [p for p in (held[:b], *self._parse(held[b:] + c)) if p]


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
        for out in lf.feed(chunk):
            if out:
                yield out
    yield from lf.close()


__all__ = ["DecodeError", "ListFilter", "ListStats", "filter_list"]
