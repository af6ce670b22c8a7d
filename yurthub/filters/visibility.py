"""What each filtered client was not shown: the objects a filter dropped for it.

A watch turns an object that a filter starts dropping into DELETED, but only for a client
that was sent that object before: its list (or an earlier event) showed it.  A watch knows
the events it sent itself; what the list before it dropped is recorded here, per client
(component) and resource, so that the watch which follows the list knows it too.  Only the
dropped objects are recorded (few: most filters never drop), in a bounded LRU; an entry
that fell out makes the watch assume the client has the object, which costs at most a
DELETED for an object the client does not know (client-go ignores those), as YurtHub does.
Several watches of one client may run at once (other selectors): each entry keeps the
value before its last change and when that change was made, so a watch reads the record
as it stood when the watch began, never a decision another watch made after that (which
would make it skip the DELETED its own client needs); its own decisions it keeps itself.
The change's resourceVersion is kept too: a watch that resumes from an older version
(``ClientView.since``: its client knows nothing of that change, as when another watch of
the same component, or a watch that broke before it sent the event, made it) reads the
value before it.  And a list with selectors (kube-proxy's) marks what the record held as
dropped from before it, and it did not drop again, as kept at its version: it showed
those (or they are outside its selectors, and reach its watch as ADDED), whatever changed
while no watch of the client was there to see it.

It also records which answers a client was given under which filter configuration, so
that no client keeps data filtered under an older one.  Each client's configuration has a
generation, moved on by every change that touches it (``forget``); every list served (and
every watch that ends, at the resourceVersion it ended at) leaves a *resume point*: the
resourceVersion the client may watch from next, and the generation it was filtered under.
A watch from a resume point of an older generation would build on data filtered the old
way (the objects did not change, so no event would correct them): it is answered 410
Expired, and client-go lists again.  Resume points are kept in a bounded LRU; one that fell
out is served as any resourceVersion (the watches open at a change are ended with 410
anyway, so only a list followed by a watch across a change relies on it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from cachetools import LRUCache

from yurthub.errors import DecodeError
from yurthub.kube.meta import rv_int
from yurthub.kube.requestinfo import agent_name

Client = tuple[str, str, str]            # (component, group, resource)
ObjectKey = tuple[str, str]              # (namespace, name)


def agent_client(client: Client) -> Client:
    """(agent, group, resource) of a client: the filters are chosen by the User-Agent's name
    alone, and a component key is that name or ``name@...`` (``kube-proxy@pod``, in-cluster
    on 10268; ``edge-x@1000``, another user: access.keys), so a change of filters is one of
    the agent's, for each of its components."""
    component, group, resource = client
    return agent_name(component), group, resource

DEFAULT_SIZE = 100_000
RESUME_POINTS = 20_000


def object_rv(obj: Mapping[str, Any]) -> int:
    """An object's resourceVersion as an integer (0 when it has none it can be read as)."""
    md = obj.get("metadata")
    rv = md.get("resourceVersion") if isinstance(md, dict) else None
    if not isinstance(rv, str):
        return 0
    try:
        return rv_int(rv)
    except DecodeError:
        return 0


def resume_rv(resource_version: str) -> int | None:
    """The version a watch resumes from, or None when it starts afresh ("", "0") or
    the version cannot be read."""
    try:
        return rv_int(resource_version) or None
    except DecodeError:
        return None


