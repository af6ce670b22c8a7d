"""Whether the cache may write: stopped by its quota or a full disk, resumed once room returns.

design: the writer reports every storage failure here.  A commit the quota cannot take
(storage.quota) or a write that found the disk full (ENOSPC, EDQUOT) stops caching: the
hub keeps proxying, ``/v1/readyz`` says why and ``yurthub_cache_stopped{reason}`` is 1.  A
full disk stops new cache entries altogether (nothing would land); over the quota the
entries go on, because a relist that shrank may fit and a delete frees room.  The writer
asks ``check`` every round; at most once a second it looks whether what failed would fit
now (the quota's room, or the file system's free bytes and free inodes: ENOSPC also means
no inode is left, when the disk still has bytes) and resumes by itself.  A file system that
went read-only (EROFS: ext4's ``errors=remount-ro`` after an I/O error, an operator's
remount) stops caching the same way, as ``read-only``, until it is writable again.  Other
writes that wait for room (the hub's admin token) are retried from the same ``check``, at
most once a second, until they succeed (``retry``).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from yurthub.errors import StorageError
from yurthub.metrics import Metrics
from yurthub.storage import CollectionKey, DiskStore, QuotaExceeded

log = logging.getLogger(__name__)

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
REASONS = ("quota", "collections", "no-space", "read-only", "root-gone")
# Reasons for which nothing would land on the disk: no new cache entry is opened.
NOTHING_LANDS = frozenset({"no-space", "read-only", "root-gone"})
RESUME_FREE_BYTES = 4 << 20   # free bytes a full disk needs again before caching resumes
RESUME_FREE_INODES = 1024     # and free inodes, where the file system counts them
CHECK_INTERVAL = 1.0


def is_no_space(err: BaseException | None) -> bool:
    """True for an error (or the OSError it was raised from) that says the disk is full."""
    return _errno_of(err, NO_SPACE)


def is_read_only(err: BaseException | None) -> bool:
    """True for an error (or the OSError it was raised from) that says the file system is
    read-only."""
    return _errno_of(err, frozenset({errno.EROFS}))


def _errno_of(err: BaseException | None, errnos: frozenset[int]) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno in errnos:
            return True
        err = err.__cause__
    return False


@dataclass(frozen=True)
class Stop:
    """Why caching stopped, and how to tell that it may go on."""

    reason: str                  # one of REASONS
    message: str
    fits: Callable[[], bool]
    ck: CollectionKey | None = None  # the collection whose commit was refused


class SpaceGuard:
    """The cache's stop/resume state (the writer thread changes it; anyone may read it)."""

    def __init__(self, store: DiskStore, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.stopped: Stop | None = None
        self.stops = 0  # writes refused for want of room (or a writable disk), ever
        self._checked = 0.0
        self._retries: list[Callable[[], bool]] = []
        self._retried = 0.0
        self._retry_lock = threading.Lock()
        for reason in REASONS:
            metrics.cache_stopped.labels(reason).set(0)

    @property
    def accepting(self) -> bool:
        """False while the disk is full or read-only: no new cache entry is opened."""
        stop = self.stopped
        return stop is None or stop.reason not in NOTHING_LANDS

    def reason(self) -> str | None:
        stop = self.stopped
        if stop is None:
            return None
        return f"caching stopped ({stop.reason}): {stop.message}; the hub goes on proxying"

    def failed(self, err: BaseException, ck: CollectionKey | None = None,
               growth: int = 0) -> bool:
        """Classify a storage failure; True (and caching stopped) when it was about room, or
        a file system that went read-only."""
        if isinstance(err, QuotaExceeded):
            if err.scope == "collections":
                self._stop(Stop("collections", str(err), self.store.can_create))
            else:
                component, wanted = err.component, err.growth
                self._stop(Stop("quota", str(err),
                                lambda: (self.store.room(component) or 0) >= wanted, ck))
            return True
        if is_no_space(err):
            need = max(RESUME_FREE_BYTES, 2 * growth)
            self._stop(Stop("no-space", f"the disk of {self.store.root} is {self._lacks()} "
                            f"({err})", lambda: self._has_room(need), ck))
            return True
        if self.root_gone(err):
            self._stop(Stop("root-gone", f"the cache directory {self.store.root} was deleted "
                            "while the hub ran; restart the hub to make it again (what it "
                            "held is lost)", lambda: False, ck))
            return True
        if is_read_only(err):
            where = self.store.root if ck is None else os.path.join(
                self.store.root, ck.component, ck.dirname)
            self._stop(Stop("read-only", f"the file system of {where} is read-only ({err})",
                            lambda: self._writable(where), ck))
            return True
        return False

    def root_gone(self, err: BaseException | None) -> bool:
        """Whether ``err`` (a file not found) comes of the cache root's deletion."""
        return _errno_of(err, frozenset({errno.ENOENT})) and self.store.root_gone()

    def committed(self, ck: CollectionKey) -> None:
        """A list of ``ck`` was committed: if the quota had refused ``ck``, it fits now."""
        stop = self.stopped
        if stop is not None and stop.reason == "quota" and stop.ck == ck:
            self._resume(stop, "the collection it refused fits now")

    def retry(self, attempt: Callable[[], bool]) -> None:
        """Call ``attempt`` from ``check`` (the writer's thread), at most once a second,
        until it returns True: a write outside the cache that found no room."""
        with self._retry_lock:
            self._retries.append(attempt)

    def _run_retries(self) -> None:
        if not self._retries or self.clock() - self._retried < CHECK_INTERVAL:
            return
        self._retried = self.clock()
        with self._retry_lock:
            pending = list(self._retries)
        done = []
        for attempt in pending:
            try:
                if attempt():
                    done.append(attempt)
            except Exception:  # a bug in one retry must not stop the cache writer
                log.exception("retrying a write failed")
                done.append(attempt)
        with self._retry_lock:
            self._retries = [a for a in self._retries if a not in done]

    def check(self) -> None:
        """Resume when what stopped caching would fit now (looked at once a second); retry
        the writes that wait for room."""
        self._run_retries()
        stop = self.stopped
        if stop is None or self.clock() - self._checked < CHECK_INTERVAL:
            return
        self._checked = self.clock()
        try:
            fits = stop.fits()
        except (OSError, StorageError) as e:
            log.debug("cannot tell whether the cache has room again: %s", e)
            return
        if fits:
            self._resume(stop, "the file system is writable again" if stop.reason == "read-only"
                         else "there is room again")

    def _resume(self, stop: Stop, why: str) -> None:
        self.stopped = None
        self.metrics.cache_stopped.labels(stop.reason).set(0)
        log.warning("caching resumed (%s): %s", stop.reason, why)

    def _stop(self, stop: Stop) -> None:
        self.stops += 1
        first = self.stopped is None or self.stopped.reason != stop.reason
        if self.stopped is not None and first:
            self.metrics.cache_stopped.labels(self.stopped.reason).set(0)
        self.stopped = stop
        self._checked = self.clock()
        self.metrics.cache_stopped.labels(stop.reason).set(1)
        if first:
            log.warning("caching stopped (%s): %s; the hub goes on proxying", stop.reason,
                        stop.message)

    def _writable(self, path: str) -> bool:
        """Whether ``path``'s file system is mounted read-write again (the nearest existing
        directory's: a collection whose directory could not be made has none)."""
        while True:
            try:
                if os.statvfs(path).f_flag & os.ST_RDONLY:
                    return False
                break
            except FileNotFoundError:
                if len(path) <= len(self.store.root):
                    raise
                path = os.path.dirname(path)
        return self._can_create()

    def _can_create(self) -> bool:
        """Whether a file can be made in the cache root: False only for EROFS.

        why: ext4's ``errors=remount-ro`` on newer kernels turns the file system read-only
        without the mount's read-only flag (``emergency_ro``): statvfs said writable, so
        caching resumed within a second of every stop, readyz said OK and each response
        stopped it again with another WARNING.
        """
        probe = os.path.join(self.store.root, f".rw-probe.{os.getpid()}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except OSError as e:
            return e.errno != errno.EROFS  # full, or left by a crash: not read-only
        os.close(fd)
        os.unlink(probe)
        return True

    def _has_room(self, need: int) -> bool:
        """Free bytes for ``need`` and free inodes for a commit's new files.

        why: a file system out of inodes (tmpfs ``nr_inodes``, ext4 full of small objects)
        fails every new file with ENOSPC while it still has bytes; resuming on bytes alone
        stopped and resumed caching at every list, readyz saying all was well in between.
        """
        if self._free_bytes() < need:
            return False
        inodes = self._free_inodes()
        return inodes is None or inodes >= RESUME_FREE_INODES

    def _lacks(self) -> str:
        """What the disk is short of, in the stop message's words."""
        try:
            inodes = self._free_inodes()
        except OSError:
            return "full"
        if inodes is not None and inodes < RESUME_FREE_INODES:
            return f"out of inodes ({inodes} free)"
        return "full"

    def _free_bytes(self) -> int:
        st = os.statvfs(self.store.root)
        return st.f_bavail * st.f_frsize

    def _free_inodes(self) -> int | None:
        """Inodes free for the service's user; None where the file system counts none
        (btrfs, some network file systems report 0 inodes in all)."""
        st = os.statvfs(self.store.root)
        return st.f_favail if st.f_files else None
