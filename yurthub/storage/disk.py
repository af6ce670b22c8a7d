"""DiskStore: the cache tree on local disk, with its indexes, states and histories.

Layout under the root: ``<component>/<resource>.<version>.<group|core>/[<namespace>/]<name>``
holds each object's JSON exactly as committed; each collection directory also holds
``_collection`` (its key), ``_index``, ``_state``, ``_history`` and, during a commit,
``_journal`` and ``.stage.<id>/``, and after a big commit ``.spare.<id>/`` (the files it
replaced, rewritten by the next big commit instead of new ones: storage.shared.Shared).
``_nonresource/`` holds ``/version`` and discovery documents, ``_quarantine/`` what startup
refused to serve, ``_lock`` the owner's flock.
The writer/reader split is described in storage.store; commits in storage.txn.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from yurthub.errors import StorageError
from yurthub.storage import collection as coll_mod
from yurthub.storage import files
from yurthub.storage.collection import Collection
from yurthub.storage.damage import DamageChecks, close_quietly
from yurthub.storage.documents import Documents
from yurthub.storage.evict import Evicted, Evictions
from yurthub.storage.history import History, HistorySlice
from yurthub.storage.index import Index
from yurthub.storage.janitor import Janitor
from yurthub.storage.keys import CollectionKey
from yurthub.storage.quarantine import QUARANTINE, ensure_root_dirs, set_aside_lock_dir
from yurthub.storage.quota import Quota, Use, plan, plan_new_collection
from yurthub.storage.recovery import NONRESOURCE, MetaLoader, Recovery, StateCheck
from yurthub.storage.rootlock import LOCK_FILE, not_a_cache, open_lock, private_root
from yurthub.storage.shared import SPARE_PREFIXES, Aged, Shared, Trash
from yurthub.storage.store import (
    CollectionStats,
    Entry,
    RecoveryReport,
    Store,
    StoreStats,
)
from yurthub.storage.txn import DiskTransaction, Settings

log = logging.getLogger(__name__)

DURABILITY = ("syncfs", "fsync")
# A collection read or written this recently is never evicted: a reader may be walking it.
EVICT_MIN_IDLE = 30.0
_EMPTY: Mapping[tuple[str, str], Entry] = MappingProxyType({})


class DiskStore(DamageChecks, Documents, Store):
    """The crash-safe cache tree.  The contract of each method is in storage.store.Store.

    ``meta_loader(ck, body)`` rebuilds an object's index metadata when startup finds a file
    the saved index does not vouch for (it runs in open(), before any reader); a body it
    raises for is quarantined like one that is not a JSON object.  Without it such entries
    get ``{}``.  ``state_check(doc)`` raises for a collection's state document this version
    cannot read: startup quarantines it like a state that is not JSON.  ``index_interval``
    bounds how long a changed index waits before it is written; ``lock_timeout`` how long
    open() waits for another process to release the root.  With a ``quota`` (storage.quota)
    a commit that would pass it evicts idle collections, least recently used first, or
    fails with QuotaExceeded; ``clock`` (wall time, persisted as the collections' mtimes)
    orders the collections by last use, never going back when the clock is set back;
    ``monotonic`` says how long ago one was used (``EVICT_MIN_IDLE``).
    """

    def __init__(self, root: str, *, history_limit: int = 1024, durability: str = "syncfs",
                 meta_loader: MetaLoader | None = None, state_check: StateCheck | None = None,
                 index_interval: float = 5.0,
                 lock_timeout: float = 10.0, quota: Quota | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}, not {durability!r}")
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        if durability == "syncfs" and not files.have_syncfs():
            log.warning("syncfs(2) is not available: committing with an fsync per file")
            durability = "fsync"
        self.root = os.path.abspath(root)
        self.history_limit = history_limit
        self.meta_loader = meta_loader
        self.state_check = state_check
        self.lock_timeout = lock_timeout
        self._settings = Settings(durability, index_interval)
        self._shared = Shared()
        self._colls: dict[tuple[str, str], Collection] = {}   # replaced, never mutated
        self._set_aside: dict[tuple[str, str], str] = {}       # see DamageChecks.set_aside
        self._states_set_aside: dict[tuple[str, str], str] = {}  # see state_set_aside
        self._root_fd = -1
        self._lock_fd = -1
        self._nonres_fd = -1
        # non-resource documents found damaged and not used: file name -> path
        self._damaged_docs: dict[str, str] = {}
        self._open = False
        self._janitor: Janitor | None = None
        self.quota = quota
        self.clock = clock
        self.monotonic = monotonic
        self._newest = 0.0   # the latest last_used stamped (see _use)
        self._evictions = Evictions(self._shared)
        self._busy: Callable[[CollectionKey], bool] = lambda ck: False
        self._on_evict: Callable[[CollectionKey, str], None] = lambda ck, why: None
        if quota is not None:
            self._shared.admit = self._admit

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> RecoveryReport:
        if self._open:
            raise StorageError(f"{self.root} is already open")
        started = time.monotonic()
        report = RecoveryReport()
        try:
            self._open_root()
            spares: list[tuple[int, str]] = []
            rec = Recovery(self._root_fd, self.history_limit,
                           self._settings.durability == "syncfs", self.meta_loader, report,
                           spares, self.state_check)
            self._colls = rec.run()
            self._set_aside = dict(report.set_aside)
            self._states_set_aside = dict(report.states_set_aside)
        except OSError as e:
            self._close_fds()
            raise StorageError(f"cannot open the cache at {self.root}: {e}") from e
        except BaseException:
            self._close_fds()
            raise
        self._shared.quarantined += report.quarantined
        self._open = True
        self._janitor = Janitor(lambda drop: self._remove_trash(drop))
        self._janitor.start()
        for coll in self._colls.values():
            coll.last_used = _mtime(coll.fd)
            self._newest = max(self._newest, coll.last_used)
        for coll_fd, name in spares:
            self._shared.adopt(coll_fd, name)
        self._empty_trash_in_background()  # spares beyond what is kept
        report.seconds = time.monotonic() - started
        log.debug("cache %s opened: %s", self.root, report.summary())
        return report

    def _open_root(self) -> None:
        parent = os.path.dirname(self.root)
        if not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(self.root, files.DIR_MODE)
            os.chmod(self.root, files.DIR_MODE)
        except FileExistsError:
            pass
        # The root itself may be reached through a symlink (an operator's choice); nothing
        # under it is.
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        foreign = not_a_cache(self.root, self._root_fd)
        if foreign:
            raise StorageError(foreign)
        set_aside_lock_dir(self._root_fd, LOCK_FILE)
        self._lock_fd = open_lock(self.root, self._root_fd)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise StorageError(f"the cache at {self.root} is in use by another "
                                       "process") from None
                time.sleep(0.05)
        private_root(self.root, self._root_fd)
        self._shared.quarantined += len(ensure_root_dirs(self._root_fd,
                                                         [QUARANTINE, NONRESOURCE]))
        self._nonres_fd, _ = files.open_dir(NONRESOURCE, self._root_fd, create=True)

    def flush(self) -> None:
        if self._janitor is not None:
            self._janitor.wait_idle()
        self._remove_trash([*self._shared.take_trash(), *self._evictions.reapable()])
        self._persist_indexes()

    def tidy(self) -> None:
        self._empty_trash_in_background()
        self._persist_indexes()

    def _persist_indexes(self) -> None:
        for coll in self._colls.values():
            if coll.index.unsaved:
                try:
                    coll.index.persist(coll.fd)
                except OSError as e:
                    log.warning("cannot write the index of %s: %s", coll.key, e)

    def _empty_trash_in_background(self) -> None:
        """Replaced files go to the janitor (storage/janitor.py), unless it is still busy
        with the last batch; the newest trash stays: it holds the spare inodes of the next
        big commit (emptied of their bytes once they waited long: storage.shared)."""
        if self._janitor is None or self._janitor.busy:
            return
        drop: list[Trash | Aged] = [*self._shared.take_trash(), *self._evictions.reapable(),
                                    *(Aged(t) for t in self._shared.take_aged())]
        if drop:
            self._janitor.submit(drop)

    def _remove_trash(self, drop: Sequence[Trash | Aged]) -> None:
        for t in drop:
            if isinstance(t, Aged):
                self._empty_spares(t.trash)
                continue
            if isinstance(t, Evicted):
                Evictions.remove(self._root_fd, [t])
                continue
            try:
                files.remove_tree_gently(t.coll_fd, t.stage)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove %s (startup will): %s", t.stage, e)

    def _empty_spares(self, t: Trash) -> None:
        try:
            freed = files.empty_files_gently(t.coll_fd, t.stage, SPARE_PREFIXES)
            log.debug("emptied the spares in %s: %d bytes freed", t.stage, freed)
        except OSError as e:
            log.warning("cannot empty the spares in %s (they are kept): %s", t.stage, e)
        finally:
            self._shared.emptied(t)

    def close(self) -> None:
        if not self._open:
            return
        self.flush()  # waits for the janitor: it uses the collections' descriptors
        if self._janitor is not None:
            self._janitor.stop()
            self._janitor = None
        self._open = False
        colls, self._colls = self._colls, {}
        for coll in colls.values():
            close_quietly(coll.fd)
        self._evictions.close()
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._nonres_fd, self._lock_fd, self._root_fd):
            if fd >= 0:
                close_quietly(fd)   # closing the lock fd releases the flock
        self._nonres_fd = self._lock_fd = self._root_fd = -1

    def __enter__(self) -> DiskStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads (any thread) -----------------------------------------------------------------

    def _get(self, ck: CollectionKey, use: bool = True) -> Collection | None:
        """The collection, marked as used now unless ``use`` is False (a look at its state,
        as a metrics scrape takes, is no use: it must not keep a collection from eviction)."""
        coll = self._colls.get(ck.path)
        if coll is None or coll.key.namespaced != ck.namespaced:
            return None
        if use:
            self._use(coll)
        return coll

    def _use(self, coll: Collection) -> None:
        """Mark ``coll`` used now: the newest of all, whatever the wall clock says (set
        back, it would put what is used now behind what was used before it, and evict it
        first)."""
        now = self.clock()
        if now <= self._newest:
            now = self._newest + 0.001
        self._newest = coll.last_used = now
        coll.touched = self.monotonic()

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError(f"the cache at {self.root} is not open")

    def read(self, ck: CollectionKey, namespace: str, name: str) -> bytes | None:
        ck.check_object(namespace, name)
        self._check_open()
        coll = self._get(ck)
        if coll is None:
            return None
        epoch = self._shared.pin()  # no commit rewrites a file this read may have opened
        try:
            if not ck.namespaced:
                return files.read_optional(coll.fd, name)
            try:
                ns_fd = os.open(namespace, files.O_DIR, dir_fd=coll.fd)
            except FileNotFoundError:
                return None
            try:
                return files.read_optional(ns_fd, name)
            finally:
                os.close(ns_fd)
        except OSError as e:
            raise StorageError(f"cannot read {ck.object_relpath(namespace, name)}: "
                               f"{e.strerror or e}") from e
        finally:
            self._shared.unpin(epoch)

    def entries(self, ck: CollectionKey) -> Mapping[tuple[str, str], Entry]:
        coll = self._get(ck)
        return coll.index.snapshot if coll is not None else _EMPTY

    def ordered(self, ck: CollectionKey) -> tuple[Mapping[tuple[str, str], Entry],
                                                  Sequence[tuple[str, str]]]:
        coll = self._get(ck)
        return coll.index.ordered() if coll is not None else (_EMPTY, ())

    def state(self, ck: CollectionKey) -> dict[str, Any]:
        coll = self._get(ck, use=False)
        return coll.state() if coll is not None else {}

    def history_after(self, ck: CollectionKey, rv: int) -> HistorySlice:
        coll = self._get(ck)
        if coll is None:
            return HistorySlice(None, [], complete=False, dropped_rv=None)
        epoch = self._shared.pin()  # an eviction does not close coll.fd under this open
        try:
            return coll.history.slice_after(coll.fd, rv)
        except OSError as e:
            raise StorageError(f"cannot read the history of {ck}: {e}") from e
        finally:
            self._shared.unpin(epoch)

    def collections(self) -> list[CollectionKey]:
        return [c.key for c in self._colls.values()]

    def state_set_aside(self, ck: CollectionKey) -> str:
        """Why the start set the collection's state aside ("" when it did not): its views
        are gone until the cloud's next list."""
        return self._states_set_aside.get(ck.path, "")

    def stats(self) -> StoreStats:
        per = {c.key: CollectionStats(len(c.index), c.index.bytes, c.history.size)
               for c in self._colls.values()}
        return StoreStats(per, sum(s.objects for s in per.values()),
                          sum(s.bytes for s in per.values()), self._shared.commits,
                          self._shared.write_errors, self._shared.quarantined)

    # -- writes (the writer thread) --------------------------------------------------------------

    def transaction(self, ck: CollectionKey) -> DiskTransaction:
        self._check_open()
        coll = self._colls.get(ck.path)
        if coll is None:
            coll = self._create(ck)
        self._use(coll)
        if coll.key.namespaced != ck.namespaced:
            raise StorageError(f"{ck} exists with namespaced={coll.key.namespaced}")
        if coll.needs_recovery:
            self._recover(coll)
        if len(self._shared.trash) > 4:
            self._empty_trash_in_background()  # the writer never idles: bound the disk used
        return DiskTransaction(coll, self._settings, self._shared)

    def _create(self, ck: CollectionKey) -> Collection:
        if self.quota is not None:
            for victim in plan_new_collection(self.quota, self.usage(), self._evictable):
                self.evict(victim, "collections")
        try:
            fd = coll_mod.create(self._root_fd, ck)
        except OSError as e:
            self._shared.write_errors += 1
            raise StorageError(f"cannot create the collection {ck}: {e}") from e
        coll = Collection(ck, fd, Index(), History.load(fd, self.history_limit)[0])
        colls = dict(self._colls)
        colls[ck.path] = coll
        self._colls = colls
        return coll

    # -- quota and eviction (the writer thread) ---------------------------------------------

    def set_eviction_hooks(self, busy: Callable[[CollectionKey], bool],
                           on_evict: Callable[[CollectionKey, str], None]) -> None:
        """``busy(ck)``: the caller is using the collection (never evict it); ``on_evict``
        is told of every eviction, on the writer thread, as it happens."""
        self._busy, self._on_evict = busy, on_evict

    def usage(self) -> dict[CollectionKey, Use]:
        """Bytes and last use of every collection."""
        return {c.key: Use(c.used_bytes, c.last_used) for c in self._colls.values()}

    def room(self, component: str) -> int | None:
        """Bytes a collection of ``component`` may still grow by (None: no quota)."""
        if self.quota is None:
            return None
        use = [(c.key.component, c.used_bytes) for c in self._colls.values()]
        total = sum(n for _, n in use)
        mine = sum(n for comp, n in use if comp == component)
        return min(self.quota.total - total, self.quota.per_component - mine)

    def root_gone(self) -> bool:
        """True when the cache root this store opened was deleted (or replaced) since: an
        unlinked directory takes no new entry, so nothing can be cached in it any more."""
        try:
            opened = os.fstat(self._root_fd)
            now = os.stat(self.root)
        except OSError:
            return True
        return opened.st_nlink == 0 or (opened.st_dev, opened.st_ino) != (now.st_dev, now.st_ino)

    def can_create(self) -> bool:
        """True when one more collection fits the quota, evicting an idle one if need be."""
        if self.quota is None or len(self._colls) < self.quota.max_collections:
            return True
        return any(self._evictable(c.key) for c in self._colls.values())

    def _evictable(self, ck: CollectionKey) -> bool:
        coll = self._colls.get(ck.path)
        if coll is None or self._shared.open_txns.get(ck.path) or self._busy(ck):
            return False
        if self.monotonic() - coll.touched < EVICT_MIN_IDLE:
            return False
        return not any(t.claimed and t.coll_fd == coll.fd for t in self._shared.trash)

    def _admit(self, coll: Collection, growth: int) -> None:
        """A commit to ``coll`` would grow it by ``growth`` bytes: make room or refuse."""
        assert self.quota is not None
        for victim in plan(self.quota, self.usage(), coll.key, growth, self._evictable):
            self.evict(victim, "quota")

    def evict(self, ck: CollectionKey, why: str) -> None:
        """Take a collection out of the cache (raises StorageError; nothing changed then)."""
        coll = self._colls.get(ck.path)
        if coll is None:
            return
        try:
            self._evictions.evict(self._root_fd, coll)
        except OSError as e:
            raise StorageError(f"cannot evict {ck}: {e}") from e
        colls = dict(self._colls)
        del colls[ck.path]
        self._colls = colls
        log.info("cache: evicted %s (%d objects, %d bytes): %s", ck, len(coll.index),
                 coll.used_bytes, why)
        self._on_evict(ck, why)

    def _recover(self, coll: Collection) -> None:
        """Roll a collection forward after a failed rollback, and reload it."""
        report = RecoveryReport()
        rec = Recovery(self._root_fd, self.history_limit, self._settings.durability == "syncfs",
                       self.meta_loader, report, state_check=self.state_check)
        try:
            comp_fd, _ = files.open_dir(coll.key.component, self._root_fd)
            try:
                # A duplicate: recovery closes the fd it is given when it gives up.
                fresh = rec.collection(comp_fd, coll.key.component, coll.key.dirname,
                                       os.dup(coll.fd))
            finally:
                os.close(comp_fd)
        except OSError as e:
            raise StorageError(f"cannot recover {coll.key}: {e}") from e
        if fresh is None:
            raise StorageError(f"{coll.key} vanished during recovery")
        os.close(fresh.fd)
        coll.index, coll.history, coll.state_json = fresh.index, fresh.history, fresh.state_json
        coll.needs_recovery = False
        self._shared.quarantined += report.quarantined


def _mtime(fd: int) -> float:
    try:
        return os.fstat(fd).st_mtime
    except OSError:
        return 0.0

