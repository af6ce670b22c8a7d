"""Streaming decoders that the cache writer feeds with teed bytes: list bodies, watch streams
(gzip is ``kube/gunzip.py``).

design: bytes arrive in whatever pieces the tee hands over. ``ListParser`` never builds the
whole body. It decodes one list item at a time, at item boundaries, and keeps only the
unconsumed tail, so memory follows the largest item rather than the body. An incomplete item
is tried again only once its available bytes have doubled, or when a chunk ends in ``}`` (the
end of a body always does). So an item of N bytes costs O(N) whatever the chunk size, and
the end of a body never waits. Items keep their exact raw bytes, to be written to disk as-is.
With ``msgspec`` importable (PyPI only), item boundaries are found without building objects,
and ``Item.obj`` is decoded on first use. The stdlib path is the reference and keeps the same
contract (the scanning itself is in ``jsonscan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yurthub.errors import DecodeError
from yurthub.kube.bulk import Bulk, Finder, Interest, find_run, separator_of
from yurthub.kube.jsonscan import (
    HAVE_MSGSPEC,
    BytesBuffer,
    TextBuffer,
    decode_object,
    msgspec,
    object_members,
    scanner,
)
from yurthub.kube.meta import rv_int

__all__ = ["HAVE_MSGSPEC", "MAX_OBJECT_BYTES", "WATCH_EVENT_TYPES", "Bulk", "Event", "Interest",
           "Item", "ListInfo", "ListParser", "WatchFramer"]

WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})
# The largest object the cache takes (etcd refuses values over 1.5 MiB; JSON is larger).
MAX_OBJECT_BYTES = 8 << 20
# Room for a watch event's envelope ({"type":"MODIFIED","object":...}) around its object.
_EVENT_ENVELOPE = 4096


class Item:
    """One object of a list's ``items``: its exact raw JSON bytes and its decoded dict.

    ``raw`` is byte for byte what the apiserver sent. ``obj`` is decoded on first use when the
    parser did not decode it already (the msgspec path). Treat both as read-only.
    """

    __slots__ = ("_obj", "raw")

    def __init__(self, raw: bytes, obj: dict[str, Any] | None = None) -> None:
        self.raw = raw
        self._obj = obj

    @property
    def decoded(self) -> bool:
        """True when ``obj`` costs nothing (the parser built it already)."""
        return self._obj is not None

    @property
    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            self._obj = decode_object(self.raw)
        return self._obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw[:60]!r}...)"


class Event(Item):
    """One watch event: ``type`` (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) and its object."""

    __slots__ = ("type",)

    def __init__(self, type: str, raw: bytes, obj: dict[str, Any] | None = None) -> None:
        super().__init__(raw, obj)
        self.type = type


@dataclass(frozen=True)
class ListInfo:
    """What a list body said about itself, known only once the whole body arrived.

    ``status`` is set (and ``items`` absent) when the body was a ``metav1.Status`` rather
    than a list. Such a body is never cached.
    """

    kind: str
    api_version: str
    resource_version: str = ""
    continue_token: str = ""
    remaining_item_count: int | None = None
    item_count: int = 0
    status: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_status(self) -> bool:
        return self.status is not None

    @property
    def resource_version_int(self) -> int:
        """``resource_version`` as an integer; DecodeError when it is not a valid one."""
        return rv_int(self.resource_version)


(_START, _KEY_FIRST, _KEY, _COLON, _VALUE, _AFTER_MEMBER,
 _ITEMS, _ITEM_FIRST, _ITEM, _AFTER_ITEM, _DONE) = range(11)


def _use_msgspec(accelerate: bool | None) -> bool:
    if accelerate and not HAVE_MSGSPEC:
        raise ValueError("msgspec is not installed")
    return HAVE_MSGSPEC if accelerate is None else accelerate


class ListParser:
    """Incremental parser of one list response body (JSON).

    Call ``feed(chunk)`` with each piece of the body. It returns the items completed so far,
    in order. Then call ``close()``, which returns the list's ``ListInfo`` or raises
    ``DecodeError`` when the body is incomplete or invalid. A torn body never looks whole.
    Top-level keys may come in any order: built-in lists send ``kind, apiVersion, metadata,
    items``, unstructured (CRD) lists sort them. ``kind`` and ``api_version`` are available as
    soon as they have been read (before the items, for built-in lists). After a DecodeError
    the parser stays failed. ``accelerate``: None uses msgspec when it is installed.

    Chunks of a few bytes that end in ``}`` make it try the pending item more often: feed it
    what the pipe holds (kilobytes), not single bytes of a megabyte item.
    """

    def __init__(self, *, accelerate: bool | None = None, bulk: Interest | None = None,
                 max_item: int = MAX_OBJECT_BYTES, table_rows: bool = False) -> None:
        self._max_item = max_item
        # A meta.k8s.io Table (kind read before its rows, as kube-apiserver encodes it): its
        # rows come out as the items, one at a time, instead of one value at the end.
        self._table_rows = table_rows
        self._exact = _use_msgspec(accelerate)
        self._b: TextBuffer | BytesBuffer = BytesBuffer() if self._exact else TextBuffer()
        # feed_pieces only: runs of items of no interest come out as one Bulk (kube.bulk)
        self._bulk = Finder(bulk) if bulk is not None and not bulk.everything else None
        self._sep: bytes | str | None = None
        self._no_run_before = 0  # buffer offset before which no run is tried again
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._need = 0  # buffered bytes/chars to wait for before trying again
        self._state = _START
        self._key = ""
        self._members: dict[str, Any] = {}
        self._count = 0
        self._error: DecodeError | None = None

    @property
    def kind(self) -> str | None:
        kind = self._members.get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def api_version(self) -> str | None:
        version = self._members.get("apiVersion")
        return version if isinstance(version, str) else None

    def head(self) -> dict[str, Any]:
        """The top-level members read so far (kind, apiVersion, metadata...), never items."""
        return {k: v for k, v in self._members.items() if k != "items"}

    def feed(self, data: bytes) -> list[Item]:
        """The items that ``data`` completed (often none). Raises DecodeError on bad input."""
        if not self._take(data):
            return []
        items = self._guarded(final=False)
        self._check_unfinished()
        return items

    def _take(self, data: bytes) -> bool:
        """Queue ``data``; True when enough has arrived to be worth parsing again."""
        if self._error:
            raise self._error
        if not data:
            return False
        self._pending.append(data)
        self._pending_len += len(data)
        waiting = len(self._b.buf) + self._pending_len
        return not (waiting < self._need and waiting <= self._max_item
                    and not data.rstrip(b" \t\r\n").endswith(b"}"))

    def _check_unfinished(self) -> None:
        """What is left unparsed is one unfinished item (or value): past the cap it is larger
        than any object the cache takes, so no memory is spent on the rest of it."""
        if len(self._b.buf) > self._max_item:
            self._error = DecodeError(f"a list item larger than {self._max_item} bytes")
            raise self._error

    def feed_pieces(self, data: bytes) -> list[Item | Bulk | bytes]:
        """Like ``feed``, with the bytes between items as well: every byte of the body
        comes back once, in order, either inside an ``Item`` (its ``raw``) or as ``bytes``
        (the list's head, the commas between items, its tail).  Joining them gives the
        body back exactly, so a filter can rebuild it around the items it changes.  With
        ``bulk``, runs of whole items that hold nothing of interest come as one ``Bulk``."""
        if not self._take(data):
            return []
        pieces: list[Item | Bulk | bytes] = []
        try:
            self._parse(final=False, pieces=pieces)
        except DecodeError as e:
            self._error = e
            raise
        self._check_unfinished()
        return pieces

    @property
    def separator(self) -> bytes | None:
        """What separates two items, learned from the first one (with ``bulk``)."""
        return self._sep.encode() if isinstance(self._sep, str) else self._sep

    def detach(self) -> tuple[bytes, bool] | None:
        """Inside the items array, between items: hand back the bytes not parsed yet, and
        whether they begin at an item (the separator before it was handed out already)
        rather than right after one.  The parser forgets them, so a reader can skip ahead
        and ``feed_pieces`` again from a later point right after an item (kube.bulk).
        None anywhere else."""
        b = self._b
        if self._error or self._state not in (_AFTER_ITEM, _ITEM) or not b.whole_chars():
            return None
        at_item = self._state == _ITEM
        data = b.raw(0, len(b.buf)) + b"".join(self._pending)
        if self._bulk is not None:
            self._bulk = Finder(self._bulk.interest)  # what comes next is another stream
        b.drop(len(b.buf))
        self._pending, self._pending_len, self._need = [], 0, 0
        self._no_run_before = 0
        self._state = _AFTER_ITEM
        return data, at_item

    def close_pieces(self) -> tuple[list[Item | Bulk | bytes], ListInfo]:
        """``close`` for ``feed_pieces``: the last pieces and the ListInfo."""
        pieces: list[Item | Bulk | bytes] = []
        if self._error is None:
            try:
                return pieces, self._finish(pieces)
            except DecodeError as e:
                self._error = e
        raise self._error

    def close(self) -> ListInfo:
        """End of body. Returns the ListInfo, or raises DecodeError if the body is not whole."""
        if self._error is None:
            try:
                return self._finish()
            except DecodeError as e:
                self._error = e
        raise self._error

    def _finish(self, pieces: list[Item | Bulk | bytes] | None = None) -> ListInfo:
        late = self._parse(final=True, pieces=pieces)
        if self._state != _DONE or self._b.buf.strip():
            raise DecodeError("list body ended early (torn)")
        if late:
            # Cannot happen for a valid body: its last chunk ends in "}", which always parses.
            raise DecodeError("list items were left unparsed until the end of the body")
        m = self._members
        meta = {} if m.get("metadata") is None else m["metadata"]
        if not isinstance(m.get("kind", ""), str) or not isinstance(meta, dict):
            raise DecodeError("list body has a malformed kind or metadata")
        if "items" not in m:
            if m.get("kind") == "Status":
                return ListInfo("Status", str(m.get("apiVersion", "")), status=m)
            raise DecodeError(f"response is not a list (kind {m.get('kind')!r}, no items)")
        remaining = meta.get("remainingItemCount")
        return ListInfo(
            kind=m.get("kind", ""), api_version=str(m.get("apiVersion", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            continue_token=str(meta.get("continue", "")),
            remaining_item_count=remaining if type(remaining) is int else None,
            item_count=self._count,
        )

    def _guarded(self, final: bool) -> list[Item]:
        try:
            return self._parse(final)
        except DecodeError as e:
            self._error = e
            raise

    def _parse(self, final: bool, pieces: list[Item | Bulk | bytes] | None = None
               ) -> list[Item]:
        """Parse what is buffered; with ``pieces``, also append to it every consumed byte
        (items and the bytes between them), in order."""
        b = self._b
        if self._pending or final:
            b.extend(b"".join(self._pending), final)
            self._pending, self._pending_len = [], 0
        items: list[Item] = []
        pos, state, need = 0, self._state, 0
        mark = 0  # with pieces: where the bytes not yet handed out begin
        while True:
            pos = b.skip(pos)
            c = b.char(pos)
            if not c:
                break
            if state in (_ITEM, _ITEM_FIRST) and not (state == _ITEM_FIRST and c == "]"):
                if pieces is not None and self._bulk is not None and self._sep is not None \
                        and pos >= self._no_run_before:
                    run = find_run(b.buf, pos, self._sep, self._bulk, exact=self._exact)
                    if isinstance(run, tuple):
                        end, n = run
                        if pos > mark:
                            pieces.append(b.raw(mark, pos))
                        pieces.append(Bulk(b.raw(pos, end), n))
                        self._count += n
                        pos = mark = end
                        state = _AFTER_ITEM
                        continue
                    if run is not None:
                        self._no_run_before = run
                found = b.item(pos, final)
                if found is None:
                    need = 2 * (len(b.buf) - pos)
                    break
                obj, end = found
                item = Item(b.raw(pos, end), obj)
                items.append(item)
                if self._sep is None and self._bulk is not None:
                    self._sep = separator_of(b.buf[pos:end])
                if pieces is not None:
                    if pos > mark:
                        pieces.append(b.raw(mark, pos))
                    pieces.append(item)
                    mark = end
                pos = end
                self._count += 1
                state = _AFTER_ITEM
            elif state == _START:
                if c != "{":
                    raise DecodeError("response body is not a JSON object")
                pos, state = pos + 1, _KEY_FIRST
            elif state == _KEY_FIRST and c == "}":
                pos, state = pos + 1, _DONE
            elif state in (_KEY_FIRST, _KEY, _VALUE) or (state == _ITEMS and c != "["):
                if state in (_KEY_FIRST, _KEY) and c != '"':
                    raise DecodeError("expected a key in the list object")
                got = b.value(pos, final)
                if got is None:
                    need = 2 * (len(b.buf) - pos)
                    break
                value, pos = got
                if state in (_KEY_FIRST, _KEY):
                    self._key, state = value, _COLON
                elif state == _ITEMS and value is not None:
                    raise DecodeError("items is neither an array nor null")
                else:
                    self._members[self._key], state = value, _AFTER_MEMBER
            elif state == _ITEMS:  # c == "["
                self._members["items"], pos, state = None, pos + 1, _ITEM_FIRST
            elif state == _COLON and c == ":":
                key = self._key
                if key == "rows" and self._table_rows and self._members.get("kind") == "Table":
                    key = self._key = "items"
                if key == "items" and "items" in self._members:
                    raise DecodeError("list body has two items arrays")
                pos, state = pos + 1, _ITEMS if key == "items" else _VALUE
            elif state == _ITEM_FIRST or (state == _AFTER_ITEM and c == "]"):
                pos, state = pos + 1, _AFTER_MEMBER
            elif state == _AFTER_ITEM and c == ",":
                pos, state = pos + 1, _ITEM
            elif state == _AFTER_MEMBER and c in ",}":
                pos, state = pos + 1, _KEY if c == "," else _DONE
            else:
                raise DecodeError(f"unexpected {c!r} in list body")
        if pieces is not None and pos > mark:
            pieces.append(b.raw(mark, pos))
        b.drop(pos)
        self._no_run_before = max(0, self._no_run_before - pos)
        if self._bulk is not None:
            self._bulk.consumed(pos)
        self._state, self._need = state, need
        return items


class WatchFramer:
    """Splits a JSON watch stream into events: one JSON object per line.

    ``feed(chunk)`` returns the events that the chunk completed. Events may span chunks, and
    ``\\r\\n`` is accepted. An event whose type is unknown, or whose object isn't a JSON
    object, raises DecodeError. ``close()`` raises DecodeError if a partial frame remains:
    kube-apiserver ends every event with a newline, so a final event without one is torn.
    An event whose object is larger than ``max_object`` bytes is a DecodeError as soon as that
    many of its bytes are buffered.
    """

    def __init__(self, *, accelerate: bool | None = None,
                 max_object: int = MAX_OBJECT_BYTES) -> None:
        self._msgspec = _use_msgspec(accelerate)
        self._scan = None if self._msgspec else scanner()
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._max_line = max_object + _EVENT_ENVELOPE
        self._error: DecodeError | None = None

    def feed(self, data: bytes) -> list[Event]:
        return [self.event(line) for line in self.lines(data)]

    def lines(self, data: bytes) -> list[bytes]:
        """The event lines ``data`` completed, not yet decoded (see ``event``)."""
        if self._error:
            raise self._error
        if b"\n" not in data:
            if data:
                self._pending.append(data)
                self._pending_len += len(data)
                if self._pending_len > self._max_line:
                    raise self._fail(DecodeError(
                        f"a watch event larger than {self._max_line} bytes"))
            return []
        self._pending.append(data)
        *lines, tail = b"".join(self._pending).split(b"\n")
        self._pending = [tail] if tail else []
        self._pending_len = len(tail)
        if self._pending_len > self._max_line or any(len(x) > self._max_line for x in lines):
            raise self._fail(DecodeError(f"a watch event larger than {self._max_line} bytes"))
        return [line for line in lines if line.strip()]

    def event(self, line: bytes) -> Event:
        """Decode one line of ``lines``; a DecodeError also ends the stream."""
        try:
            return self._event(line)
        except DecodeError as e:
            self._fail(e)
            raise

    def _fail(self, e: DecodeError) -> DecodeError:
        """Remember ``e`` (the stream stays failed) and keep nothing more of it."""
        self._error = e
        self._pending, self._pending_len = [], 0  # nothing more is kept for a failed stream
        return e

    def close(self) -> None:
        if self._error:
            raise self._error
        if b"".join(self._pending).strip():
            raise DecodeError("watch stream ended inside an event (torn frame)")

    def _event(self, line: bytes) -> Event:
        if self._msgspec:
            try:
                if not line.isascii():
                    line.decode()  # msgspec does not check the UTF-8 of what it skips
                wire = _decode_wire_event(line)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
                raise DecodeError(f"invalid watch event: {e}") from e
            ev = Event(wire.type, bytes(wire.object))
        else:
            ev = self._event_stdlib(line)
        if ev.type not in WATCH_EVENT_TYPES:
            raise DecodeError(f"unknown watch event type {ev.type!r}")
        if ev.raw[:1] != b"{":
            raise DecodeError("watch event object is not a JSON object")
        return ev

    def _event_stdlib(self, line: bytes) -> Event:
        try:
            text = line.decode()
        except UnicodeDecodeError as e:
            raise DecodeError(f"watch event is not UTF-8: {e.reason}") from e
        members = object_members(text, self._scan)
        type_ = members.get("type", (None, 0, 0))[0]
        obj, start, end = members.get("object", (None, 0, 0))
        if not isinstance(type_, str) or not isinstance(obj, dict):
            raise DecodeError("watch event without a type or an object")
        return Event(type_, text[start:end].encode(), obj)


if HAVE_MSGSPEC:
    class _WireEvent(msgspec.Struct):
        type: str
        object: msgspec.Raw

    _decode_wire_event = msgspec.json.Decoder(_WireEvent).decode
