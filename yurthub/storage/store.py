"""The storage seam: what the cache package may ask of a store, and the errors it gets back.

``Store`` and ``Transaction`` are Protocols; ``DiskStore`` (disk.py) is the implementation.
Threading contract: every read method may be called from any thread at any time after
``open()``; ``transaction()`` and everything on a Transaction, ``write_nonresource``,
``flush`` and ``close`` belong to one writer thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from yurthub.storage.history import HistorySlice
from yurthub.storage.keys import CollectionKey


@dataclass(frozen=True, slots=True)
class Entry:
    """What the index knows of one cached object without opening its file.

    ``meta`` is the caller's opaque, JSON-able metadata (labels, fields...); treat it as
    read-only, it is shared by every snapshot that holds the entry.
    """

    meta: dict[str, Any]
    size: int


@dataclass(frozen=True)
class CollectionStats:
    objects: int
    bytes: int              # of its objects
    history_bytes: int = 0  # of its watch history file


@dataclass(frozen=True)
class StoreStats:
    """Figures for metrics: per collection and in total, plus commit and error counters."""

    collections: Mapping[CollectionKey, CollectionStats]
    objects: int
    bytes: int
    commits: int
    write_errors: int
    quarantined: int


@dataclass(frozen=True)
class LostObject:
    """An object file that startup could not trust and quarantined.

    ``meta`` is what the saved index knew of the object (labels, selectable fields), or None
    when nothing was known; ``why`` says what was wrong.
    """

    key: CollectionKey
    namespace: str
    name: str
    meta: dict[str, Any] | None
    why: str


@dataclass
class RecoveryReport:
    """What ``open()`` found and did."""

    collections: int = 0
    objects: int = 0
    rolled_forward: int = 0      # committed journals applied
    discarded: int = 0           # incomplete (torn) journals thrown away
    swept: int = 0               # staging dirs and temp files removed
    reindexed: int = 0           # object files re-read because the index did not vouch for them
    quarantined: int = 0         # files moved to <root>/_quarantine/
    quarantined_paths: list[str] = field(default_factory=list)
    # quarantined objects, per collection (not in the repr: logged one by one)
    lost: list[LostObject] = field(default_factory=list, repr=False)
    # collections quarantined whole, (component, dirname) -> why: their objects are unknown
    # ((component, "") for a whole component)
    set_aside: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    # collections whose state was set aside (damaged, unreadable): (component, dirname) -> why
    states_set_aside: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the log: what the tree holds, and only the repairs that happened."""
        def n(count: int, what: str) -> str:
            return f"{count} {what}{'' if count == 1 else 's'}"
        done = [f"{label} {n(count, what)}" for label, count, what in (
            ("rolled forward", self.rolled_forward, "committed journal"),
            ("discarded", self.discarded, "torn journal"),
            ("swept", self.swept, "leftover"),
            ("re-read", self.reindexed, "object file"),
            ("quarantined", self.quarantined, "damaged file"),
        ) if count]
        line = f"{n(self.collections, 'collection')}, {n(self.objects, 'object')}"
        if self.quarantined:
            done[-1] += " (in _quarantine/)"
        return f"{line}; {', '.join(done) if done else 'nothing to repair'} " \
               f"({self.seconds:.2f}s)"


