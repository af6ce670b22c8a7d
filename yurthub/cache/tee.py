"""The tee: a second reader of a response body, fed through an os.pipe that never blocks.

design: the request thread yields each chunk to the client first and then calls
``write``, which puts the chunk into a pipe whose write end is non-blocking.  When the pipe
is full (the cache writer is behind), the rest waits in a small in-memory queue that the
writer thread pumps into the pipe as it drains it; the client is never held up.  If the
queue of one tee would pass the byte budget, the tee *overflows*: its queue is freed, the
pipe is closed, and the writer learns out of band (``outcome``) that the entry is
incomplete, so nothing partial is committed.  All tees together are held to one memory
limit (``Budget``): past it the largest backlog overflows, whichever tee is writing.
A tee's outcome is decided once, when the request thread closes it or it overflows.

Big bodies go into the pipe by reference, not by copy: vmsplice(2) puts the chunks' own
pages into the pipe, so the request thread copies nothing.  A chunk is an immutable bytes
object, held in ``_lent`` until the writer reports (``pump(taken)``) that it took those
bytes out of the pipe; only then may its memory be freed and reused, so until then it
still counts in the ``Budget``.  A list's chunks are
also gathered into batches of ``GATHER`` bytes first (one system call and one wake-up of
the writer per batch, not per TLS record); that delays only the cache, which commits a
list at its end anyway.  Where vmsplice is refused (seccomp, gVisor) chunks are copied
with writev as before.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from collections import deque
from enum import Enum
from typing import Any

from yurthub import linux

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20  # asked for; unprivileged users get 64 KiB once past their pipe quota
# A list's chunks are piped in batches of at least this much: each batch is one system
# call and one wake-up of the writer.  Three of the body's 256 KiB pieces (each takes one
# page more than its size, being unaligned) go into PIPE_SIZE in one vmsplice.
GATHER = 768 << 10
LEND_MIN = 32 << 10  # smaller batches (watch events, objects) are copied into the pipe
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


_vmsplice_ok = linux.have_vmsplice()


def _refused(err: int) -> None:
    """vmsplice is refused (seccomp, gVisor): every tee from now on copies; said once."""
    global _vmsplice_ok
    if _vmsplice_ok:
        _vmsplice_ok = False
        log.warning("vmsplice refused (%s): cache tees copy list bodies instead (slower)",
                    os.strerror(err))


class Outcome(Enum):
    OPEN = "open"            # the response is still streaming
    WHOLE = "whole"          # the body ended normally: the entry may be committed
    BROKEN = "broken"        # upstream error, client gone, shutdown: do not commit
    OVERFLOW = "overflow"    # the writer fell behind past the budget: do not commit


class Budget:
    """The one bound on the bytes waiting in memory in all tees together: queued, and lent
    to a pipe the writer has not read yet (copied bytes are the kernel's, at most one default
    64 KiB pipe per tee).

    design: when a tee's backlog would pass the limit, the tee with the **largest** backlog
    is dropped (overflowed), not the oldest and not necessarily the one writing: one drop
    frees the most memory, so the fewest views go stale, and the largest backlog is the
    entry the writer is furthest behind on (its copy would be the latest to be committed
    anyway).  A victim busy in its own ``write`` at that moment is skipped for the next
    largest (its lock is only tried, never waited for), so no client is ever held up.
    The first drop of an episode is logged; the next ones are only counted, until the
    backlog falls below half the limit again.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.drops = 0
        self._lock = threading.Lock()
        self._holders: dict[Tee, None] = {}  # tees with a backlog, oldest first
        self._warned = False

    def take(self, n: int, tee: Tee | None = None) -> bool:
        """Reserve ``n`` bytes for ``tee``'s backlog, dropping larger backlogs to make room;
        False when ``tee`` itself is to drop (its backlog is the largest)."""
        for _ in range(8):
            with self._lock:
                if self.used + n <= self.limit:
                    self.used += n
                    if tee is not None:
                        self._holders[tee] = None
                    return True
                victims = sorted((t for t in self._holders if t is not tee),
                                 key=lambda t: t.queued, reverse=True)
            mine = tee.queued + n if tee is not None else n
            for victim in victims:
                if victim.queued <= mine:
                    return False  # this tee holds the largest backlog: it goes
                if victim.evict():
                    break
            else:
                return False
        return False

    def give(self, n: int, tee: Tee | None = None, *, empty: bool = False) -> None:
        with self._lock:
            self.used -= n
            if empty and tee is not None:
                self._holders.pop(tee, None)
            if self._warned and self.used < self.limit // 2:
                self._warned = False

    def overflowed(self, tee: Tee, why: str) -> None:
        """Count a dropped entry; log the first of an episode, the rest at debug level."""
        with self._lock:
            self.drops += 1
            first = not self._warned
            self._warned = True
        if first:
            log.warning("cache writer behind: %s; dropping cache entry %s and marking its "
                        "view stale (further drops are only counted, in "
                        "yurthub_cache_tee_overflows_total)", why, tee.context)
        else:
            log.debug("dropping cache entry %s: %s", tee.context, why)


