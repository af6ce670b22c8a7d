"""One client's watch of a pool-scoped resource, answered from the multiplexer's shared
state (proxy/mux.py): its selectors, its filters on the way out (never changing the shared
objects), bookmarks, timeoutSeconds, and the end a filter change asks for (410 Expired).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from yurthub.cache.views import Selectors
from yurthub.filters.chain import Chain
from yurthub.filters.visibility import ClientView
from yurthub.proxy import filtering
from yurthub.proxy.context import RequestContext
from yurthub.proxy.localwatch import bookmark_event, next_bookmark_at
from yurthub.proxy.muxstate import Change, Obj, SharedState, at_version
from yurthub.proxy.streams import RELIST, Reason, StreamRegistry

log = logging.getLogger(__name__)

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
# The most object bytes one write to a client carries: a watch behind the shared state (a
# slow reader, one that reads nothing, a watch from an old version) takes its events in
# batches this big, never all it missed joined into one bytes object (41 watches of a 20 KB
# Service patched 450 times/s held ~1,000 events each, a 250 MB worker).
BATCH_BYTES = 256 * 1024
REWOUND = "the cloud's resourceVersions went back (etcd restored?)"


def dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def event_line(etype: str, raw: bytes) -> bytes:
    """A watch event line."""
    return b'{"type":"' + etype.encode() + b'","object":' + raw + b"}\n"


class SharedWatch:
    """One client's watch of a shared resource; a stream of source ``shared`` (it is not
    ended when the cloud goes or comes back: its events do not depend on where they came
    from)."""

    source = "shared"

    def __init__(self, streams: StreamRegistry, ctx: RequestContext, state: SharedState,
                 want: Selectors, chain: Chain | None, view: ClientView | None, *, seq: int,
                 initial: list[Obj], start_rv: int, timeout: int, bookmark_interval: float,
                 end_initial: bool, meta: str = "") -> None:
        self.ctx = ctx
        self.meta = meta  # the apiVersion of a metadata-only watch's objects, or ""
        self.state = state
        self.want = want
        self.chain = chain
        self.view = view
        self.seq = seq
        self.initial = initial
        self.rv = start_rv
        # Only changes newer than the watch's version are sent (kube-apiserver's cacheWatcher
        # does the same): a client may know a version the state has not reached yet (its own
        # write's, a list the cloud answered), and what it already saw must not come again.
        self.after = start_rv
        self.end_initial = end_initial
        self.deadline = time.monotonic() + max(0, timeout)
        info = ctx.info
        self.bookmarks = info.allow_watch_bookmarks
        self.bookmark_interval = bookmark_interval
        self.reason: Reason | None = None
        self.rewound = False  # the cloud's versions went back under it (SharedState._rewind)
        # Objects the filters keep from this client.  A watch from a version starts with
        # those they kept from it at that version (its list): one that starts passing
        # later is new to the client (ADDED), one that stays dropped is never mentioned.
        self.dropped: set[tuple[str, str]] = set()
        if chain is not None and not initial:
            self.dropped = {o.key for o in state.objects_at(seq)
                            if selected(want, o) and filtered_item(chain, o) is None}
        self._life = streams.open(self, ctx.client_socket, long_lived=True, watch=True,
                                  component=ctx.component)

    def interrupt(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason
        self.state.wake()

    def _bookmark(self, initial_end: bool = False) -> bytes:
        rt = self.state.rt
        kind, api_version = ("PartialObjectMetadata", self.meta) if self.meta \
            else (rt.kind, rt.group_version)
        if not initial_end:
            return bookmark_event(kind, api_version, self.rv)
        obj = {"kind": kind, "apiVersion": api_version,
               "metadata": {"resourceVersion": str(self.rv),
                            "annotations": {INITIAL_EVENTS_END: "true"}}}
        return event_line("BOOKMARK", dump(obj))

    def __iter__(self) -> Iterator[bytes]:
        yield b""  # the headers go out now, as kube-apiserver sends them
        view = self.view
        # Registered (in __init__) before this check: a change after it interrupts us.
        if view is None or not view.changed():
            yield from self._events()
        if self.rewound:
            yield filtering.outdated_event(str(self.rv), REWOUND)
        elif self.reason in RELIST:
            yield filtering.outdated_event(str(self.rv), RELIST[self.reason])
        elif view is not None and view.changed():
            yield filtering.outdated_event(str(self.rv))
        elif view is not None:
            view.served(str(self.rv))  # where the client may resume

    def _events(self) -> Iterator[bytes]:
        out: list[bytes] = []
        size = 0
        initial, self.initial = self.initial, []
        for o in initial:
            line = self._out("ADDED", o.event, o)
            if line is not None:
                out.append(line)
                size += len(line)
                if size >= BATCH_BYTES:
                    yield b"".join(out)
                    out, size = [], 0
        del initial
        if self.end_initial:
            out.append(self._bookmark(initial_end=True))
        if out:
            yield b"".join(out)
        del out
        next_bookmark = next_bookmark_at(self.bookmark_interval, self.deadline)
        stop = self._should_stop
        while not stop():
            now = time.monotonic()
            wait = self.deadline - now
            if self.bookmarks:
                wait = min(wait, next_bookmark - now)
            got = self.state.read(self.seq, max(0.0, min(wait, 5.0)), stop, BATCH_BYTES)
            if got.lost:
                if self.seq < self.state.rewound_seq:
                    # The cloud's versions went back: what this client holds may be gone
                    # from the cloud, and resuming would skip the cloud's new changes up to
                    # its version.  It must list again, as after a compaction.
                    log.warning("%s watch of %s ends with 410: the cloud's resourceVersions "
                                "went back", self.ctx.component or "-",
                                self.state.rt.resource)
                    self.rewound = True
                    return
                log.info("%s watch of %s fell behind the shared history; ending it",
                         self.ctx.component or "-", self.state.rt.resource)
                return
            self.seq = got.next_seq
            lines = [line for c in got.changes
                     if c.rv > self.after and (line := self._change(c)) is not None]
            del got.changes[:]  # not held while the client takes the batch
            if lines:
                chunk = b"".join(lines)
                del lines[:]
                yield chunk
                del chunk
            if self.bookmarks and got.caught_up and time.monotonic() >= next_bookmark \
                    and not stop():
                self.rv = max(self.rv, got.rv)
                yield self._bookmark()
                next_bookmark = next_bookmark_at(self.bookmark_interval, self.deadline)

    def _should_stop(self) -> bool:
        return self.reason is not None or time.monotonic() >= self.deadline

    def _change(self, c: Change) -> bytes | None:
        """The line this client gets for one change of the shared state, or None."""
        self.rv = c.rv
        want = self.want
        rt = self.state.rt
        now = c.type != "DELETED" and selected(want, c.obj)
        was = selected(want, c.prev) if c.prev is not None else False
        if c.type == "DELETED":
            # Without a previous state (never listed): the object itself decides.
            if not (was if c.prev is not None else selected(want, c.obj)):
                return None
            return self._out("DELETED", c.obj.event, c.obj)
        if now:
            return self._out("MODIFIED" if was else "ADDED", c.obj.event, c.obj)
        if was and c.prev is not None:
            # It left the selection: DELETED with its last content at this event's version.
            return self._out("DELETED", at_version(c.prev, rt, c.rv).event, None)
        return None

    def _out(self, etype: str, raw: bytes, obj: Obj | None) -> bytes | None:
        """The event as this client's filters make it (they never change shared objects)."""
        chain = self.chain
        if self.meta:
            return event_line(etype, partial(obj.body if obj is not None else json.loads(raw),
                                             self.meta))
        if chain is None:
            return event_line(etype, raw)
        if obj is not None and obj.key not in self.dropped:
            done = chain.apply_bytes(raw)  # raw is obj.event
            if done is not None:  # filtered on its bytes, or nothing in it would change
                return event_line(etype, done)
        body = obj.body if obj is not None else json.loads(raw)
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        out = chain.apply(body)
        if etype == "DELETED":
            had = key not in self.dropped
            self.dropped.discard(key)
            if not had:
                return None
            return event_line("DELETED", raw if out is None else dump(out))
        if out is None:
            if key in self.dropped:
                return None
            self.dropped.add(key)
            return event_line("DELETED", raw) if etype == "MODIFIED" else None
        if key in self.dropped:
            self.dropped.discard(key)
            etype = "ADDED"
        return event_line(etype, dump(out))

    def close(self) -> None:
        self._life.close()


def selected(want: Selectors, o: Obj) -> bool:
    return want.matches(o.namespace, o.name, o.labels, o.fields)


def partial(body: dict[str, Any], api_version: str) -> bytes:
    """An object as a metadata-only answer carries it (kube-apiserver's
    PartialObjectMetadata: its metadata alone)."""
    return dump({"kind": "PartialObjectMetadata", "apiVersion": api_version,
                 "metadata": body.get("metadata") or {}})


def filtered_item(chain: Chain, o: Obj) -> bytes | None:
    done = chain.apply_bytes(o.item)
    if done is not None:
        return done
    body = o.body
    out = chain.apply(body)
    if out is None:
        return None
    if out is body:
        return o.item
    return dump({k: v for k, v in out.items() if k not in ("kind", "apiVersion")})
