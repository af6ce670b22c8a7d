"""What each filtered client was not shown: the objects a filter dropped for it.

A watch turns an object that a filter starts dropping into DELETED, but only for a client
that was sent that object before: its list (or an earlier event) showed it.  A watch knows
the events it sent itself; what the list before it dropped is recorded here, per client
(component) and resource, so that the watch which follows the list knows it too.  Only the
dropped objects are recorded (few: most filters never drop), in a bounded LRU; an entry
that fell out makes the watch assume the client has the object, which costs at most a
DELETED for an object the client does not know (client-go ignores those), as YurtHub does.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

Client = tuple[str, str, str]            # (component, group, resource)
ObjectKey = tuple[str, str]              # (namespace, name)

DEFAULT_SIZE = 100_000


class Visibility:
    """Thread-safe record of (client, object) pairs whose object was dropped."""

    def __init__(self, maxsize: int = DEFAULT_SIZE) -> None:
        self._dropped: LRUCache[tuple[Client, ObjectKey], bool] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def view(self, client: Client) -> ClientView:
        return ClientView(self, client)

    def is_dropped(self, client: Client, key: ObjectKey) -> bool:
        with self._lock:
            return self._dropped.get((client, key), False)

    def mark(self, client: Client, key: ObjectKey, dropped: bool) -> None:
        with self._lock:
            if dropped:
                self._dropped[(client, key)] = True
            else:
                self._dropped.pop((client, key), None)

    def forget(self, clients: set[Client]) -> None:
        """Drop everything known of ``clients`` (their filters changed: they relist)."""
        with self._lock:
            for k in [k for k in self._dropped if k[0] in clients]:
                del self._dropped[k]

    def __len__(self) -> int:
        with self._lock:
            return len(self._dropped)


class ClientView:
    """One client's part of a Visibility."""

    def __init__(self, visibility: Visibility, client: Client) -> None:
        self._v = visibility
        self.client = client

    def is_dropped(self, key: ObjectKey) -> bool:
        return self._v.is_dropped(self.client, key)

    def mark(self, key: ObjectKey, dropped: bool) -> None:
        self._v.mark(self.client, key, dropped)
