"""The writes the hub makes itself (an offline write, the renewed Lease), as opposed to the
responses the tees carry: what the request thread hands the writer, and how the writer
commits it, checked against the object it was computed from."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from yurthub.cache.collection import CollectionWriter
from yurthub.cache.entry import Entry
from yurthub.cache.mutation import Mutation
from yurthub.cache.space import SpaceGuard
from yurthub.errors import StorageError, YurthubError
from yurthub.storage import DiskStore

ANY = object()  # LocalWrite.expect: commit whatever the object is now


class StaleLocalWrite(YurthubError):
    """The object changed between the read a local write was computed from and its commit."""


@dataclass
class LocalWrite:
    """An object the hub writes itself (an offline write, the renewed Lease): committed by the
    writer as it is.  The work that made it (a patch) was done by the thread that asks."""

    entry: Entry
    namespace: str
    name: str
    body: bytes
    meta: dict[str, Any]
    future: Future[bytes]
    local: bool = True   # False: the cloud's own object (the hub's renewed Lease)
    expect: Any = ANY    # the stored body the write was computed from (None: absent)


class Writer(Protocol):
    """What a local write needs of the cache writer (cache.writer.CacheWriter)."""

    store: DiskStore
    space: SpaceGuard

    def collection(self, entry: Entry) -> CollectionWriter: ...


def commit_local(writer: Writer, w: LocalWrite) -> None:
    """Commit one LocalWrite on the writer thread; its future gets the body or the error."""
    if not w.future.set_running_or_notify_cancel():
        return
    try:
        coll = writer.collection(w.entry)
        coll.flush()
        if w.expect is not ANY and writer.store.read(coll.ck, w.namespace, w.name) != w.expect:
            raise StaleLocalWrite(f"{w.entry.resource} {w.name!r} changed meanwhile")
        # The URL's namespace and name, never the body's: the caller checked they agree.
        coll.apply(Mutation("upsert", namespace=w.namespace, name=w.name, raw=w.body,
                            meta=w.meta, local=w.local))
        coll.flush()
    except Exception as e:  # the caller gets every failure, the writer goes on
        if isinstance(e, StorageError) and w.entry.ck is not None:
            writer.space.failed(e, w.entry.ck, len(w.body))
        w.future.set_exception(e)
        return
    w.future.set_result(w.body)
