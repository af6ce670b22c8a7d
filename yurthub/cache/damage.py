"""What happens to a damaged cache file: quarantined, and the views that held it incomplete.

design: damage is found in two places.  Startup recovery (storage) quarantines files that
are torn, not regular files, or hold another object than their path names, and reports the
objects lost per collection; ``apply_recovery`` marks the views that held them incomplete
before the writer thread starts, so no request ever sees such a view as whole.  While the
hub runs, the offline reader finds a file damaged (an editor, bit rot, a restore from a
backup) and ``report``s it from its request thread; the writer thread, the one owner of the
tree's writes, checks the file once more (a commit may have replaced it meanwhile),
quarantines it and marks the views.  The next complete list from the cloud heals them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from yurthub.cache.collection import CollectionWriter
from yurthub.cache.entry import Entry
from yurthub.cache.integrity import body_problem
from yurthub.cache.mutation import Mutation
from yurthub.errors import DamagedObject, InvalidKeyError, StorageError
from yurthub.kube.resources import ResourceType
from yurthub.metrics import Metrics
from yurthub.storage import CollectionKey, DiskStore, LostObject

log = logging.getLogger(__name__)

TypeOf = Callable[[CollectionKey], "ResourceType | None"]
Collections = Callable[[Entry], CollectionWriter]


class Damage:
    """Turns damaged files into quarantined files and incomplete views."""

    def __init__(self, store: DiskStore, metrics: Metrics, type_of: TypeOf) -> None:
        self.store = store
        self.metrics = metrics
        self.type_of = type_of
        self._pending: set[tuple[CollectionKey, str, str]] = set()
        self._lock = threading.Lock()

    def apply_recovery(self, lost: list[LostObject]) -> None:
        """Startup, before the writer thread runs: record what recovery quarantined."""
        for obj in lost:
            coll = self._collection(obj.key)
            if coll is None:
                continue
            coll.apply(Mutation("lost", namespace=obj.namespace, name=obj.name,
                                meta=obj.meta or {}, why=_why(obj.key, obj.namespace,
                                                              obj.name, obj.why)))
            try:
                coll.flush()
            except StorageError as e:
                log.error("cannot record that %s lost %s/%s: %s", obj.key, obj.namespace,
                          obj.name, e)

    def report(self, ck: CollectionKey, ns: str, name: str, why: str,
               run_on_writer: Callable[[Callable[[], None]], None],
               collection: Collections) -> None:
        """Any thread: a reader found ``ns/name`` damaged; the writer thread deals with it
        (once, however many requests find it meanwhile)."""
        key = (ck, ns, name)
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        log.warning("cached %s %s/%s cannot be trusted: %s", ck, ns or "-", name, why)

        def on_writer() -> None:
            try:
                self._quarantine(ck, ns, name, why, collection)
            finally:
                with self._lock:
                    self._pending.discard(key)
        run_on_writer(on_writer)

    def _quarantine(self, ck: CollectionKey, ns: str, name: str, why: str,
                    collection: Collections) -> None:
        rt = self.type_of(ck)
        if rt is None:
            return
        coll = collection(Entry(kind="object", ck=ck, rt=rt, describe=f"damaged {ck}"))
        coll.flush()  # what this thread had batched is on disk: check the file as it is now
        problem = self._still_damaged(ck, ns, name, coll.state.kind)
        if not problem:
            return  # a commit replaced it meanwhile
        meta = self.store.entries(ck).get((ns, name))
        # The views and the lost mark first, then the file: a reader in between still finds
        # the damaged file (503), never a missing one that looks like a 404.
        coll.apply(Mutation("lost", namespace=ns, name=name,
                            meta=meta.meta if meta is not None else {},
                            why=_why(ck, ns, name, problem)))
        coll.flush()
        self.store.quarantine_object(ck, ns, name)
        self.metrics.cache_damaged.labels(ck.component, ck.dirname).inc()

    def _still_damaged(self, ck: CollectionKey, ns: str, name: str, kind: str) -> str:
        try:
            body, trusted = self.store.read_object(ck, ns, name)
        except DamagedObject as e:
            return str(e)
        if body is None or trusted:
            return ""
        return body_problem(ck, ns, name, body, kind)

    def _collection(self, ck: CollectionKey) -> CollectionWriter | None:
        rt = self.type_of(ck)
        if rt is None:
            log.warning("%s lost objects but its type is not known; its views stay as they "
                        "are until the next list", ck)
            return None
        try:
            return CollectionWriter(self.store, ck, rt)
        except (InvalidKeyError, StorageError) as e:
            log.error("cannot open %s to record its lost objects: %s", ck, e)
            return None


def _why(ck: CollectionKey, ns: str, name: str, problem: str) -> str:
    what = f"{ns}/{name}" if ns else name
    return f"{what} was set aside as damaged: {problem}"
