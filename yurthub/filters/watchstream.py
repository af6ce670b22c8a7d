"""A watch stream filtered event by event: what each upstream event becomes for one client.

The rules (YurtHub's, and better where it sends events a client cannot make sense of):
BOOKMARK and ERROR pass untouched.  An object a filter drops becomes DELETED, but only for
a client that was sent it before (by this watch, or by the list before it: see
visibility.py); an object that starts passing becomes ADDED; a changed object stays
MODIFIED; an upstream DELETED reaches the client only if it had the object.  An event no
filter touches goes out as the bytes it came in as.  Chains that never drop (most) need no
bookkeeping at all: each event is only transformed.

Pure and independent of the proxy: ``WatchFilter.event`` takes one decoded-or-raw event
and returns the line to send, so a shared upstream watch can run one WatchFilter per client.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from yurthub.errors import DecodeError
from yurthub.filters.chain import Chain, encode
from yurthub.filters.context import namespace_name
from yurthub.filters.visibility import ClientView, object_rv
from yurthub.kube.framing import Event, WatchFramer

PASS_TYPES = frozenset({"BOOKMARK", "ERROR"})


def line(event_type: str, raw_object: bytes) -> bytes:
    """One watch event as kube-apiserver frames it."""
    return b'{"type":"' + event_type.encode() + b'","object":' + raw_object + b"}\n"


class WatchFilter:
    """One client's watch: feed upstream events, get the lines to send (or None)."""

    def __init__(self, chain: Chain, visibility: ClientView | None = None) -> None:
        self.chain = chain
        self.visibility = visibility
        self._tracking = chain.drops
        # what this watch decided itself: object -> kept from the client
        self._own: dict[tuple[str, str], bool] = {}

    def event(self, ev: Event) -> bytes | None:
        """The line to send for an upstream event, or None to send nothing."""
        got = self.decide(ev)
        return None if got is None else line(*got)

    def decide(self, ev: Event) -> tuple[str, bytes] | None:
        """(type, object JSON) the client gets for an upstream event, or None."""
        etype = ev.type
        if etype in PASS_TYPES:
            return etype, ev.raw
        chain = self.chain
        if not self._tracking:
            raw = chain.apply_raw(ev.raw, ev.obj if ev.decoded else None)
            return etype, ev.raw if raw is None else raw
        obj = ev.obj
        key = namespace_name(obj)
        had = self._had(key, etype)
        out = chain.apply(obj)
        rv = object_rv(obj)
        if etype == "DELETED":
            self._mark(key, False, rv, gone=True)
            if not had:
                return None
            return "DELETED", ev.raw if out is None or out is obj else encode(out)
        if out is None:
            self._mark(key, True, rv)
            return ("DELETED", ev.raw) if had else None
        self._mark(key, False, rv)
        return (etype if had else "ADDED"), (ev.raw if out is obj else encode(out))

    def _had(self, key: tuple[str, str], etype: str) -> bool:
        """Does the client have the object?  An ADDED is new to it unless shown otherwise."""
        own = self._own.get(key)
        if own is not None:
            return not own and etype != "ADDED"
        if self.visibility is not None and self.visibility.is_dropped(key):
            return False
        return etype != "ADDED"

    def _mark(self, key: tuple[str, str], dropped: bool, rv: int, gone: bool = False
              ) -> None:
        if gone:
            self._own.pop(key, None)  # a new object of that name starts afresh
        else:
            self._own[key] = dropped
        if self.visibility is not None:
            self.visibility.mark(key, dropped, rv)


def filter_watch(chunks: Iterable[bytes], chain: Chain,
                 visibility: ClientView | None = None) -> Iterator[bytes]:
    """The filtered watch stream: one output chunk per input chunk that yields events.

    Raises DecodeError (from the iteration) on a frame that is not a watch event, or when
    the stream ends inside an event.
    """
    framer = WatchFramer()
    wf = WatchFilter(chain, visibility)
    for chunk in chunks:
        out = []
        for ev in framer.feed(chunk):
            got = wf.event(ev)
            if got is not None:
                out.append(got)
        if out:
            yield b"".join(out)
    framer.close()


__all__ = ["DecodeError", "WatchFilter", "filter_watch", "line"]
