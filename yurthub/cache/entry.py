"""What a teed response becomes in the cache (``Entry``), and what its handler may ask of
the writer thread that owns the cache tree (``Sink``).

The handlers (cache/handlers.py, cache/list_handler.py) turn bytes into mutations; the
writer (cache/writer.py) owns the collections and the pipes.  Both import this module,
never each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from yurthub.cache.collection import CollectionWriter
from yurthub.cache.views import RecentEvents, Selectors, ViewKey
from yurthub.errors import StorageError
from yurthub.kube.resources import ResourceType
from yurthub.storage import CollectionKey


@dataclass
class Entry:
    """What a tee carries, decided when the response headers arrived."""

    kind: str                    # "object", "list", "watch", "nonresource"
    ck: CollectionKey | None     # the collection it is filed under (None: nonresource)
    rt: ResourceType
    selectors: Selectors | None = None  # list/watch: namespace + selectors of the request
    gzip: bool = False
    continue_token: str = ""     # list: the request's continue parameter
    start_rv: int = 0            # watch: the request's resourceVersion
    # get/list without a resourceVersion, and writes: the cloud's state when it answered
    # (a quorum read), not a watch cache's, which may lag behind what the hub saw already.
    consistent: bool = False
    describe: str = ""
    doc_key: str = ""            # nonresource: where the document is stored
    # When the request's response filters were chosen (monotonic): an answer asked for
    # before its client's filters changed holds what the old ones gave (CollectionWriter).
    asked_at: float = field(default_factory=time.monotonic)

    @property
    def component(self) -> str:
        return self.ck.component if self.ck is not None else ""

    @property
    def resource(self) -> str:
        return self.ck.resource if self.ck is not None else ""

    def __str__(self) -> str:
        return self.describe


class Sink(Protocol):
    """The writer thread as a handler sees it.  Runs on the writer thread; nothing raises
    but ``collection`` (InvalidKeyError for an entry filed under no collection)."""

    @property
    def spool_dir(self) -> str:
        """A directory on the cache's file system for unnamed spool files."""

    def collection(self, entry: Entry) -> CollectionWriter:
        """The writer of the collection ``entry`` is filed under."""

    def other_open_watch(self, me: object, ck: CollectionKey | None, view: ViewKey) -> bool:
        """True when a live watch other than ``me`` is open on collection ``ck``, ``view``."""

    def open_list(self, ck: CollectionKey | None, view: ViewKey) -> bool:
        """True when a list of collection ``ck``, ``view`` is still on its way (its body not
        all read, or not yet committed)."""

    def dropped(self, entry: Entry, reason: str, why: str) -> None:
        """Count and log an entry that will not be committed."""

    def recent_events(self, ck: CollectionKey | None, view: ViewKey) -> RecentEvents:
        """The lines lately applied to a view by any of its watches (see RecentEvents)."""

    def watch_events(self, result: str, n: int) -> None:
        """Count ``n`` watch events read: ``applied`` or ``duplicate`` (skipped)."""

    def invalid_key(self, entry: Entry, why: str) -> None:
        """Count and log an object skipped because its name is not a valid cache key."""

    def nonresource(self, entry: Entry, body: bytes, doc: Any) -> None:
        """Store a discovery document and learn from it."""

    @property
    def max_list_bytes(self) -> int:
        """The largest list worth spooling or inflating: one the quota could take."""

    def storage_failed(self, err: StorageError, what: object, ck: CollectionKey | None = None,
                       growth: int = 0) -> None:
        """A write (or a spool) failed: a quota or a full disk stops caching, anything else
        is counted and logged as an error."""

    def space_problem(self, err: OSError) -> str:
        """The drop reason of an entry whose spool could not be written ("no-space" stops
        caching)."""