class Tee:
    """One cache entry's copy of a response body; ``context`` tells the writer what it is."""

    def __init__(self, context: Any, budget: Budget, per_entry_limit: int, *,
                 big: bool = True, gather: int = 0) -> None:
        """``big`` False (a single object) copies: one system call less.  ``gather``: bytes
        to collect before piping (0: pipe at once); only a gathering tee that lends gets a
        pipe of PIPE_SIZE, the others keep the default 64 KiB."""
        self.context = context
        self._budget = budget
        self._limit = per_entry_limit
        self._gather = gather
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lend = big and _vmsplice_ok
        if self._lend and gather:
            # Only a list's tee gets the big pipe: its batches are lent, and lent bytes count
            # in the Budget until the writer took them.  Bytes copied into a pipe (a watch's
            # events, or anything where vmsplice is refused) are kernel memory the Budget
            # does not see: 1 MiB pipes let 200 watches hold 300 MiB beside its 48 MiB.
            try:
                fcntl.fcntl(self._write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # why: the per-user pipe quota is used up; 64 KiB pipes work too
        self._queue: deque[tuple[bytes, int]] = deque()  # (chunk, first byte not piped)
        self._queued = 0
        self._lock = threading.Lock()
        self._closing = False
        self.outcome = Outcome.OPEN
        self.bytes_in = 0
        # (pipe offset of its end, chunk, bytes of it still counted in the budget)
        self._lent: deque[tuple[int, bytes, int]] = deque()
        self._piped = 0      # bytes put into the pipe
        self._taken = 0      # bytes the writer took out of it
        self._iov: Any = None

    # -- request thread ---------------------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        """Offer a chunk that was just sent to the client.  Never blocks."""
        with self._lock:
            if self.outcome is not Outcome.OPEN or self._closing:
                return
            self.bytes_in += len(chunk)
            if self._lend and type(chunk) is not bytes:
                chunk = bytes(chunk)  # why: only an immutable object may be lent
            if self._queue or self._gather or (self._lend and len(chunk) >= LEND_MIN):
                # Queued first, so it is counted: a lent chunk stays in our memory until
                # the writer takes it, and the budget holds it until then.
                if self._enqueue(chunk, 0) and self._queued >= self._gather:
                    self._pump_locked()
                return
            # Nothing waits (a watch event, mostly): copied straight into the pipe.
            try:
                n, _ = self._put([(chunk, 0)])
            except BlockingIOError:
                n = 0
            except OSError as e:
                self._broken_locked(e)
                return
            if n < len(chunk):
                self._enqueue(chunk, n)

    def close(self, whole: bool) -> None:
        """The response ended: ``whole`` when the body arrived complete and was all sent."""
        with self._lock:
            if self.outcome is not Outcome.OPEN or self._closing:
                return
            if not whole:
                self._finish_locked(Outcome.BROKEN)
                return
            self._closing = True
            self._pump_locked()  # the last gathered chunks; the writer pumps what won't fit

    # -- writer thread ----------------------------------------------------------------------

    def pump(self, taken: int = 0) -> None:
        """The writer took ``taken`` bytes out of the pipe: free the chunks lent to it, and
        move queued chunks into the room it made."""
        with self._lock:
            if taken:
                self._taken += taken
                lent = self._lent
                freed = 0
                while lent and lent[0][0] <= self._taken:
                    freed += lent.popleft()[2]
                if freed:
                    self._budget.give(freed)
            if self._queue and (self._closing or self._queued >= self._gather):
                self._pump_locked()

    def give_up(self) -> None:
        """The writer cannot use this entry: stop feeding the pipe (its read end stays open
        until the writer has unregistered it, so its number cannot be reused meanwhile)."""
        with self._lock:
            if self.outcome is Outcome.OPEN:
                self._finish_locked(Outcome.BROKEN)

    def abandon(self) -> None:
        """``give_up`` and close the read end."""
        self.give_up()
        self.close_read()

    def close_read(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        with self._lock:
            freed = sum(counted for _, _, counted in self._lent)
            self._lent.clear()  # nobody can read the pipe's pages any more
            if freed:
                self._budget.give(freed)

    # -- internals (lock held) --------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Bytes in this tee's backlog (read without the lock: an estimate for the budget)."""
        return self._queued

    def evict(self) -> bool:
        """The budget drops this entry to make room; False when its lock is busy (the
        budget then tries the next one, never waiting)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.outcome is not Outcome.OPEN or not self._queued:
                return False
            self._budget.overflowed(self, f"all cache backlogs reached the limit of "
                                          f"{self._budget.limit} bytes (largest dropped first)")
            self._finish_locked(Outcome.OVERFLOW)
            return True
        finally:
            self._lock.release()

    def _enqueue(self, chunk: bytes, start: int) -> bool:
        n = len(chunk) - start
        if self._queued + n > self._limit:
            why = f"one response ran more than {self._limit} bytes ahead"
        elif not self._budget.take(n, self):
            why = (f"all cache backlogs reached the limit of {self._budget.limit} bytes "
                   f"(largest dropped first)")
        else:
            why = ""
        if why:
            self._budget.overflowed(self, why)
            self._finish_locked(Outcome.OVERFLOW)
            return False
        self._queue.append((chunk, start))
        self._queued += n
        return True

    def _pump_locked(self) -> None:
        queue = self._queue
        while queue:
            batch = [queue[i] for i in range(min(len(queue), linux.MAX_IOV))]
            try:
                n, lent = self._put(batch)
            except BlockingIOError:
                return
            except OSError as e:
                self._broken_locked(e)
                return
            self._queued -= n
            # Copied bytes are the kernel's now; lent ones stay counted until taken.
            self._budget.give(n - lent, self, empty=not self._queued)
            while n:
                chunk, start = queue[0]
                left = len(chunk) - start
                if n < left:
                    queue[0] = (chunk, start + n)
                    return  # the pipe is full
                n -= left
                queue.popleft()
            if len(batch) < linux.MAX_IOV and queue:
                return  # a short write that ended on a chunk's end: the pipe is full
        if self._closing:
            self._finish_locked(Outcome.WHOLE)

    def _put(self, batch: list[tuple[bytes, int]]) -> tuple[int, int]:
        """Put as much of ``batch`` into the pipe as fits: (bytes put, of which lent);
        BlockingIOError when nothing."""
        size = sum(len(chunk) - start for chunk, start in batch)
        if not (self._lend and size >= LEND_MIN):
            if len(batch) == 1 and not batch[0][1]:
                n = os.write(self._write_fd, batch[0][0])
            else:
                n = os.writev(self._write_fd, [memoryview(c)[s:] for c, s in batch])
            self._piped += n
            return n, 0
        if self._iov is None:
            self._iov = linux.iovecs()
        try:
            n = linux.vmsplice(self._write_fd, self._iov, batch)
        except OSError as e:
            if e.errno in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                _refused(e.errno)
                self._lend = False
                return self._put(batch)
            raise  # EAGAIN is BlockingIOError
        # Hold every chunk the pipe now refers to until the writer has taken its end.
        offset = self._piped
        left = n
        for chunk, start in batch:
            if left <= 0:
                break
            step = min(left, len(chunk) - start)
            offset += step
            left -= step
            self._lent.append((offset, chunk, step))
        self._piped += n
        return n, n

    def _broken_locked(self, e: OSError) -> None:
        if e.errno != errno.EPIPE:
            log.warning("cache tee for %s failed: %s", self.context, e)
        self._finish_locked(Outcome.BROKEN)

    def _finish_locked(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if self._queued:
            self._budget.give(self._queued, self, empty=True)
        self._queue.clear()
        self._queued = 0
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1
