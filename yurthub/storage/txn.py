"""Transactions on one collection: staged writes and the group commit that makes them durable.

design: a transaction writes each put as it comes into a fresh staging directory inside the
collection (``.stage.<id>/p<n>``, mode 0600), so a 50 MB list is never held in memory.
commit() then (1) makes the staging directory durable with one ``syncfs(2)`` of the file
system (or, for a handful of files or with ``durability="fsync"``, an fsync of each staged
file and of the directories), (2) writes and fsyncs ``_journal`` naming every rename,
delete, the new ``_state`` and the history change, and fsyncs the collection directory:
this is the commit point; (3) applies the journal: a hard link keeps each replaced file and
deleted files are renamed into the staging directory, so the step can be undone; (4)
syncs again (syncfs, or fsync of every touched directory) and (5) removes the journal and
the staging directory (a big commit's stays a while: its replaced files are the spare
inodes of the next big commit, see storage.shared), then publishes the new index, state
and history to readers.  A crash before (2) leaves staging debris that startup sweeps; a
crash after it leaves a journal that startup rolls forward (applying is idempotent).  An
I/O error before (2) discards the staging directory; an error in (3) or (4) undoes the
applied steps, syncs, and removes the journal, so the previous state stays and the store
stays usable.  Only the single writer thread runs transactions; readers see the new
snapshot after (5).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from typing import Any

from yurthub.errors import StorageError
from yurthub.storage import files, journal
from yurthub.storage.collection import Collection, encode_state
from yurthub.storage.history import Plan, encode_record
from yurthub.storage.index import Key, Vouch
from yurthub.storage.journal import Applier, Journal
from yurthub.storage.shared import REUSE_AFTER, SPARE_PREFIXES, Shared, Trash
from yurthub.storage.store import Entry, Transaction

log = logging.getLogger(__name__)

# Up to this many staged files, fsync each rather than flush the whole file system.
SMALL_TXN = 8
# A commit with this many changes writes the index at once, instead of within index_interval.
BIG_TXN = 1000
# A commit that replaced or deleted more files than this keeps them as spares (storage.shared).
DEFER_CLEANUP = 64
_ids = itertools.count()


@dataclass(frozen=True)
class Settings:
    durability: str          # "syncfs" or "fsync"
    index_interval: float    # seconds a dirty index may wait before it is written


def _check_json(value: Any, what: str, depth: int = 0) -> None:
    """TypeError unless ``value`` is plain JSON data (what json.dumps accepts with
    allow_nan=False): the index stores metas as JSON, and a bad one must fail at ``put``.
    A walk of the types, ~10x cheaper than encoding the value to throw the text away."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return
    if depth > 32:
        raise TypeError(f"{what} is nested too deeply")
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"{what} has a key that is not a string: {k!r}")
            _check_json(v, what, depth + 1)
    elif t is list or t is tuple:
        for v in value:
            _check_json(v, what, depth + 1)
    elif t is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"{what} is not JSON-serializable: {value!r}")
    else:
        _json(value, what)  # subclasses and the rest: let json decide


def _json(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} is not JSON-serializable: {e}") from None


