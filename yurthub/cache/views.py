"""Views: the record of which collections (namespace + selectors) were fully synced.

Objects are stored once per component and resource.  A *view* says "every object in this
namespace matching these selectors was in the cache as of resourceVersion rv": it is
created by a complete list, kept current by the watch that follows it, and marked stale
when a gap or a torn stream makes that claim doubtful.  An offline list is answered only
from a view that *covers* it (same or wider namespace, a subset of its selector
requirements), by evaluating the request's exact selectors on the stored objects.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from yurthub.kube import fields as kfields
from yurthub.kube import labels as klabels
from yurthub.kube.resources import ResourceType

# Views one collection keeps: every distinct selector a client lists with makes one, so the
# least recently synced or advanced are forgotten past this many.
MAX_VIEWS = 32
# Views of one object by its name (``metadata.name=X``, nothing else) are bounded apart:
# kubelet's ConfigMap and Secret managers list and watch each object its pods reference
# that way, one reflector per object, so a full node (110 pods, a few references each,
# kube-root-ca.crt per namespace) holds hundreds of them in one collection.  Forgotten,
# the watch of each would be refused offline (no complete list to resume from).
MAX_NAMED_VIEWS = 1024


@dataclass(frozen=True)
class Selectors:
    """A request's parsed namespace and selectors, with their canonical text."""

    namespace: str
    labels: klabels.Selector
    fields: kfields.Selector

    @cached_property
    def key(self) -> ViewKey:
        """Computed once: the writer asks for it with every read of a watch's pipe."""
        return ViewKey(self.namespace, str(self.labels), str(self.fields))

    def matches(self, namespace: str, name: str, labels: Mapping[str, str],
                values: Mapping[str, str]) -> bool:
        """Does an object (its stored labels and selectable field values) match?"""
        if self.namespace and namespace != self.namespace:
            return False
        if not self.labels.matches(labels):
            return False
        if self.fields.empty:
            return True
        return self.fields.matches({**values, "metadata.name": name,
                                    "metadata.namespace": namespace})


def parse_selectors(namespace: str, label_selector: str, field_selector: str,
                    rt: ResourceType) -> Selectors:
    """Parse a request's selectors (raises BadRequest exactly as kube-apiserver would)."""
    return Selectors(namespace, klabels.parse(label_selector or ""),
                     kfields.parse(field_selector or "", rt))


@dataclass(frozen=True)
class ViewKey:
    namespace: str   # "" for all namespaces (and for cluster-scoped resources)
    labels: str      # canonical label selector ("" = everything)
    fields: str      # canonical field selector

    def __str__(self) -> str:
        parts = [self.namespace or "*"]
        if self.labels:
            parts.append(f"l:{self.labels}")
        if self.fields:
            parts.append(f"f:{self.fields}")
        return "/".join(parts)

    @property
    def named(self) -> bool:
        """True for a view of one object by name (what kubelet's per-object reflectors
        list): bounded apart from the others (``MAX_NAMED_VIEWS``)."""
        return (not self.labels and self.fields.startswith("metadata.name=")
                and "," not in self.fields)

    @property
    def unselected(self) -> bool:
        """True when the view holds every object of its namespace: a DELETED is a delete."""
        return not self.labels and not self.fields


@dataclass
class View:
    """One synced collection and how far its watch has carried it."""

    key: ViewKey
    rv: int = 0              # the view is complete as of this resourceVersion
    synced_rv: int = 0       # resourceVersion of the last complete list
    from_rv: int = 0         # watch resume is possible from here on (history contiguity)
    synced_at: float = 0.0   # wall time of the last complete list
    updated_at: float = 0.0  # wall time rv last moved
    stale: str = ""          # why the view can no longer claim completeness ("" = fresh)
    # Why the view lost a member it had (a quarantined, unreadable file): an offline list
    # that needs it is refused until a complete list heals it ("" = whole).
    incomplete: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = asdict(self.key)
        return d

    @classmethod
    def from_json(cls, d: Any) -> View:
        """The view a state document records; ValueError for anything but what to_json
        writes (a missing field takes its default: older versions wrote fewer).

        design: a field this version does not know is refused, not ignored.  A newer
        version may have added one that restricts what the view may answer, as
        ``incomplete`` did: a version ignoring it would serve a list the newer one refused
        (a shorter pod list).  The state is then set aside whole (storage.recovery), and
        lists are refused until the cloud's next list rebuilds the views.
        """
        if not isinstance(d, dict):
            raise ValueError("a view is not a JSON object")
        unknown = sorted(set(d) - {"key", *_VIEW_FIELDS})
        if unknown:
            raise ValueError(f"a view has field(s) this yurthub does not know: {unknown} "
                             "(written by a newer version?)")
        key = d.get("key")
        if (not isinstance(key, dict) or set(key) != {"namespace", "labels", "fields"}
                or not all(isinstance(v, str) for v in key.values())):
            raise ValueError("a view's key is not {namespace, labels, fields} strings")
        for name, want in _VIEW_FIELDS.items():
            value = d.get(name)
            if name in d and (not isinstance(value, want) or isinstance(value, bool)):
                raise ValueError(f"a view's {name} is {type(value).__name__}, "
                                 f"not {_TYPE_NAMES[want]}")
        return cls(key=ViewKey(**key), **{k: v for k, v in d.items() if k != "key"})


