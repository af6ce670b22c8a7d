"""The worker's heartbeat to gunicorn's arbiter, on the monotonic clock.

gunicorn 20.1 (Debian 12's) marks the worker alive by ``fchmod`` of a temporary file and
its arbiter kills a worker whose file's ``ctime`` is more than ``timeout`` seconds behind
``time.time()`` (gunicorn#1965, fixed in 22.0 with monotonic times).  An edge node's clock
jumps by hours or years when NTP first syncs after boot: the arbiter then took the hub for
hung and killed it ("WORKER TIMEOUT"), every watch cut, the cache opened again.  Here the
worker writes the monotonic time into the file's mtime, as gunicorn 22 does, and the
arbiter's side turns it into its own wall clock's terms.  gunicorn >= 22 needs nothing.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gunicorn

WALL_CLOCK_ARBITER = tuple(gunicorn.version_info) < (22,)


class MonotonicHeartbeat:
    """gunicorn's ``WorkerTmp`` (``notify``, ``last_update``, ``fileno``, ``close``) over
    the same file, jump-proof.  Made in the arbiter, which reads it; notified by the
    worker after the fork (CLOCK_MONOTONIC is the same in both processes)."""

    def __init__(self, tmp: Any) -> None:
        self._tmp = tmp
        self.notify()   # from spawn: a worker that never reaches its loop is still killed

    def notify(self) -> None:
        now = time.monotonic()
        os.utime(self._tmp.fileno(), (now, now))

    def last_update(self) -> float:
        """When the worker last notified, on the clock the arbiter compares it with."""
        beat = os.fstat(self._tmp.fileno()).st_mtime
        return time.time() - (time.monotonic() - beat)

    def fileno(self) -> int:
        return int(self._tmp.fileno())

    def close(self) -> None:
        self._tmp.close()


def jump_proof(tmp: Any) -> Any:
    """The heartbeat the worker should use instead of gunicorn's ``tmp``."""
    return MonotonicHeartbeat(tmp) if WALL_CLOCK_ARBITER else tmp
