"""The tee: a second reader of a response body, fed through an os.pipe that never blocks.

design: the request thread yields each chunk to the client first and then calls
``write``, which puts the chunk into a pipe whose write end is non-blocking.  When the pipe
is full (the cache writer is behind), the rest waits in a small in-memory backlog that the
writer thread pumps into the pipe as it drains it; the client is never held up.  If the
backlog of one tee would pass the byte budget, or all tees together would pass the global
budget, the tee *overflows*: its backlog is freed, the pipe is closed, and the writer learns
out of band (``outcome``) that the entry is incomplete, so nothing partial is committed.
A tee's outcome is decided once, when the request thread closes it or it overflows.
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

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20  # asked for; unprivileged users get 64 KiB once past their pipe quota
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class Outcome(Enum):
    OPEN = "open"            # the response is still streaming
    WHOLE = "whole"          # the body ended normally: the entry may be committed
    BROKEN = "broken"        # upstream error, client gone, shutdown: do not commit
    OVERFLOW = "overflow"    # the writer fell behind past the budget: do not commit


class Budget:
    """Bytes waiting in all tee backlogs together; shared by every tee of one writer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


class Tee:
    """One cache entry's copy of a response body; ``context`` tells the writer what it is."""

    def __init__(self, context: Any, budget: Budget, per_entry_limit: int, *,
                 big: bool = True) -> None:
        """``big`` False (a single object) keeps the default 64 KiB pipe: one syscall less."""
        self.context = context
        self._budget = budget
        self._limit = per_entry_limit
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if big:
            try:
                fcntl.fcntl(self._write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # why: the per-user pipe quota is used up; 64 KiB pipes work too
        self._backlog: deque[memoryview] = deque()
        self._backlog_bytes = 0
        self._lock = threading.Lock()
        self._closing = False
        self.outcome = Outcome.OPEN
        self.bytes_in = 0

    # -- request thread ---------------------------------------------------------------------

    def write(self, chunk: bytes) -> None:
        """Offer a chunk that was just sent to the client.  Never blocks."""
        with self._lock:
            if self.outcome is not Outcome.OPEN or self._closing:
                return
            self.bytes_in += len(chunk)
            if self._backlog:
                self._queue(memoryview(chunk))
                self._pump_locked()
                return
            try:
                n = os.write(self._write_fd, chunk)
            except BlockingIOError:
                n = 0
            except OSError as e:
                self._broken_locked(e)
                return
            if n < len(chunk):
                self._queue(memoryview(chunk)[n:])

    def close(self, whole: bool) -> None:
        """The response ended: ``whole`` when the body arrived complete and was all sent."""
        with self._lock:
            if self.outcome is not Outcome.OPEN or self._closing:
                return
            if not whole:
                self._finish_locked(Outcome.BROKEN)
                return
            self._closing = True
            if not self._backlog:
                self._finish_locked(Outcome.WHOLE)

    # -- writer thread ----------------------------------------------------------------------

    def pump(self) -> None:
        """Move backlog into the pipe; called by the writer after it read from the pipe."""
        with self._lock:
            if self._backlog:
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

    # -- internals (lock held) --------------------------------------------------------------

    def _queue(self, data: memoryview) -> None:
        n = len(data)
        if self._backlog_bytes + n > self._limit or not self._budget.take(n):
            log.warning("cache writer fell behind by more than %d bytes; dropping cache entry "
                        "%s", self._limit, self.context)
            self._finish_locked(Outcome.OVERFLOW)
            return
        self._backlog.append(data)
        self._backlog_bytes += n

    def _pump_locked(self) -> None:
        while self._backlog:
            head = self._backlog[0]
            try:
                n = os.write(self._write_fd, head)
            except BlockingIOError:
                return
            except OSError as e:
                self._broken_locked(e)
                return
            self._budget.give(n)
            self._backlog_bytes -= n
            if n < len(head):
                self._backlog[0] = head[n:]
                return
            self._backlog.popleft()
        if self._closing:
            self._finish_locked(Outcome.WHOLE)

    def _broken_locked(self, e: OSError) -> None:
        if e.errno != errno.EPIPE:
            log.warning("cache tee for %s failed: %s", self.context, e)
        self._finish_locked(Outcome.BROKEN)

    def _finish_locked(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if self._backlog_bytes:
            self._budget.give(self._backlog_bytes)
        self._backlog.clear()
        self._backlog_bytes = 0
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1