# The fields of a persisted view besides its key, and the JSON types they hold.
_VIEW_FIELDS: dict[str, type | tuple[type, ...]] = {
    "rv": int, "synced_rv": int, "from_rv": int, "synced_at": (int, float),
    "updated_at": (int, float), "stale": str, "incomplete": str}
_TYPE_NAMES = {int: "an integer", (int, float): "a number", str: "a string"}


# Lines a watch of the apiserver's JSON encoding starts with, when they carry an object's
# change or a bookmark: the same line from two watches of one view is the same event.
_SHAREABLE = (b'{"type":"ADDED",', b'{"type":"MODIFIED",', b'{"type":"DELETED",',
              b'{"type":"BOOKMARK",')


class RecentEvents:
    """The watch event lines lately applied to one view, so that the same event delivered
    by other open watches of that view (same object, same resourceVersion: the apiserver
    encodes it to the very same bytes) is applied once.

    design: a line's key is one int from its hash and length (~100 bytes with the dict's
    slot); the last ``size`` keys are kept.  A watch lagging further behind its twins than
    that applies its events again, which is correct (an event no newer than the stored
    object changes nothing), only slower.  ERROR events and lines not in the apiserver's
    shape are never skipped.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._keys: dict[int, None] = {}

    def seen(self, line: bytes) -> bool:
        """True when ``line`` was applied to the view lately (by any of its watches)."""
        return line.startswith(_SHAREABLE) and _key(line) in self._keys

    def add(self, line: bytes) -> None:
        """``line`` was applied (remembered after it was, so a line that broke its watch
        is not skipped by the others)."""
        if line.startswith(_SHAREABLE):
            keys = self._keys
            keys[_key(line)] = None
            if len(keys) > self.size:
                del keys[next(iter(keys))]


def _key(line: bytes) -> int:
    return hash(line) ^ (len(line) << 40)


def covers(view: View, want: Selectors, view_sel: Selectors) -> bool:
    """True when ``view`` holds every object ``want`` can select.

    ``view_sel`` is the view's own parsed selectors.  A view of all namespaces covers any
    namespace; selector requirements must be a subset of the request's (a request asks
    for at least what the view asked, so it selects a subset of the view's objects).
    """
    if view.key.namespace and view.key.namespace != want.namespace:
        return False
    return (view_sel.labels.requirements <= want.labels.requirements
            and view_sel.fields.requirements <= want.fields.requirements)


@dataclass
class CollectionState:
    """Persisted per (component, resource): what the objects are and which views exist."""

    kind: str = ""
    api_version: str = ""
    list_kind: str = ""
    views: dict[ViewKey, View] = field(default_factory=dict)
    # Objects whose files were quarantined: (namespace, name) -> why.  A get of one is
    # answered 503 (it may well exist in the cloud), not 404, until it is cached again or a
    # complete list shows it is gone.
    lost: dict[tuple[str, str], str] = field(default_factory=dict)
    # Views whose objects were filtered under response-filter settings that no longer hold
    # (they are stale too): until such a view is listed again, an object is written even
    # at the resourceVersion stored (see CollectionWriter.replaces).  Kept beside the views,
    # not in them, so that a hub that knows nothing of it still reads the state.
    rewrite: set[ViewKey] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "apiVersion": self.api_version,
                               "listKind": self.list_kind,
                               "views": [v.to_json() for v in self.views.values()]}
        if self.lost:
            doc["lost"] = [[ns, name, why] for (ns, name), why in self.lost.items()]
        if self.rewrite:
            doc["rewrite"] = sorted([k.namespace, k.labels, k.fields] for k in self.rewrite)
        return doc

    @classmethod
    def from_json(cls, d: Any) -> CollectionState:
        """The state ``to_json`` wrote; ValueError for a document that is not one (unknown
        fields included: see View.from_json).  Startup sets such a state aside
        (``check_state``), so a running hub only meets what it wrote itself."""
        if not isinstance(d, dict):
            raise ValueError("the state is not a JSON object")
        unknown = sorted(set(d) - {"kind", "apiVersion", "listKind", "views", "lost",
                                   "rewrite"})
        if unknown:
            raise ValueError(f"the state has field(s) this yurthub does not know: {unknown} "
                             "(written by a newer version?)")
        for name in ("kind", "apiVersion", "listKind"):
            if not isinstance(d.get(name, ""), str):
                raise ValueError(f"the state's {name} is not a string")
        raw_views, raw_lost = d.get("views", []), d.get("lost", [])
        raw_rewrite = d.get("rewrite", [])
        if not all(isinstance(x, list) for x in (raw_views, raw_lost, raw_rewrite)):
            raise ValueError("the state's views, lost objects or rewrites are not lists")
        views = [View.from_json(v) for v in raw_views]
        lost: dict[tuple[str, str], str] = {}
        for row in raw_lost:
            if (not isinstance(row, list) or len(row) != 3
                    or not all(isinstance(v, str) for v in row)):
                raise ValueError("a lost object is not [namespace, name, why] strings")
            lost[(row[0], row[1])] = row[2]
        rewrite: set[ViewKey] = set()
        for row in raw_rewrite:
            if (not isinstance(row, list) or len(row) != 3
                    or not all(isinstance(v, str) for v in row)):
                raise ValueError("a view to rewrite is not [namespace, labels, fields] "
                                 "strings")
            rewrite.add(ViewKey(row[0], row[1], row[2]))
        return cls(kind=d.get("kind", ""), api_version=d.get("apiVersion", ""),
                   list_kind=d.get("listKind", ""), views={v.key: v for v in views},
                   lost=lost, rewrite=rewrite & {v.key for v in views})

    def synced(self, key: ViewKey, rv: int, now: float | None = None) -> View:
        """Record a complete list of ``key`` at ``rv``."""
        t = time.time() if now is None else now
        view = View(key=key, rv=rv, synced_rv=rv, from_rv=rv, synced_at=t, updated_at=t)
        self.views[key] = view
        self.rewrite.discard(key)  # every object it holds was just written
        return view

    def bound(self, keep: ViewKey, limit: int = MAX_VIEWS,
              named_limit: int = MAX_NAMED_VIEWS) -> list[ViewKey]:
        """Forget the least recently used views beyond ``limit``, and views of one object
        by name beyond ``named_limit`` (never ``keep``)."""
        gone: list[ViewKey] = []
        for named, bound in ((False, limit), (True, named_limit)):
            kind = [v for v in self.views.values() if v.key.named == named]
            if len(kind) <= bound:
                continue
            order = sorted((v for v in kind if v.key != keep),
                           key=lambda v: max(v.synced_at, v.updated_at))
            gone += [v.key for v in order[:len(kind) - bound]]
        for key in gone:
            del self.views[key]
            self.rewrite.discard(key)
        return gone

    def advance(self, key: ViewKey, rv: int, now: float | None = None) -> None:
        view = self.views.get(key)
        if view is not None and rv > view.rv:
            self.views[key] = replace(view, rv=rv,
                                      updated_at=time.time() if now is None else now)

    def mark_stale(self, key: ViewKey, why: str) -> None:
        view = self.views.get(key)
        if view is not None and not view.stale:
            self.views[key] = replace(view, stale=why)

    def mark_refiltered(self, key: ViewKey, why: str) -> None:
        """The response filters of the view's client changed: stale, and rewritten by its
        next list (its objects' resourceVersions did not change, their filtered bytes may)."""
        if key in self.views:
            self.mark_stale(key, why)
            self.rewrite.add(key)

    def mark_incomplete(self, key: ViewKey, why: str) -> None:
        view = self.views.get(key)
        if view is not None and not view.incomplete:
            self.views[key] = replace(view, incomplete=why)


def check_state(doc: Any) -> None:
    """Raises ValueError when ``doc`` is not a state this version can read (for startup
    recovery and ``cache verify``: such a state is set aside, never half-trusted)."""
    CollectionState.from_json(doc)
