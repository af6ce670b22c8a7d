"""The bounded, persisted history of one collection: records appended by transactions.

``_history`` is a header line followed by one line per record:
``<rv> <crc32 of "<rv> <json>"> <json>\\n``.  Memory holds only (rv, offset, length) per
record; bodies are read from the file on demand through a HistorySlice, which keeps its own
descriptor so a concurrent compaction (an atomic rename of a rewritten file) cannot pull the
file from under a reader.  The last ``limit`` records are the visible window; the file may
hold a little more until a transaction rewrites it.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yurthub.errors import StorageError
from yurthub.storage import files

log = logging.getLogger(__name__)

FILE = "_history"
MAGIC = b"yurthub-history"
_NONE, _LOST = b"none", b"lost"
# A record that is no watch event: the objects a complete list removed, committed with their
# deletes so that recovery can tell them from lost files (``deleted``).  Watches skip it.
REMOVED = "REMOVED"
# The "rv" in a REMOVED record's JSON: above any version, so that a release that does not
# know the type (a downgrade) skips it as newer than what its views vouch for; it took any
# other record for a watch event and sent clients an ADDED with an empty object, which is
# no JSON.  The record's place in the history (its line's version) is its "at".
NEWER_THAN_ANY = 2**63 - 1


def removed_record(rv: int, keys: list[tuple[str, str]]) -> dict[str, Any]:
    """The record of the objects a list at ``rv`` removed."""
    return {"rv": NEWER_THAN_ANY, "at": rv, "type": REMOVED, "keys": [list(k) for k in keys]}


def record_rv(record: dict[str, Any]) -> Any:
    """The version a record is filed at: its "at" when it has one (``removed_record``)."""
    return record.get("at", record.get("rv"))


def encode_record(record: dict[str, Any]) -> tuple[int, bytes]:
    """(rv, line) for one record; ValueError without an int rv, TypeError if not JSON-able."""
    rv = record_rv(record) if isinstance(record, dict) else None
    if not isinstance(rv, int) or isinstance(rv, bool):
        raise ValueError("every history record needs an int 'rv'")
    if not -(2**63) <= rv < 2**63:
        raise ValueError(f"history record rv {rv} does not fit in 64 bits")
    body = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    head = b"%d " % rv
    return rv, head + b"%08x " % zlib.crc32(head + body) + body + b"\n"


def _decode_line(line: bytes) -> tuple[int, bytes]:
    """(rv, json) of one line; ValueError when it is torn or damaged."""
    rv_s, crc_s, body = line.rstrip(b"\n").split(b" ", 2)
    head = rv_s + b" "
    if zlib.crc32(head + body) != int(crc_s, 16) or not line.endswith(b"\n"):
        raise ValueError("history record is damaged")
    return int(rv_s), body


def header(dropped_rv: int | None, lost: bool) -> bytes:
    value = _LOST if lost else (_NONE if dropped_rv is None else b"%d" % dropped_rv)
    return MAGIC + b" 1 " + value + b"\n"


@dataclass(frozen=True)
class Window:
    """What readers see: the visible records of one file, and what was dropped before them."""

    ino: int = 0
    rvs: array[int] = field(default_factory=lambda: array("q"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    lengths: array[int] = field(default_factory=lambda: array("q"))
    dropped_rv: int | None = None
    lost: bool = False


class HistorySlice:
    """Records with rv above a given one, in commit order; read lazily from an open file.

    ``complete`` is False when records the caller needs were dropped.  Iterate to get the
    records (dicts); ``close()`` (or leaving a ``with`` block, or garbage collection)
    releases the file.
    """

    def __init__(self, fd: int | None, items: list[tuple[int, int, int]], *,
                 complete: bool, dropped_rv: int | None) -> None:
        self._fd = fd
        self._items = items
        self.complete = complete
        self.dropped_rv = dropped_rv
        self._finalizer = weakref.finalize(self, os.close, fd) if fd is not None else None

    @property
    def rvs(self) -> list[int]:
        return [rv for rv, _, _ in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for rv, offset, length in self._items:
            if self._fd is None or (self._finalizer is not None and not self._finalizer.alive):
                raise StorageError("history slice is closed")
            try:
                line = os.pread(self._fd, length, offset)
                got_rv, body = _decode_line(line)
                if got_rv != rv:
                    raise ValueError("history record moved")
                record = json.loads(body)
            except OSError as e:
                raise StorageError(f"cannot read history record rv={rv}: {e}") from e
            except ValueError as e:
                raise StorageError(f"history record rv={rv} is damaged: {e}") from e
            yield record

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> HistorySlice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Plan:
    """How a transaction changes the history file, and the records it holds afterwards.

    "append" writes the transaction's lines at ``base``; "replace" swaps in a new file built
    from ``pieces``: ("old", offset, length) from the current file, ("new", offset, length)
    from the transaction's staged lines.
    """

    mode: str
    base: int
    rvs: list[int]
    offsets: list[int]
    lengths: list[int]
    dropped_rv: int | None
    lost: bool
    pieces: list[tuple[str, int, int]] = field(default_factory=list)
    ino: int = 0
    size: int = 0


def _max(a: int | None, *more: int) -> int | None:
    vals = [v for v in (a, *more) if v is not None]
    return max(vals) if vals else None


class History:
    """Writer-side bookkeeping of one collection's history; publishes a Window to readers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slack = max(16, limit // 4)
        self.size = 0                  # bytes in the file, 0 if there is none
        self.rvs: array[int] = array("q")      # every record in the file
        self.offsets: array[int] = array("q")
        self.lengths: array[int] = array("q")
        self.dropped_rv: int | None = None     # covers records outside the window too
        self.lost = False
        self.ino = 0
        self.window = Window()

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, coll_fd: int, limit: int) -> tuple[History, bool]:
        """The history in ``_history``; (history, damaged).  Damage marks it lost."""
        h = cls(limit)
        data = files.read_optional(coll_fd, FILE)
        try:
            # why: the file is appended to in place (journal.Applier): a hard link planted
            # there had the hub write into a file outside the cache.
            if data is not None and os.stat(FILE, dir_fd=coll_fd,
                                            follow_symlinks=False).st_nlink != 1:
                raise ValueError("a hard link to another file")
        except ValueError as e:
            log.warning("history is damaged (%s); resumes from before now will be refused", e)
            return cls.lost_one(limit), True
        if not data:
            h.publish()
            return h, False
        try:
            h._parse(data)
            h.ino = os.stat(FILE, dir_fd=coll_fd, follow_symlinks=False).st_ino
        except ValueError as e:
            log.warning("history is damaged (%s); resumes from before now will be refused", e)
            return cls.lost_one(limit), True
        h.publish()
        return h, False

    @classmethod
    def lost_one(cls, limit: int) -> History:
        """An empty history that refuses every resume from before now (its events are gone:
        a damaged file, or one set aside)."""
        h = cls(limit)
        h.lost = True
        h.publish()
        return h

    def _parse(self, data: bytes) -> None:
        head, sep, _ = data.partition(b"\n")
        parts = head.split(b" ")
        if not sep or len(parts) != 3 or parts[0] != MAGIC or parts[1] != b"1":
            raise ValueError("bad header")
        self.lost = parts[2] == _LOST
        self.dropped_rv = None if parts[2] in (_NONE, _LOST) else int(parts[2])
        pos = len(head) + 1
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                raise ValueError("torn record at the end")
            rv, _ = _decode_line(data[pos:end + 1])
            self.rvs.append(rv)
            self.offsets.append(pos)
            self.lengths.append(end + 1 - pos)
            pos = end + 1
        self.size = len(data)
        self.dropped_rv = _max(self.dropped_rv, *self.rvs[:max(0, len(self.rvs) - self.limit)])

    def publish(self) -> None:
        n = self.limit
        self.window = Window(self.ino, self.rvs[-n:], self.offsets[-n:], self.lengths[-n:],
                             self.dropped_rv, self.lost)

    # -- reading --------------------------------------------------------------------------

    def slice_after(self, coll_fd: int, rv: int) -> HistorySlice:
        for _ in range(5):
            w = self.window
            complete = not w.lost and (w.dropped_rv is None or rv >= w.dropped_rv)
            items = [(r, o, n) for r, o, n in zip(w.rvs, w.offsets, w.lengths, strict=True)
                     if r > rv]
            if not items:
                return HistorySlice(None, [], complete=complete, dropped_rv=w.dropped_rv)
            fd = os.open(FILE, files.O_READ, dir_fd=coll_fd)
            st = os.fstat(fd)
            if st.st_ino == w.ino and st.st_size >= items[-1][1] + items[-1][2]:
                return HistorySlice(fd, items, complete=complete, dropped_rv=w.dropped_rv)
            os.close(fd)  # rewritten between our look at the window and the open: again
        raise StorageError("history is being rewritten too fast to read")

    def deleted(self, coll_fd: int, wanted: dict[tuple[str, str], int]) -> set[tuple[str, str]]:
        """Which of ``wanted`` ((namespace, name) -> the resourceVersion last known of it)
        a commit deleted: its last record is a watch event's DELETED or a list's REMOVED
        (``removed_record``), at or above that version.

        Recovery asks for the objects a lazily saved index still lists but whose files are
        gone: a delete commits its history record with it (one transaction), so a file
        deleted by a commit is explained by its record, and is not a lost object.  A history
        that cannot be read explains nothing."""
        if not wanted:
            return set()
        last: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            with self.slice_after(coll_fd, min(wanted.values()) - 1) as records:
                for rec in records:
                    if rec.get("type") == REMOVED:
                        keys = [tuple(k) for k in rec.get("keys") or ()
                                if isinstance(k, list) and len(k) == 2]
                    else:
                        keys = [(rec.get("ns", ""), rec.get("name", ""))]
                    for key in keys:
                        if key in wanted:
                            last[key] = rec
        except (OSError, StorageError) as e:
            log.warning("cannot read the history to explain missing files: %s", e)
            return set()
        return {k for k, rec in last.items()
                if rec.get("type") in ("DELETED", REMOVED) and isinstance(record_rv(rec), int)
                and record_rv(rec) >= wanted[k]}

    # -- writing (the writer thread only) ---------------------------------------------------

    def plan(self, rvs: list[int], lengths: list[int], reset: int | None) -> Plan:
        """Decide how a transaction's records (and reset) reach the file."""
        if (reset is None and not self.lost and self.size > 0
                and len(self.rvs) + len(rvs) <= self.limit + self.slack):
            offsets, pos = [], self.size
            for n in lengths:
                offsets.append(pos)
                pos += n
            return Plan("append", self.size, rvs, offsets, lengths, None, False, size=pos)
        w = self.window
        old = [] if reset is not None else list(zip(w.rvs, w.offsets, w.lengths, strict=True))
        new, pos = [], 0
        for rv, n in zip(rvs, lengths, strict=True):
            new.append((rv, pos, n))
            pos += n
        everything = [("old", *r) for r in old] + [("new", *r) for r in new]
        keep, gone = everything[-self.limit:], everything[:-self.limit]
        dropped = _max(self.dropped_rv, *(r[1] for r in gone))
        if reset is not None:
            dropped = _max(dropped, reset, *self.rvs)
        elif self.lost and rvs:
            dropped = _max(dropped, min(rvs))
        lost = self.lost and reset is None and not rvs
        head = header(dropped, lost)
        offsets, pos = [], len(head)
        for _, _, _, n in keep:
            offsets.append(pos)
            pos += n
        return Plan("replace", 0, [r[1] for r in keep], offsets, [r[3] for r in keep], dropped,
                    lost, pieces=[(src, o, n) for src, _, o, n in keep], size=pos)

    def build(self, coll_fd: int, stage_fd: int, staged: str | None, out: str,
              plan: Plan) -> None:
        """Write the replacement file ``out`` into the staging dir for a "replace" plan."""
        chunks = [header(plan.dropped_rv, plan.lost)]
        new_data = files.read_file(stage_fd, staged) if staged is not None else b""
        old_fd = None
        try:
            for src, o, n in plan.pieces:
                if src == "new":
                    chunks.append(new_data[o:o + n])
                    continue
                if old_fd is None:
                    old_fd = os.open(FILE, files.O_READ, dir_fd=coll_fd)
                chunks.append(os.pread(old_fd, n, o))
        finally:
            if old_fd is not None:
                os.close(old_fd)
        plan.ino = files.write_new(stage_fd, out, chunks).st_ino

    def committed(self, plan: Plan) -> None:
        """Adopt what a transaction wrote, and publish it to readers."""
        if plan.mode == "append":
            before = len(self.rvs)
            self.rvs.extend(plan.rvs)
            self.offsets.extend(plan.offsets)
            self.lengths.extend(plan.lengths)
            slid = self.rvs[max(0, before - self.limit):max(0, len(self.rvs) - self.limit)]
            self.dropped_rv = _max(self.dropped_rv, *slid)
        else:
            self.rvs = array("q", plan.rvs)
            self.offsets = array("q", plan.offsets)
            self.lengths = array("q", plan.lengths)
            self.dropped_rv = plan.dropped_rv
            self.lost = plan.lost
            self.ino = plan.ino
        self.size = plan.size
        self.publish()
