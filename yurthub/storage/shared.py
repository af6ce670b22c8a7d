"""What a DiskStore shares with its transactions: counters, the spare inodes, reader epochs.

The spare inodes are the files big commits replaced, kept in ``.spare.<id>/`` for the next
big commit to rewrite instead of creating new files (Shared tells why and how it is safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A transaction stages its first puts in new files; past this many it takes spare inodes.
REUSE_AFTER = 64  # so a small commit (a batch of watch events) never looks for spares
# The replaced files of the newest big commits keep their bytes this long; then they are
# emptied (truncated), and kept as spare inodes until newer spares replace them.
SPARE_SECONDS = 600.0
KEEP_TRASH = 2
# Names the Applier gives replaced ("b" + "p<n>") and deleted ("d<n>") objects in a staging
# dir: only those become spares (a replaced _state or _history is never rewritten).
SPARE_PREFIXES = ("bp", "d")


@dataclass
class Trash:
    """The staging dir of a finished big commit, holding the files it replaced or deleted."""

    coll_fd: int
    stage: str
    retired: int          # the epoch from which no new reader can reach its files
    at: float             # time.monotonic() when it was retired
    claimed: bool = False
    emptied: bool = False  # its spares hold no bytes any more (``take_aged``)


@dataclass
class Aged:
    """Kept trash whose spares the janitor is to empty (``Shared.take_aged``)."""

    trash: Trash


@dataclass
class Shared:
    """What the store shares with its transactions: counters, trash, and reader epochs.

    design: a big commit replaces thousands of files.  Freeing their inodes costs the janitor
    ~80 us each (online discard), and on ext4 without a journal every inode freed in the
    last minute slows each new one allocated near it; so the next big commit takes them as
    spares: it renames one into its staging dir and rewrites it, instead of creating a file.
    A spare may still be open in a reader that looked its name up before the commit: readers
    pin the epoch they started in, every commit that retires files advances it, and trash is
    reused (or emptied) only once no reader older than its retirement is left.

    Spares that waited SPARE_SECONDS are emptied, not removed: their old bytes go, their
    inodes stay.  Removing them would leave the next big commit (a relist after a long quiet
    spell) to create every file where thousands of inodes were just freed: on ext4 without a
    journal the allocator then scans past each freed inode for every new one (a kernel
    profile shows ``recently_deleted``): committing 10,000 objects took 1.1-3.3 s then,
    0.8-1.0 s with the emptied spares.  Trash is removed only when newer trash (newer
    spares) replaces it, or with its collection.
    """

    commits: int = 0
    write_errors: int = 0
    quarantined: int = 0
    # Dirs of big commits still holding the replaced files (``.spare.<id>``): spares for the
    # next big commit, removed by the janitor when old or when newer ones exist; close()
    # leaves the young ones for the next open() to adopt.
    trash: list[Trash] = field(default_factory=list)
    epoch: int = 0
    pins: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Transactions not yet finished, per collection path: such a collection is never evicted.
    open_txns: dict[tuple[str, str], int] = field(default_factory=dict)
    # Called by a commit that grows its collection, before its commit point: (collection,
    # bytes); raises QuotaExceeded when the quota cannot take them (the store sets it).
    admit: Callable[[Any, int], None] | None = None

    def pin(self) -> int:
        with self.lock:
            e = self.epoch
            self.pins[e] = self.pins.get(e, 0) + 1
            return e

    def unpin(self, e: int) -> None:
        with self.lock:
            n = self.pins[e] - 1
            if n:
                self.pins[e] = n
            else:
                del self.pins[e]

    def retire(self, coll_fd: int, stage: str) -> None:
        """Queue a big commit's staging dir as trash, after its renames are done."""
        with self.lock:
            self.epoch += 1
            self.trash.append(Trash(coll_fd, stage, self.epoch, time.monotonic()))

    def adopt(self, coll_fd: int, name: str) -> None:
        """Queue spares a previous run of the store left (no reader of this run holds them)."""
        with self.lock:
            self.trash.append(Trash(coll_fd, name, 0, time.monotonic()))

    def claim(self) -> Trash | None:
        """The newest trash no reader can still hold a file of, marked claimed; or None."""
        with self.lock:
            oldest = min(self.pins) if self.pins else None
            for t in reversed(self.trash):
                if not t.claimed and (oldest is None or oldest >= t.retired):
                    t.claimed = True
                    return t
        return None

    def release(self, t: Trash) -> None:
        with self.lock:
            t.claimed = False

    def take_trash(self) -> list[Trash]:
        """Remove from the list and return the trash to delete now: what is not claimed and
        is beyond the newest KEEP_TRASH."""
        with self.lock:
            keep: list[Trash] = []
            drop: list[Trash] = []
            free = [t for t in self.trash if not t.claimed]
            newest = {id(t) for t in free[-KEEP_TRASH:]}
            for t in self.trash:
                if t.claimed or id(t) in newest:
                    keep.append(t)
                else:
                    drop.append(t)
            self.trash[:] = keep
            return drop

    def take_aged(self) -> list[Trash]:
        """The kept trash whose spares still hold bytes after SPARE_SECONDS, once no reader
        older than its retirement is left: marked claimed (no commit takes a spare from it
        meanwhile) until ``emptied`` hands it back."""
        now = time.monotonic()
        with self.lock:
            oldest = min(self.pins) if self.pins else None
            aged = [t for t in self.trash
                    if not t.claimed and not t.emptied and now - t.at >= SPARE_SECONDS
                    and (oldest is None or oldest >= t.retired)]
            for t in aged:
                t.claimed = True
            return aged

    def emptied(self, t: Trash) -> None:
        """``t``'s spares were emptied (or could not be): it is kept, and may be taken again."""
        with self.lock:
            t.emptied = True
            t.claimed = False