class Transaction(Protocol):
    """Changes to one collection that become visible, and durable, all at once on commit.

    A transaction is single-use: after commit() or abort() (or a failed commit) every
    method raises StorageError.  As a context manager it aborts unless committed.
    """

    def put(self, namespace: str, name: str, body: bytes, meta: dict[str, Any]) -> None:
        """Stage ``body`` (the object's JSON) as the object's new content.

        ``namespace`` is ``""`` for cluster-scoped collections.  Raises InvalidKeyError for
        a bad namespace or name (nothing is written), TypeError when ``meta`` is not
        JSON-serializable, StorageError when staging fails (the transaction is then dead).
        """

    def delete(self, namespace: str, name: str) -> None:
        """Remove the object on commit (no error if it does not exist).

        Raises InvalidKeyError for a bad namespace or name, StorageError if the
        transaction is finished.
        """

    def set_state(self, state: dict[str, Any]) -> None:
        """Replace the collection's opaque state on commit.

        Raises TypeError when ``state`` is not JSON-serializable.
        """

    def append_history(self, records: list[dict[str, Any]]) -> None:
        """Append records, in order, to the collection's bounded history on commit.

        Each record needs an int ``"rv"``; ValueError otherwise, TypeError when a record is
        not JSON-serializable, StorageError when staging fails.
        """

    def reset_history(self, dropped_rv: int) -> None:
        """Drop every history record on commit and mark ``rv <= dropped_rv`` as dropped.

        Records appended later in the same transaction are kept.  For the caller that
        detected a gap: a resume from before ``dropped_rv`` then reports incomplete.
        """

    def commit(self) -> None:
        """Make every staged change visible and durable, atomically.

        After a crash at any instant, ``open()`` shows all of the transaction or none of it.
        Raises StorageError on an I/O failure; the transaction is then rolled back, the
        previous state stays intact and the store stays usable (the failure is counted in
        ``stats().write_errors``).  In the rare case that the rollback itself fails, the
        collection is rolled forward from its journal before its next transaction.
        """

    def abort(self) -> None:
        """Throw the staged changes away.  Never raises; idempotent."""


class Store(Protocol):
    """A crash-safe cache tree of collections, each with an index, a state and a history."""

    def open(self) -> RecoveryReport:
        """Create the root if missing, recover, load the indexes.

        Raises StorageError if the root cannot be created or read, or another process holds
        it.
        """

    def close(self) -> None:
        """Persist dirty indexes and release the root.  Never raises; idempotent."""

    def flush(self) -> None:
        """Write changed indexes and finish deferred cleanup, before returning.  Never raises."""

    def tidy(self) -> None:
        """Housekeeping for the writer, every few seconds: write changed indexes and start
        deferred cleanup (removing replaced files) in the background.  Never raises."""

    def read(self, ck: CollectionKey, namespace: str, name: str) -> bytes | None:
        """The object's body as last committed, or None.

        Raises InvalidKeyError for a bad namespace or name, StorageError on an I/O error or
        when a symlink is found on the way.  Within a commit that is being applied, objects
        switch one by one; a reader that needs one consistent view takes ``entries()`` first
        and treats a missing body as deleted.
        """

    def entries(self, ck: CollectionKey) -> Mapping[tuple[str, str], Entry]:
        """An immutable snapshot of the collection's index; empty if unknown.  Never raises."""

    def ordered(self, ck: CollectionKey) -> tuple[Mapping[tuple[str, str], Entry],
                                                  Sequence[tuple[str, str]]]:
        """``entries()`` and its keys sorted by (namespace, name), one order shared by
        every reader of that snapshot (never copy it per request).  Never raises."""

    def state(self, ck: CollectionKey) -> dict[str, Any]:
        """A fresh copy of the collection's state as last committed, ``{}`` if none.

        A commit publishes the objects, then the history, then the state: read the state
        first, and the entries and history read after it are at least as new.  Never raises.
        """

    def history_after(self, ck: CollectionKey, rv: int) -> HistorySlice:
        """Records with ``record["rv"] > rv`` in commit order, read lazily from disk.

        ``complete`` is False when a record the caller would need was dropped (by the bound,
        by ``reset_history`` or by damage), and for an unknown collection.  Raises
        StorageError on an I/O error.
        """

    def collections(self) -> list[CollectionKey]:
        """Every collection in the store.  Never raises."""

    def read_nonresource(self, path: str) -> bytes | None:
        """The body stored for a non-resource URL path (``/version``), or None.

        Raises InvalidKeyError for a path that is not a plain absolute URL path,
        StorageError on an I/O error.
        """

    def write_nonresource(self, path: str, body: bytes) -> None:
        """Store a non-resource body durably (temp file, fsync, rename, fsync dir).

        Raises InvalidKeyError for a bad path, StorageError on an I/O error (the previous
        body stays).
        """

    def stats(self) -> StoreStats:
        """Counts and sizes for metrics.  Never raises."""

    def transaction(self, ck: CollectionKey) -> Transaction:
        """Begin a transaction on ``ck``, creating the collection if needed.

        Several transactions on one collection may be open at once (each stages on its own);
        their commits apply in the order they are called.  Raises StorageError when the
        collection cannot be created or exists on disk with the other scope (namespaced).
        """