class DiskTransaction(Transaction):
    """A transaction of DiskStore; the contract of each method is in storage.store."""

    def __init__(self, coll: Collection, settings: Settings, shared: Shared) -> None:
        self._coll = coll
        self._settings = settings
        self._shared = shared
        self._id = f"{os.getpid()}.{time.time_ns():x}.{next(_ids)}"
        self._stage = journal.STAGE_PREFIX + self._id
        self._stage_fd: int | None = None
        self._dirs: dict[str, int] = {}            # namespace -> dir fd, opened while staging
        self._puts: dict[Key, tuple[str, Entry, Vouch]] = {}
        self._deletes: dict[Key, None] = {}        # ordered set
        self._state: bytes | None = None
        self._hist_fd: int | None = None
        self._hist_rvs: list[int] = []
        self._hist_lengths: list[int] = []
        self._reset: int | None = None
        self._seq = 0
        self._done = False
        self._spare: Trash | None = None           # claimed trash this one takes inodes from
        self._spare_fd: int | None = None
        self._spare_names: Any = None              # os.scandir of the claimed trash dir
        self._spares_done = False
        path = coll.key.path
        shared.open_txns[path] = shared.open_txns.get(path, 0) + 1

    # -- staging --------------------------------------------------------------------------

    def _live(self) -> None:
        if self._done:
            raise StorageError(f"transaction on {self._coll.key} is finished")

    def _stage_dir(self) -> int:
        if self._stage_fd is None:
            self._stage_fd, _ = files.open_dir(self._stage, self._coll.fd, create=True)
        return self._stage_fd

    def _staging_failed(self, what: str, e: OSError) -> StorageError:
        self._shared.write_errors += 1
        self.abort()
        log.warning("staging %s in %s failed: %s", what, self._coll.key, e)
        return StorageError(f"cannot stage {what} in {self._coll.key}: {e}")

    def put(self, namespace: str, name: str, body: bytes, meta: dict[str, Any]) -> None:
        self._live()
        self._coll.key.check_object(namespace, name)
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("body must be bytes")
        _check_json(meta, "meta")
        key = (namespace, name)
        staged = f"p{self._seq}"
        self._seq += 1
        try:
            stage_fd = self._stage_dir()
            if namespace and namespace not in self._dirs:
                self._dirs[namespace], _ = files.open_dir(namespace, self._coll.fd, create=True)
            fsync = self._settings.durability == "fsync"
            st = self._reuse(stage_fd, staged, body, fsync) if self._seq > REUSE_AFTER else None
            if st is None:
                st = files.write_new(stage_fd, staged, [bytes(body)], fsync=fsync)
            old = self._puts.pop(key, None)
            if old is not None:
                files.unlink_optional(stage_fd, old[0])
        except OSError as e:
            raise self._staging_failed(f"{namespace}/{name}", e) from e
        self._deletes.pop(key, None)
        # The checksum reads must compare against (index.py): summed over the bytes given,
        # outside the GIL for a big body.
        self._puts[key] = (staged, Entry(meta, st.st_size),
                           (st.st_ino, st.st_size, st.st_mtime_ns, zlib.crc32(body)))

    def _reuse(self, stage_fd: int, staged: str, body: bytes,
               fsync: bool) -> os.stat_result | None:
        """Stage ``body`` in a spare inode from the trash (see storage.shared); None when there is
        no spare to take, and the caller creates a file."""
        if self._spares_done:
            return None
        if self._spare is None:
            self._spare = self._shared.claim()
            if self._spare is None:
                self._spares_done = True
                return None
            try:
                self._spare_fd, _ = files.open_dir(self._spare.stage, self._spare.coll_fd)
                self._spare_names = os.scandir(self._spare_fd)
            except OSError as e:
                log.debug("no spares from %s: %s", self._spare.stage, e)
                self._spares_done = True
                return None
        for entry in self._spare_names:
            if not entry.name.startswith(SPARE_PREFIXES):
                continue
            try:
                os.rename(entry.name, staged, src_dir_fd=self._spare_fd, dst_dir_fd=stage_fd)
            except FileNotFoundError:
                continue
            st = files.rewrite_spare(stage_fd, staged, body, fsync=fsync)
            if st is not None:
                return st
        self._spares_done = True
        return None

    def delete(self, namespace: str, name: str) -> None:
        self._live()
        self._coll.key.check_object(namespace, name)
        key = (namespace, name)
        old = self._puts.pop(key, None)
        if old is not None and self._stage_fd is not None:
            try:
                files.unlink_optional(self._stage_fd, old[0])
            except OSError as e:
                raise self._staging_failed(f"{namespace}/{name}", e) from e
        self._deletes[key] = None

    def set_state(self, state: dict[str, Any]) -> None:
        self._live()
        self._state = _json(state, "state")

    def append_history(self, records: list[dict[str, Any]]) -> None:
        self._live()
        encoded = [encode_record(r) for r in records]
        if not encoded:
            return
        try:
            if self._hist_fd is None:
                self._hist_fd = os.open("h", files.O_NEW, files.FILE_MODE,
                                        dir_fd=self._stage_dir())
                os.fchmod(self._hist_fd, files.FILE_MODE)
            files.write_all(self._hist_fd, b"".join(line for _, line in encoded))
        except OSError as e:
            raise self._staging_failed("history", e) from e
        self._hist_rvs += [rv for rv, _ in encoded]
        self._hist_lengths += [len(line) for _, line in encoded]

    def reset_history(self, dropped_rv: int) -> None:
        self._live()
        if not isinstance(dropped_rv, int) or isinstance(dropped_rv, bool) or not (
                -(2**63) <= dropped_rv < 2**63):
            raise ValueError("dropped_rv must be a 64-bit int")
        if self._hist_fd is not None:
            try:
                os.ftruncate(self._hist_fd, 0)
                os.lseek(self._hist_fd, 0, os.SEEK_SET)
            except OSError as e:
                raise self._staging_failed("history", e) from e
        self._hist_rvs, self._hist_lengths = [], []
        self._reset = dropped_rv if self._reset is None else max(self._reset, dropped_rv)

    # -- commit ---------------------------------------------------------------------------

    def commit(self) -> None:
        self._live()
        coll = self._coll
        if not (self._puts or self._deletes or self._state is not None or self._hist_rvs
                or self._reset is not None):
            self._finish()
            return
        growth = self.growth()
        if growth > 0 and self._shared.admit is not None:
            try:
                self._shared.admit(coll, growth)  # may evict idle collections to make room
            except StorageError:
                self.abort()  # over the quota: nothing of it is committed
                raise
        syncfs = self._settings.durability == "syncfs"
        small = len(self._puts) <= SMALL_TXN
        journal_written = False
        plan: Plan | None = None
        try:
            j, plan = self._prepare()
            self._make_durable(use_syncfs=syncfs and not small)
            files.unlink_optional(coll.fd, journal.FILE)  # left by a failed cleanup
            journal_written = True
            files.write_new(coll.fd, journal.FILE, j.encode(), fsync=True)
            os.fsync(coll.fd)
        except OSError as e:
            self._shared.write_errors += 1
            log.warning("a commit to %s failed before its commit point, nothing changed: %s",
                        coll.key, e)
            self._discard(journal_written)
            raise StorageError(f"commit to {coll.key} failed before its commit point: "
                               f"{e}") from e
        applier = Applier(coll.fd, j, self._stage_fd, undo=True, dirs=self._dirs)
        try:
            applier.run()
            applier.sync(syncfs and len(self._puts) + len(self._deletes) > SMALL_TXN)
            kept = applier.kept()
        except OSError as e:
            self._shared.write_errors += 1
            self._undo(applier)
            if applier.history_refused:
                coll.needs_recovery = True  # sets the entry aside before the next commit
            raise StorageError(f"commit to {coll.key} failed and was rolled back: {e}") from e
        finally:
            applier.close()
        try:
            os.unlink(journal.FILE, dir_fd=coll.fd)
            if kept > DEFER_CLEANUP:
                spare = journal.SPARE_PREFIX + self._id
                os.rename(self._stage, spare, src_dir_fd=coll.fd, dst_dir_fd=coll.fd)
                self._shared.retire(coll.fd, spare)
            else:
                files.remove_any(coll.fd, self._stage)
        except OSError as e:
            log.warning("cleanup after a commit to %s failed (startup will finish it): %s",
                        coll.key, e)
        self._publish(plan)
        self._finish()

    def growth(self) -> int:
        """Bytes the commit would add to its collection (negative: it frees some); the
        history counts as appended, an upper bound (it is trimmed to its limit)."""
        entries = self._coll.index.snapshot
        grown = sum(self._hist_lengths)
        for key, (_, entry, _) in self._puts.items():
            old = entries.get(key)
            grown += entry.size - (old.size if old is not None else 0)
        for key in self._deletes:
            old = entries.get(key)
            grown -= old.size if old is not None else 0
        return grown

    def _prepare(self) -> tuple[Journal, Plan | None]:
        """Write the remaining staged files; the journal that will apply them."""
        coll = self._coll
        stage_fd = self._stage_dir()
        inline_fsync = self._settings.durability == "fsync"
        if self._state is not None:
            files.write_new(stage_fd, "s", [encode_state(self._state)], fsync=inline_fsync)
        plan = None
        hist: dict[str, Any] | None = None
        if self._hist_rvs or self._reset is not None:
            plan = coll.history.plan(self._hist_rvs, self._hist_lengths, self._reset)
            if plan.mode == "append":
                hist = {"mode": "append", "file": "h", "base": plan.base}
            else:
                coll.history.build(coll.fd, stage_fd, "h" if self._hist_rvs else None, "H",
                                   plan)
                hist = {"mode": "replace", "file": "H"}
        puts = [(ns, name, staged) for (ns, name), (staged, _, _) in self._puts.items()]
        j = Journal(self._stage, puts, list(self._deletes), "s" if self._state else None, hist)
        return j, plan

    def _make_durable(self, use_syncfs: bool) -> None:
        """Staged files and their directory entries reach the disk before the journal."""
        assert self._stage_fd is not None
        if use_syncfs:
            files.syncfs(self._stage_fd)
            return
        names = ["h", "H"]  # history files are never fsynced while staged
        if self._settings.durability != "fsync":  # a small syncfs-mode transaction
            names += [s for s, _, _ in self._puts.values()] + (["s"] if self._state else [])
        for name in names:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=self._stage_fd)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.fsync(self._stage_fd)
        os.fsync(self._coll.fd)  # the staging dir's entry and new namespace dirs
        if self._spare_fd is not None:
            os.fsync(self._spare_fd)  # the spares renamed out of it

    def _discard(self, journal_written: bool) -> None:
        """Undo a commit that failed before (or while) its journal was written."""
        coll = self._coll
        if journal_written:
            try:
                files.unlink_optional(coll.fd, journal.FILE)
                os.fsync(coll.fd)
            except OSError as e:
                # The journal may yet be valid: let recovery decide, and keep the staging dir.
                log.error("cannot remove the journal of a failed commit to %s: %s", coll.key, e)
                coll.needs_recovery = True
                self._finish()
                return
        self.abort()

    def _undo(self, applier: Applier) -> None:
        coll = self._coll
        syncfs = self._settings.durability == "syncfs"
        try:
            applier.rollback()
            applier.sync(syncfs and len(self._puts) + len(self._deletes) > SMALL_TXN,
                         stage=True)
            os.unlink(journal.FILE, dir_fd=coll.fd)
            os.fsync(coll.fd)
        except OSError as e:
            log.error("rolling back a failed commit to %s failed too (%s); it will be rolled "
                      "forward from its journal", coll.key, e)
            coll.needs_recovery = True
            self._finish()
            return
        log.warning("a commit to %s failed and was rolled back", coll.key)
        self.abort()

    def _publish(self, plan: Plan | None) -> None:
        # Objects, then history, then state: a reader that reads the state first never
        # finds objects or history older than the state claims.
        coll = self._coll
        coll.index.update(((k, e, st) for k, (_, e, st) in self._puts.items()), self._deletes)
        if plan is not None:
            coll.history.committed(plan)
        if self._state is not None:
            coll.state_json = self._state
        self._shared.commits += 1
        idx = coll.index
        if idx.unsaved >= BIG_TXN or (
                idx.unsaved and time.monotonic() - idx.saved_at >= self._settings.index_interval):
            try:
                idx.persist(coll.fd)
            except OSError as e:
                log.warning("cannot write the index of %s (startup will rebuild it): %s",
                            coll.key, e)

    # -- the end ---------------------------------------------------------------------------

    def _finish(self) -> None:
        """Release descriptors; the staging dir (if any) is left to abort or startup."""
        if self._done:
            return
        self._done = True
        path = self._coll.key.path
        left = self._shared.open_txns.get(path, 1) - 1
        if left > 0:
            self._shared.open_txns[path] = left
        else:
            self._shared.open_txns.pop(path, None)
        if self._spare_names is not None:
            self._spare_names.close()
            self._spare_names = None
        if self._spare is not None:
            self._shared.release(self._spare)
            self._spare = None
        for fd in [self._hist_fd, self._stage_fd, self._spare_fd, *self._dirs.values()]:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._hist_fd = self._stage_fd = self._spare_fd = None
        self._dirs.clear()

    def abort(self) -> None:
        if self._done:
            return
        self._finish()
        try:
            files.remove_any(self._coll.fd, self._stage)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove staging dir of %s (startup will): %s", self._coll.key, e)

    def __enter__(self) -> DiskTransaction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
