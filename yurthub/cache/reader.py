"""Answering get, list and watch from the cache, as the apiserver would have answered them.

design: a list is answered only from a view that covers it (see views.py), by evaluating
the request's exact namespace, label and field selectors on the index of stored objects,
in the apiserver's order (namespace, name), with ``limit``/``continue`` paging; bodies are
read from disk lazily while the response streams.  A watch replays, from the persisted
history, the events after the requested resourceVersion that concern the request's
selectors (an object that leaves the selector arrives as DELETED, one that enters as
ADDED), or answers 410 Expired when that history is gone.  Nothing here writes.

Every file is checked before it is served (cache/integrity.py): one lstat per object
against the index before a list is answered, and the content of any file that is not the
one the store wrote.  A damaged file is reported (``on_damaged``: the writer thread
quarantines it and marks the views that held it incomplete) and the request gets a 503
Status naming the reason, never a shorter list or another object under its name.  A list
whose covering views are all incomplete is refused the same way.  A watch *resumed* from a
resourceVersion over an incomplete view is still served from the history when it covers
that version: the events are whole, and the client already holds the state they apply
to; a watch that needs the current state (no resourceVersion) lists, and is refused.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yurthub.cache.integrity import body_problem
from yurthub.cache.views import CollectionState, Selectors, View, ViewKey, covers, parse_selectors
from yurthub.errors import BadRequest, DamagedObject, Gone, NotFound, ServiceUnavailable
from yurthub.kube.resources import ResourceType
from yurthub.kube.status import not_found_message, resource_details
from yurthub.storage import REMOVED, CollectionKey, DiskStore


@dataclass
class Freshness:
    """How old the answer is; becomes the response's Warning header."""

    updated_at: float
    stale: str = ""

    def warning(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        age = max(0, int(now - self.updated_at))
        text = f"served from the yurthub cache, age {_human(age)}"
        if now < self.updated_at - CLOCK_SLACK:
            # A node without a real-time clock rebooted offline: "age 0s" would call an
            # answer days old fresh.
            text = (f"served from the yurthub cache, age unknown: current at "
                    f"{_iso(self.updated_at)}, after this node's clock ({_iso(now)})")
        if self.stale:
            text += f"; may be incomplete: {self.stale}"
        return f'299 - "{text}"'


CLOCK_SLACK = 5.0   # seconds a cached time may be ahead of the clock that reads it


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _human(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@dataclass
class ListPage:
    kind: str
    api_version: str
    resource_version: int
    keys: Sequence[tuple[str, str]]
    continue_token: str
    remaining: int
    freshness: Freshness
    item_kind: str = ""   # the kind of the items ("" when not known)


@dataclass
class WatchStart:
    """What a local watch sends first, and the version it then waits at."""

    # (type, object JSON); iterate once.  Bodies may be read lazily: iterating raises
    # ServiceUnavailable for a file damaged since it was checked (see ``bodies``).
    events: Iterable[tuple[str, bytes]]
    resource_version: int
    freshness: Freshness


class KeyRange(Sequence[tuple[str, str]]):
    """``order[lo:hi]`` without the copy: one page of a list over the shared order."""

    __slots__ = ("_hi", "_lo", "_order")

    def __init__(self, order: Sequence[tuple[str, str]], lo: int, hi: int) -> None:
        self._order, self._lo, self._hi = order, lo, max(lo, hi)

    @classmethod
    def namespace(cls, order: Sequence[tuple[str, str]], namespace: str) -> KeyRange:
        """Every key of ``namespace`` ("": all of them)."""
        if not namespace:
            return cls(order, 0, len(order))
        return cls(order, bisect.bisect_left(order, namespace, key=_namespace),
                   bisect.bisect_right(order, namespace, key=_namespace))

    def __len__(self) -> int:
        return self._hi - self._lo

    def __getitem__(self, i: Any) -> Any:
        r = range(self._lo, self._hi)[i]
        if isinstance(r, range):
            if r.step == 1:
                return KeyRange(self._order, r.start, r.stop)
            return [self._order[j] for j in r]
        return self._order[r]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return itertools.islice(self._order, self._lo, self._hi)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KeyRange({list(self)!r})"


def _namespace(key: tuple[str, str]) -> str:
    return key[0]


# (collection, namespace, name, why): a file that cannot be trusted was found.
DamageReport = Callable[[CollectionKey, str, str, str], None]


class CacheReader:
    """Read-only queries over the store for the local proxy."""

    def __init__(self, store: DiskStore, on_damaged: DamageReport | None = None,
                 unsynced: Mapping[CollectionKey, str] | None = None) -> None:
        self.store = store
        self.on_damaged = on_damaged or (lambda ck, ns, name, why: None)
        # collections whose views are stale but not yet marked so on disk (a full disk)
        self.unsynced: Mapping[CollectionKey, str] = unsynced if unsynced is not None else {}

    def whole_list_problem(self, component: str, rt: ResourceType) -> tuple[str, bool]:
        """Why ``component``'s cached ``rt`` holds no whole list of every object (a shared
        state's copy: proxy/mux.py), "" when it does; and whether it holds none at all.  A
        stale one is whole: it is served offline, marked so (a broken watch marks it)."""
        ck = CollectionKey(component, rt.group, rt.version, rt.resource, rt.namespaced)
        try:
            view = CollectionState.from_json(self.store.state(ck) or {}).views.get(
                ViewKey("", "", ""))
        except ValueError as e:
            return f"its cached state cannot be read ({e})", False
        if view is None:
            return "its cached copy holds no complete list", True
        if view.incomplete:
            return f"its cached copy is not whole ({view.incomplete})", False
        return "", False

    def _damaged(self, ck: CollectionKey, ns: str, name: str, why: str) -> ServiceUnavailable:
        """Report a damaged file; the 503 the request gets instead of a wrong answer."""
        self.on_damaged(ck, ns, name, why)
        what = f"{ns}/{name}" if ns else name
        return ServiceUnavailable(
            f"the cloud is unreachable and the cached {ck.resource} {what!r} of "
            f"{ck.component!r} cannot be trusted ({why}); it was set aside, retry when the "
            "cloud is back", details={"retryAfterSeconds": 5})

    def read(self, ck: CollectionKey, ns: str, name: str, kind: str = "") -> bytes | None:
        """One object's body, checked (None when the cache does not hold it); raises
        ServiceUnavailable (and reports it) when its file is damaged."""
        try:
            body, trusted = self.store.read_object(ck, ns, name)
        except DamagedObject as e:
            raise self._damaged(ck, ns, name, str(e)) from None
        if body is not None and not trusted:
            problem = body_problem(ck, ns, name, body, kind)
            if problem:
                raise self._damaged(ck, ns, name, problem)
        return body

    def check_files(self, ck: CollectionKey, keys: Iterable[tuple[str, str]],
                    kind: str = "") -> None:
        """Before a list is answered: every file still the one the store wrote (one lstat
        each), or its content checked; ServiceUnavailable for the first damaged one."""
        for (ns, name), why in sorted(self.store.suspects(ck, keys).items()):
            if why == "changed":
                self.read(ck, ns, name, kind)  # raises when the content is wrong
                continue
            raise self._damaged(ck, ns, name, f"{ck.object_relpath(ns, name)}: its file is "
                                              f"{why}")

    def _state(self, ck: CollectionKey) -> CollectionState:
        state = CollectionState.from_json(self.store.state(ck) or {})
        why = self.unsynced.get(ck)
        if why:
            for view in state.views.values():
                view.stale = view.stale or why
        return state

    # -- get --------------------------------------------------------------------------------

    def get(self, ck: CollectionKey, namespace: str, name: str,
            rt: ResourceType | None = None) -> tuple[bytes, Freshness]:
        """The cached object; NotFound only where a complete list vouches that it is gone
        (with ``rt``: a list of its namespace, or of its name, that would have held it),
        as a list from the cache would show it missing; otherwise ServiceUnavailable."""
        state = self._state(ck)
        body = self.read(ck, namespace, name, state.kind)
        if body is None:
            why = state.lost.get((namespace, name))
            if why:  # "<ns>/<name> was set aside as damaged: <problem>"
                raise ServiceUnavailable(
                    f"the cloud is unreachable and of the cached {ck.resource} of "
                    f"{ck.component!r}, {why}; it may well exist in the cloud: retry when the "
                    "cloud is back", details={"retryAfterSeconds": 5})
            why = self.store.set_aside(ck)
            if why:
                raise ServiceUnavailable(
                    f"the cloud is unreachable and the cached {ck.resource} of "
                    f"{ck.component!r} cannot be read: {why}; {name!r} may well exist in the "
                    "cloud: retry when the cloud is back", details={"retryAfterSeconds": 5})
            if rt is not None and not self._vouched_missing(ck, rt, state, namespace, name):
                what = f"{namespace}/{name}" if namespace else name
                raise ServiceUnavailable(
                    f"the cloud is unreachable and {ck.resource} {what!r} is not in the cache "
                    f"of {ck.component!r}, which holds no complete list that would show it "
                    "missing; it may well exist in the cloud: retry when the cloud is back",
                    details={"retryAfterSeconds": 5})
            raise NotFound(not_found_message(ck.group, ck.resource, name),
                           details=resource_details(name, ck.group, ck.resource))
        updated = max((v.updated_at for v in state.views.values()), default=0.0)
        return body, Freshness(updated or _mtime_fallback())

    def _vouched_missing(self, ck: CollectionKey, rt: ResourceType, state: CollectionState,
                         namespace: str, name: str) -> bool:
        """True when a complete view would have held ``namespace/name`` (its namespace or
        everything, without a label selector; or its name): its absence is an answer."""
        try:
            want = parse_selectors(namespace, "", f"metadata.name={name}", rt)
            return self.covering_view(ck, rt, want, state) is not None
        except (BadRequest, ServiceUnavailable):  # an incomplete view vouches for nothing
            return False

    # -- list -------------------------------------------------------------------------------

    def covering_view(self, ck: CollectionKey, rt: ResourceType, want: Selectors,
                      state: CollectionState, *, resume: bool = False) -> View | None:
        """The best complete view covering ``want`` (fresh before stale, newest first), or
        None; ServiceUnavailable when the only views covering it lost a member, except for
        a watch ``resume`` (its events are whole; see the module's docstring)."""
        best: View | None = None
        incomplete: View | None = None
        for view in state.views.values():
            if view.key.namespace and view.key.namespace != want.namespace:
                continue  # covers() would say so; hundreds of kubelet's views, unparsed
            try:
                sel = parse_selectors(view.key.namespace, view.key.labels, view.key.fields, rt)
            except BadRequest:
                continue
            if not covers(view, want, sel):
                continue
            if view.incomplete:
                incomplete = incomplete or view
                continue
            if best is None or (bool(best.stale), -best.rv) > (bool(view.stale), -view.rv):
                best = view
        if best is None and incomplete is not None:
            if resume:
                return incomplete
            raise ServiceUnavailable(
                f"the cloud is unreachable and the cached list of {_describe(ck, want)} of "
                f"{ck.component!r} is incomplete: {incomplete.incomplete}; an incomplete list "
                "is never served, retry when the cloud is back",
                details={"retryAfterSeconds": 5})
        return best

    def list(self, ck: CollectionKey, rt: ResourceType, want: Selectors, *,
             limit: int | None, continue_token: str, pinned_name: str = "") -> ListPage:
        """The keys of one page of a list (bodies are read with ``bodies``).

        Raises ServiceUnavailable when no complete list covering the request was cached,
        and Gone for a continue token that does not fit the cache.
        """
        state = self._state(ck)
        view = self.covering_view(ck, rt, want, state)
        entries, order = self.store.ordered(ck)
        if view is None:
            if not (pinned_name and (want.namespace, pinned_name) in entries):
                raise ServiceUnavailable(
                    f"the cloud is unreachable and the cache of {ck.component!r} holds no "
                    f"complete list of {_describe(ck, want)}; retry when the cloud is back",
                    details={"retryAfterSeconds": 5})
            freshness = Freshness(_mtime_fallback())
            rv = 0
        else:
            freshness = Freshness(view.updated_at or view.synced_at, view.stale)
            rv = view.rv
        # ``order`` is the snapshot's keys, sorted once and shared by every list of it
        # (storage/index.py): a list of a whole namespace (or of everything) is a range of
        # it, never a copy; a selector's matches are the shared key objects, 8 bytes each.
        keys: Sequence[tuple[str, str]]
        if view is not None and want.key.unselected:
            keys = KeyRange.namespace(order, want.namespace)
        else:
            keys = []
            for key in order:
                meta = entries[key].meta
                if want.matches(key[0], key[1], meta.get("labels") or {},
                                meta.get("fields") or {}):
                    keys.append(key)
                    if view is None:  # one object by name: its own version
                        rv = max(rv, int(meta.get("rv", 0)))
        # A view vouches for what happened up to its own version, no further: an object it
        # holds may be newer (a get cached it since), but the changes to the others the hub
        # never saw are not.  A client watching the cloud from a newer version would miss
        # them for good; from this one, it is at most told again of what it has.
        start_after, token_rv = _decode_continue(continue_token)
        if token_rv:
            rv = token_rv
        if start_after is not None:
            keys = keys[bisect.bisect_right(keys, start_after):]
        remaining = 0
        token = ""
        if limit is not None and 0 < limit < len(keys):  # <= 0: no limit, as kube's
            remaining = len(keys) - limit
            keys = keys[:limit]
            token = _encode_continue(keys[-1], rv)
        self.check_files(ck, keys, state.kind)
        kind = state.kind or rt.kind
        return ListPage(kind=(kind + "List") if kind else "List", item_kind=kind,
                        api_version=state.api_version or rt.group_version,
                        resource_version=rv, keys=keys, continue_token=token,
                        remaining=remaining, freshness=freshness)

    def bodies(self, ck: CollectionKey, keys: Iterable[tuple[str, str]],
               kind: str = "") -> Iterator[bytes]:
        """Object bodies in order; objects a commit removed meanwhile are skipped.  A file
        damaged since ``list`` checked it raises ServiceUnavailable (and is reported): the
        caller must break the response, never end it short."""
        for ns, name in keys:
            body = self.read(ck, ns, name, kind)
            if body is not None:
                yield body

    def freshness(self, ck: CollectionKey, rt: ResourceType, want: Selectors) -> Freshness:
        """How old the cached answer to ``want`` is (a refusal's Warning: the 410 of a
        watch too old for the history); now when no view answers it."""
        try:
            view = self.covering_view(ck, rt, want, self._state(ck), resume=True)
        except ServiceUnavailable:
            view = None
        if view is None:
            return Freshness(_mtime_fallback())
        return Freshness(view.updated_at or view.synced_at, view.stale)

    # -- watch ------------------------------------------------------------------------------

    def watch_start(self, ck: CollectionKey, rt: ResourceType, want: Selectors,
                    since: str) -> WatchStart:
        """Events a watch from ``since`` must see first (410 Expired when they are gone)."""
        state = self._state(ck)
        view = self.covering_view(ck, rt, want, state, resume=since not in ("", "0"))
        if view is None:
            raise ServiceUnavailable(
                f"the cloud is unreachable and the cache of {ck.component!r} holds no "
                f"complete list of {_describe(ck, want)} to watch",
                details={"retryAfterSeconds": 5})
        freshness = Freshness(view.updated_at or view.synced_at, view.stale)
        if since in ("", "0"):
            # The current state as ADDED events, each body read as the client takes it:
            # read up front, 20 such watches of 10,000 pods held a gigabyte.
            page = self.list(ck, rt, want, limit=None, continue_token="")
            added = (("ADDED", b) for b in self.bodies(ck, page.keys, state.kind))
            return WatchStart(added, page.resource_version, freshness)
        try:
            rv = int(since)
        except ValueError:
            raise BadRequest(f"invalid resource version: {since!r}") from None
        # The view vouches for what happened up to its own version, no further: objects of
        # the collection cached since by other requests (a get, another view's watch) say
        # nothing of the changes to this view's objects the hub never saw.  A bookmark
        # past it would make the client re-watch the cloud from there and miss them.
        current = view.rv
        if rv >= current:
            return WatchStart([], rv, freshness)
        if view.stale or rv < view.from_rv:
            raise Gone(f"too old resource version: {rv} ({view.from_rv})")
        events: list[tuple[str, bytes]] = []
        with self.store.history_after(ck, rv) as history:
            if not history.complete:
                raise Gone(f"too old resource version: {rv} ({view.from_rv})")
            for rec in history:
                if int(rec.get("rv") or 0) > current:
                    continue  # after what the view vouches for (see above)
                ev = _event_for(rec, want)
                if ev is not None:
                    events.append(ev)
        return WatchStart(events, current, freshness)


def _event_for(rec: dict[str, Any], want: Selectors) -> tuple[str, bytes] | None:
    """The event a watcher with ``want`` sees for one history record, if any."""
    if rec.get("type") == REMOVED:
        return None  # a list's removals: no event (the views it could matter to were marked)
    obj = (rec.get("object") or "").encode()
    ns, name = rec.get("ns", ""), rec.get("name", "")
    prev, cur = rec.get("prev"), rec.get("meta") or {}
    was = prev is not None and want.matches(ns, name, prev.get("labels") or {},
                                            prev.get("fields") or {})
    if rec.get("type") == "DELETED":
        # Without a previous state we cannot tell: a DELETED for an unknown object is harmless.
        return ("DELETED", obj) if (was or prev is None) else None
    is_now = want.matches(ns, name, cur.get("labels") or {}, cur.get("fields") or {})
    if is_now:
        return ("MODIFIED" if was else "ADDED", obj)
    return ("DELETED", obj) if was else None


def _describe(ck: CollectionKey, want: Selectors) -> str:
    what = ck.resource + (f".{ck.group}" if ck.group else "")
    if want.namespace:
        what += f" in namespace {want.namespace!r}"
    sel = [s for s in (str(want.labels), str(want.fields)) if s]
    if sel:
        what += " matching " + ",".join(sel)
    return what


def _encode_continue(last: tuple[str, str], rv: int) -> str:
    doc = json.dumps({"v": "yurthub/1", "rv": rv, "ns": last[0], "name": last[1]})
    return base64.urlsafe_b64encode(doc.encode()).decode()


def is_local_continue(token: str) -> bool:
    """A continue token the cache handed out (``yurthub/1``): the cloud cannot read it."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        return False
    return isinstance(doc, dict) and doc.get("v") == "yurthub/1"


CONTINUE_EXPIRED = ("The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.")


def _decode_continue(token: str) -> tuple[tuple[str, str] | None, int]:
    if not token:
        return None, 0
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        if doc.get("v") != "yurthub/1":
            raise ValueError("not ours")
        return (str(doc["ns"]), str(doc["name"])), int(doc["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise Gone(CONTINUE_EXPIRED) from None


def _mtime_fallback() -> float:
    return time.time()
