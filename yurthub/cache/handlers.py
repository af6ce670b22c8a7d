"""Turning one teed response body into cache mutations: an object, a list, or a watch.

Each handler is fed the bytes of its tee as they come out of the pipe (gzip is undone
here, never on the client's path), frames them, and hands finished objects to the
collection writer.  ``finish`` is told whether the tee saw the body end whole; only then
may a list be committed.
"""

from __future__ import annotations

import json
import logging
import time

from yurthub.cache.collection import CollectionWriter
from yurthub.cache.entry import Entry, Sink
from yurthub.cache.integrity import expected_type
from yurthub.cache.mutation import Mutation, index_meta, rv_of
from yurthub.cache.tee import Outcome, Tee
from yurthub.cache.views import Selectors
from yurthub.errors import DecodeError, InvalidKeyError, StorageError
from yurthub.kube.framing import MAX_OBJECT_BYTES, Event, WatchFramer
from yurthub.kube.gunzip import Decompressor
from yurthub.kube.jsondepth import check_depth
from yurthub.kube.meta import with_type_meta
from yurthub.kube.status import is_status
from yurthub.kube.table import is_table, one_row_object
from yurthub.storage import validate_name

log = logging.getLogger(__name__)

PARK_LIMIT = 2.0  # seconds a watch waits for the one before it to catch its view up


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
        md = obj.get("metadata") or {}
        labels = md.get("labels") if isinstance(md, dict) else None
        if not isinstance(md, dict) or not isinstance(labels or {}, dict):
            # The apiserver validates metadata; this is not one of its objects.
            raise DecodeError("an object whose metadata or labels are not a JSON object")
        # An item without its own type has the one its list says (what would be filed).
        have = (obj.get("kind") or kind, obj.get("apiVersion") or api_version)
        if self.entry.ck is not None and (have[0] or have[1]):
            want = expected_type(self.entry.ck)
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
        found = one_row_object(obj) if is_table(obj) else None
        if found is not None:
            obj, raw = found  # kubectl's get of one object (a Table: see list_handler.py)
        item = self.to_item(obj, raw, obj.get("kind", ""), obj.get("apiVersion", ""))
        if item is None:
            return
        coll = self.collection()
        coll.learn_type(obj.get("kind", ""), obj.get("apiVersion", ""))
        ns, name, body, meta = item
        coll.apply(Mutation("upsert", namespace=ns, name=name, raw=body, meta=meta,
                            asked_at=self.entry.asked_at, consistent=self.entry.consistent))


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
                    and (self.writer.other_open_watch(self, self.entry.ck, sel.key)
                         or self.writer.open_list(self.entry.ck, sel.key)):
                # The watch before may still carry the missing events, or the list this
                # watch follows (a client lists, then watches from the list's version at
                # once) is not committed yet: its commit brings the view to the start.
                return False
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