class Visibility:
    """Thread-safe record of (client, object) pairs whose object was dropped."""

    def __init__(self, maxsize: int = DEFAULT_SIZE, resume_points: int = RESUME_POINTS
                 ) -> None:
        # (dropped, sequence number of the change, dropped before that change, the
        # resourceVersion of the object the change was decided on)
        self._dropped: LRUCache[tuple[Client, ObjectKey], tuple[bool, int, bool, int]] = \
            LRUCache(maxsize=maxsize)
        self._seq = 0
        self._generation: dict[Client, int] = {}
        self._served: LRUCache[tuple[Client, str], int] = LRUCache(maxsize=resume_points)
        self._lock = threading.Lock()

    def view(self, client: Client) -> ClientView:
        """The client's part, at its configuration's current generation: take it before
        the request's filter chain, so the chain is never older than the generation."""
        with self._lock:
            seq = self._seq
        return ClientView(self, client, self.generation(client), seq)

    def generation(self, client: Client) -> int:
        return self._generation.get(agent_client(client), 0)

    def served(self, client: Client, rv: str, generation: int) -> None:
        """The client may watch from ``rv`` next, with data filtered at ``generation``."""
        if rv:
            with self._lock:
                self._served[(client, rv)] = generation

    def outdated(self, client: Client, rv: str) -> bool:
        """Whether ``rv`` was served to the client under an older configuration."""
        with self._lock:
            got = self._served.get((client, rv))
            return got is not None and got != self._generation.get(agent_client(client), 0)

    def is_dropped(self, client: Client, key: ObjectKey, as_of: int | None = None,
                   since: int | None = None) -> bool:
        """Whether the object was dropped for the client (``as_of``: as the record stood
        at that sequence number, a view's start; ``since``: for a client that knows the
        objects as of that resourceVersion, no later one)."""
        with self._lock:
            got = self._dropped.get((client, key))
        if got is None:
            return False
        dropped, seq, before, rv = got
        if (as_of is not None and seq > as_of) or (since is not None and rv > since):
            return before
        return dropped

    def mark(self, client: Client, key: ObjectKey, dropped: bool, rv: int = 0) -> None:
        """The object, at resourceVersion ``rv``, was ``dropped`` (or kept) for the client."""
        with self._lock:
            got = self._dropped.get((client, key))
            if got is None and not dropped:
                return  # kept, as everything not recorded is: the record stays small
            self._seq += 1
            self._dropped[(client, key)] = (dropped, self._seq,
                                            got[0] if got is not None else False, rv)

    def relisted(self, client: Client, namespace: str, before: int) -> None:
        """A whole list of the client's objects in ``namespace`` ("": all) went out; it
        began at sequence number ``before``.  What the record held from before it is
        superseded: the list marked again what it dropped, and the rest it showed."""
        with self._lock:
            for k in [k for k, (_, seq, _, _) in self._dropped.items() if k[0] == client
                      and seq <= before and namespace in ("", k[1][0])]:
                del self._dropped[k]

    def shown(self, client: Client, namespace: str, before: int, rv: int) -> None:
        """A list of some of the client's objects in ``namespace`` ("": all), with
        selectors, began at sequence number ``before`` and went out at resourceVersion
        ``rv``.  An object the record held as dropped from before it, that the list did
        not drop again, was shown (or is outside the list's selectors: its events then
        reach the client's watch of them as ADDED): kept as of ``rv``.  Marked, not
        removed, so a watch that began earlier still reads what it knew."""
        with self._lock:
            for k, (dropped, seq, _, _) in list(self._dropped.items()):
                if k[0] == client and dropped and seq <= before \
                        and namespace in ("", k[1][0]):
                    self._seq += 1
                    self._dropped[k] = (False, self._seq, True, rv)

    def forget(self, clients: set[Client]) -> None:
        """Drop everything known of ``clients`` ((agent, group, resource): every component
        of those agents; their filters changed: they relist) and move their configurations
        to a new generation."""
        with self._lock:
            for k in [k for k in self._dropped if agent_client(k[0]) in clients]:
                del self._dropped[k]
            for c in clients:
                self._generation[c] = self._generation.get(c, 0) + 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._dropped)


class ClientView:
    """One client's part of a Visibility."""

    def __init__(self, visibility: Visibility, client: Client, generation: int,
                 start: int = 0) -> None:
        self._v = visibility
        self.client = client
        self.generation = generation
        self.start = start  # the record's sequence number when the view was taken
        # For a list of every object of a namespace ("": of all), without selectors or
        # pages: what the client was shown is then all that counts (``relisted``).
        self.covers: str | None = None
        # For any other list (its first page) of a namespace: what it did not drop, it
        # showed or cannot have shown (``shown``).
        self.lists: str | None = None
        # For a watch from a resourceVersion: what its client knows is as of that version.
        self.since: int | None = None

    def changed(self) -> bool:
        """Whether the client's configuration changed since this view was taken."""
        return self._v.generation(self.client) != self.generation

    def served(self, rv: str) -> None:
        """A resume point: ``rv``, filtered at this view's generation (and, for a whole
        list, the end of what the record held before it)."""
        self._v.served(self.client, rv, self.generation)
        if self.covers is not None:
            self._v.relisted(self.client, self.covers, self.start)
        elif self.lists is not None:
            self._v.shown(self.client, self.lists, self.start, resume_rv(rv) or 0)

    def outdated(self, rv: str) -> bool:
        return self._v.outdated(self.client, rv)

    def is_dropped(self, key: ObjectKey) -> bool:
        """As the record stood when this view was taken (what the client's list left), and
        as of the version a watch resumes from."""
        return self._v.is_dropped(self.client, key, self.start, self.since)

    def mark(self, key: ObjectKey, dropped: bool, rv: int = 0) -> None:
        self._v.mark(self.client, key, dropped, rv)
