"""Turning one teed response body into cache mutations: an object, a list, or a watch.

Each handler is fed the bytes of its tee as they come out of the pipe (gzip is undone
here, never on the client's path), frames them, and hands finished objects to the
collection writer.  ``finish`` is told whether the tee saw the body end whole; only then
may a list be committed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
from typing import IO

from yurthub.cache.collection import CollectionWriter, ListAssembly, Mutation, index_meta, rv_of
from yurthub.cache.entry import Entry, Sink
from yurthub.cache.integrity import expected_type
from yurthub.cache.tee import Outcome, Tee
from yurthub.cache.views import Selectors
from yurthub.errors import DecodeError, InvalidKeyError, StorageError
from yurthub.gil import long_job, pace
from yurthub.kube import skeleton
from yurthub.kube.fields import read_paths
from yurthub.kube.framing import MAX_OBJECT_BYTES, Event, ListParser, WatchFramer
from yurthub.kube.gunzip import Decompressor
from yurthub.kube.jsondepth import check_depth
from yurthub.kube.meta import is_unassigned_pod, with_type_meta
from yurthub.kube.status import is_status
from yurthub.kube.table import is_table
from yurthub.storage import QuotaExceeded, validate_name

log = logging.getLogger(__name__)

SPOOL_BLOCK = 256 << 10
PARK_LIMIT = 2.0  # seconds a watch waits for the one before it to catch its view up
# Seconds a paged list may wait for its next page while another list of the collection
# waits for it; then the newer list goes first (the pager's list is not cached).
PAGE_GAP = 2.0


class Handler:
    """Base: decompression, the outcome check, and the link to the collection."""

    def __init__(self, writer: Sink, tee: Tee, entry: Entry) -> None:
        self.writer = writer
        self.tee = tee
        self.entry = entry
        self.dead = False
        self._gunzip = Decompressor(self.inflate_limit()) if entry.gzip else None

    def inflate_limit(self) -> int | None:
        """What a gzip body may inflate to: a whole object, unless the handler says."""
        return MAX_OBJECT_BYTES + 1

    def collection(self) -> CollectionWriter:
        return self.writer.collection(self.entry)

    def feed(self, data: bytes) -> None:
        if self.dead:
            return
        try:
            if self._gunzip is None:
                self.consume(data)
            else:
                for piece in self._gunzip.pieces(data):
                    self.consume(piece)
                    if self.dead:
                        return
        except (DecodeError, InvalidKeyError) as e:
            self.fail(f"cannot cache: {e}")
        except StorageError as e:  # a new collection the quota or a full disk refused
            self.writer.storage_failed(e, self.entry, self.entry.ck)
            self.fail(f"cannot cache: {e}", reason="storage")

    def finish(self, outcome: Outcome) -> None:
        if self.dead:
            return
        try:
            if self._gunzip is not None and outcome is Outcome.WHOLE:
                rest = self._gunzip.close()
                if rest:
                    self.consume(rest)
            self.end(outcome)
        except (DecodeError, InvalidKeyError) as e:
            self.fail(f"cannot cache: {e}")

    def fail(self, why: str, reason: str = "undecodable") -> None:
        if not self.dead:
            self.dead = True
            self.writer.dropped(self.entry, reason, why)
            self.on_fail(why)
            self.tee.give_up()  # the writer's _forget unregisters and closes the pipe

    def ready(self) -> bool:
        """False while the handler must wait for another one (see ListHandler)."""
        return True

    def consume(self, data: bytes) -> None:
        raise NotImplementedError

    def end(self, outcome: Outcome) -> None:
        raise NotImplementedError

    def on_fail(self, why: str) -> None:
        """Undo what the handler started."""

    def to_item(self, obj: dict, raw: bytes, kind: str, api_version: str, *,
                whole: bool = True) -> tuple[str, str, bytes, dict] | None:
        """(namespace, name, file bytes, index meta), or None when it must not be cached.

        ``whole`` False: ``obj`` is a skeleton (``yurthub.kube.skeleton``) of ``raw``.
        """
        if is_status(obj) or is_table(obj):
            return None  # a Table is what kubectl asked to see, not an object to store
        if self.entry.resource == "pods" and is_unassigned_pod(obj, kind or None):
            return None
        md = obj.get("metadata") or {}
        labels = md.get("labels") if isinstance(md, dict) else None
        if not isinstance(md, dict) or not isinstance(labels or {}, dict):
            # The apiserver validates metadata; this is not one of its objects.
            raise DecodeError("an object whose metadata or labels are not a JSON object")
        if self.entry.ck is not None and obj.get("kind") and obj.get("apiVersion"):
            want = expected_type(self.entry.ck)
            have = (obj["kind"], obj["apiVersion"])
            if want[0] and have != want:
                # Filed here it would be a file `cache verify` flags and a restart quarantines.
                raise DecodeError(f"an object of kind {have[0]!r} ({have[1]!r}) among "
                                  f"{want[0]} ({want[1]})")
        ns, name = md.get("namespace") or "", md.get("name") or ""
        try:
            validate_name(ns, name)
        except InvalidKeyError as e:
            self.writer.invalid_key(self.entry, str(e))
            return None
        if kind and not obj.get("kind"):
            # Splicing the type in needs only kind/apiVersion; re-encoding needs everything.
            known = whole or ("kind" not in obj and "apiVersion" not in obj)
            raw = with_type_meta(raw, kind, api_version, obj if known else None)
        return ns, name, raw, index_meta(obj, self.entry.rt)


class ObjectHandler(Handler):
    """get/create/update/patch: one object, committed when the body is whole."""

    def __init__(self, writer: Sink, tee: Tee, entry: Entry) -> None:
        super().__init__(writer, tee, entry)
        self._buf = bytearray()

    def consume(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > MAX_OBJECT_BYTES:
            self.fail(f"object larger than {MAX_OBJECT_BYTES} bytes")

    def end(self, outcome: Outcome) -> None:
        if outcome is not Outcome.WHOLE:
            self.writer.dropped(self.entry, outcome.value, "response did not end whole")
            return
        raw = bytes(self._buf).strip()
        try:
            check_depth(raw, "the object")
            obj = json.loads(raw)
        except ValueError as e:
            raise DecodeError(f"object body is not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise DecodeError("object body is not a JSON object")
        if is_table(obj):
            obj, raw = _table_object(obj)
        item = self.to_item(obj, raw, obj.get("kind", ""), obj.get("apiVersion", ""))
        if item is None:
            return
        coll = self.collection()
        coll.learn_type(obj.get("kind", ""), obj.get("apiVersion", ""))
        ns, name, body, meta = item
        coll.apply(Mutation("upsert", namespace=ns, name=name, raw=body, meta=meta,
                            asked_at=self.entry.asked_at))


def _row_object(row: object) -> tuple[dict, bytes] | None:
    """A Table row's whole object and its JSON (kubectl's Tables are asked with
    ``includeObject=Object`` for a cache agent: proxy/remote.py); None when the row holds
    less (its metadata only, or nothing)."""
    obj = row.get("object") if isinstance(row, dict) else None
    if not isinstance(obj, dict) or obj.get("kind") in ("", None, "PartialObjectMetadata"):
        return None
    return obj, json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _table_object(table: dict) -> tuple[dict, bytes]:
    """The object of a one-row Table (a ``get``); else the Table, which is nothing to store."""
    rows = table.get("rows")
    found = _row_object(rows[0]) if isinstance(rows, list) and len(rows) == 1 else None
    return found if found is not None else (table, b"")


class ListHandler(Handler):
    """list: the body is spooled while it streams, then decoded into a list assembly that
    the terminal page commits atomically.

    Spooling keeps the writer thread in system calls (which release the GIL) while the
    client is being served: decoding 10,000 pods while they stream would make the request
    thread wait for the GIL after every send, and the client with it.
    """

    def __init__(self, writer: Sink, tee: Tee, entry: Entry) -> None:
        super().__init__(writer, tee, entry)
        # An unnamed file in the cache's file system; the writer splices the pipe into it.
        self._spool: IO[bytes] = tempfile.TemporaryFile(  # closed by finish or on_fail
            dir=writer.spool_dir, prefix=".spool-", buffering=0)
        self.spool_fd = self._spool.fileno()
        self._parser = ListParser(table_rows=True)
        # msgspec: build only what the index needs of each item (None: the stdlib path,
        # whose parser has built every item already).
        paths = read_paths(entry.rt) + (("spec.nodeName",) if entry.rt.kind == "Pod" else ())
        self._skeleton = skeleton.decoder(paths)
        self.assembly: ListAssembly | None = None
        self._kind = ""
        self._api_version = ""
        self.spooled = 0

    def inflate_limit(self) -> int | None:
        return self.writer.max_list_bytes

    def ready(self) -> bool:
        """Attach to (or start) the collection's list assembly, or wait for the page before."""
        if self.assembly is not None:
            return True
        coll = self.collection()
        sel = self.entry.selectors
        assert sel is not None
        current = coll.assembly
        if self.entry.continue_token:
            if current is not None and current.view == sel.key \
                    and current.expected_token == self.entry.continue_token:
                self.assembly = current
                current.expected_token = ""
                return True
            if current is not None and current.view == sel.key and not current.expected_token:
                return False  # the page before is still being read: wait for it
            self.fail("a continue page whose earlier pages were not cached")
            return True
        if current is not None:
            if not (current.expected_token and time.monotonic() - current.touched > PAGE_GAP):
                return False  # another list of this collection is being assembled
            # A pager that stopped after a page (a client that found what it wanted, or
            # was restarted) would hold every list of the collection parked, its tee
            # filling the memory limit, until the page timeout.  This list is newer.
            coll.abort_list(current, "another list came while it waited for its next page")
        self.assembly = coll.begin_list(sel.key, sel, self.entry.asked_at)
        return True

    def feed(self, data: bytes) -> None:
        if not self.dead:
            try:
                self._spool.write(data)
            except OSError as e:
                self.fail(f"cannot spool the list: {e}", reason=self.writer.space_problem(e))

    def splice(self, limit: int) -> int:
        """Move up to ``limit`` bytes from the pipe to the spool inside the kernel.

        Returns the bytes moved (0 at the end of the body); BlockingIOError when the pipe
        is empty for now.
        """
        try:
            n = os.splice(self.tee.read_fd, self.spool_fd, limit,
                          flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
        except BlockingIOError:
            raise
        except OSError as e:
            self.fail(f"cannot spool the list: {e}", reason=self.writer.space_problem(e))
            return -1
        self.spooled += n
        limit = self.writer.max_list_bytes
        if self.spooled > limit:
            # It could never be committed, and the spool is on the cache's own disk.
            why = f"a list of {self.entry.ck} larger than the cache quota ({limit} bytes)"
            self.writer.storage_failed(QuotaExceeded(why, "component", self.spooled - limit,
                                                     component=self.entry.component,
                                                     growth=self.spooled),
                                       self.entry, self.entry.ck)
            self.fail(why, reason="too-large")
            return -1
        return n

    def finish(self, outcome: Outcome) -> None:
        if self.dead:
            return
        with long_job():
            self._finish(outcome)

    def _finish(self, outcome: Outcome) -> None:
        spool, self._spool = self._spool, io.BytesIO()
        try:
            if outcome is Outcome.WHOLE:
                os.lseek(spool.fileno(), 0, os.SEEK_SET)
                for block in iter(lambda: spool.read(SPOOL_BLOCK), b""):
                    super().feed(block)
                    if self.dead:
                        return
        except OSError as e:
            self.fail(f"cannot read the spooled list: {e}")
            return
        finally:
            spool.close()
        super().finish(outcome)

    def on_fail(self, why: str) -> None:
        self._spool.close()
        if self.assembly is not None:
            self.collection().abort_list(self.assembly, why)

    def consume(self, data: bytes) -> None:
        items = []
        decode = self._skeleton
        for item in self._parser.feed(data):
            pace()
            if self._parser.kind == "Table" and is_table(self._parser.head()):
                entry = self._row_item(item.obj)
                if self.dead:
                    return
            elif decode is None or item.decoded:
                kind, api_version = self._item_type()
                entry = self.to_item(item.obj, item.raw, kind, api_version)
            else:
                kind, api_version = self._item_type()
                entry = self.to_item(decode(item.raw), item.raw, kind, api_version, whole=False)
            if entry is not None:
                items.append(entry)
        if items and self.assembly is not None:
            self.collection().list_items(self.assembly, items)

    def _row_item(self, row: dict) -> tuple[str, str, bytes, dict] | None:
        """A Table row's whole object, stored as a list's item is."""
        found = _row_object(row)
        if found is None:
            self.fail("a Table whose rows hold less than their whole objects", reason="table")
            return None
        obj, raw = found
        kind, api_version = str(obj.get("kind")), str(obj.get("apiVersion", ""))
        if not self._kind:
            self._kind, self._api_version = kind, api_version
        return self.to_item(obj, raw, kind, api_version)

    def _item_type(self) -> tuple[str, str]:
        if not self._kind:
            head = self._parser.head()
            kind = head.get("kind", "")
            self._kind = kind[:-4] if kind.endswith("List") else kind
            self._api_version = head.get("apiVersion", "")
        return self._kind, self._api_version

    def end(self, outcome: Outcome) -> None:
        a = self.assembly
        if a is None:
            return
        coll = self.collection()
        if outcome is not Outcome.WHOLE:
            coll.abort_list(a, f"response {outcome.value}")
            self.writer.dropped(self.entry, outcome.value, "list did not end whole")
            return
        info = self._parser.close()
        if info.is_status:
            coll.abort_list(a, "the apiserver answered a Status")
            return
        table = is_table(self._parser.head())
        if table and not info.item_count:
            kind, api_version = "", ""  # an empty Table: an empty list, of no kind said
        else:
            kind, api_version = self._item_type()
        if kind:
            coll.learn_type(kind, api_version)
        if not a.list_rv:
            a.list_rv = info.resource_version_int
        if info.continue_token:
            a.expected_token = info.continue_token  # more pages follow
            return
        coll.commit_list(a)



class WatchHandler(Handler):
    """watch: events applied in order; a gap, an ERROR or a torn frame marks the view stale."""

    def inflate_limit(self) -> int | None:
        return None  # a stream: the framer bounds every event

    def __init__(self, writer: Sink, tee: Tee, entry: Entry) -> None:
        super().__init__(writer, tee, entry)
        self._framer = WatchFramer()
        self._decided = False
        self._parked_at: float | None = None

    def ready(self) -> bool:
        """Decide once whether this watch continues its view without a gap."""
        if self._decided:
            return True
        coll = self.collection()
        sel = self.entry.selectors
        assert sel is not None
        view = coll.state.views.get(sel.key)
        start = self.entry.start_rv
        if view is not None and not view.stale and start > view.rv:
            now = time.monotonic()
            if self._parked_at is None:
                self._parked_at = now
            if now - self._parked_at < PARK_LIMIT \
                    and self.writer.other_open_watch(self, self.entry.ck, sel.key):
                return False  # the watch before may still carry the missing events
            coll.apply(Mutation("stale", view=sel.key,
                                why=f"watch resumed at {start} after {view.rv}"))
        elif view is not None and start == 0:
            coll.apply(Mutation("stale", view=sel.key, why="watch without resourceVersion"))
        self._decided = True
        return True

    def consume(self, data: bytes) -> None:
        coll = self.collection()
        sel = self.entry.selectors
        assert sel is not None
        lines = self._framer.lines(data)
        if not lines:
            return
        recent = self.writer.recent_events(self.entry.ck, sel.key)
        seen = [line for line in lines if recent.seen(line)]
        if seen:
            self.writer.watch_events("duplicate", len(seen))
            if len(seen) == len(lines):
                return
        self.writer.watch_events("applied", len(lines) - len(seen))
        for line in lines:
            if seen and recent.seen(line):
                continue
            self._apply(coll, sel, self._framer.event(line))
            recent.add(line)

    def _apply(self, coll: CollectionWriter, sel: Selectors, ev: Event) -> None:
        if ev.type == "BOOKMARK":
            md = ev.obj.get("metadata")
            rv = rv_of(md.get("resourceVersion")) if isinstance(md, dict) else 0
            if rv > 0:  # a bookmark without a usable version says nothing
                coll.apply(Mutation("bookmark", view=sel.key, rv=rv))
            return
        if ev.type == "ERROR":
            coll.apply(Mutation("stale", view=sel.key, why=f"watch error: "
                                f"{(ev.obj or {}).get('message', 'unknown')}"))
            return
        item = self.to_item(ev.obj, ev.raw, self.entry.rt.kind, self.entry.rt.group_version)
        if item is None:
            return
        ns, name, raw, meta = item
        coll.learn_type(ev.obj.get("kind", ""), ev.obj.get("apiVersion", ""))
        coll.apply(Mutation("event", view=sel.key, namespace=ns, name=name, raw=raw,
                            meta=meta, event_type=ev.type, rv=meta["rv"],
                            asked_at=self.entry.asked_at))

    def end(self, outcome: Outcome) -> None:
        sel = self.entry.selectors
        assert sel is not None
        if outcome is Outcome.OVERFLOW:
            self.collection().apply(Mutation("stale", view=sel.key,
                                             why="watch events dropped: cache writer behind"))
            self.writer.dropped(self.entry, outcome.value, "watch overflowed")
            return
        try:
            self._framer.close()
        except DecodeError:
            self.collection().apply(Mutation("stale", view=sel.key, why="torn watch frame"))

    def on_fail(self, why: str) -> None:
        sel = self.entry.selectors
        if sel is not None:
            self.collection().apply(Mutation("stale", view=sel.key, why=why))


class NonResourceHandler(Handler):
    """``/version`` and discovery documents: stored whole, for every component at once."""

    def __init__(self, writer: Sink, tee: Tee, entry: Entry) -> None:
        super().__init__(writer, tee, entry)
        self._buf = bytearray()

    def collection(self) -> CollectionWriter:  # pragma: no cover - never a collection
        raise InvalidKeyError("a non-resource document has no collection")

    def consume(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > MAX_OBJECT_BYTES:
            self.fail(f"document larger than {MAX_OBJECT_BYTES} bytes")

    def end(self, outcome: Outcome) -> None:
        if outcome is not Outcome.WHOLE:
            return
        body = bytes(self._buf)
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise DecodeError(f"discovery document is not JSON: {e}") from None
        self.writer.nonresource(self.entry, body, doc)
