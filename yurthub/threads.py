"""The one shape of every background thread: a named thread, ``run()``/``stop()``, and a crash
that takes the process down (systemd or the gunicorn arbiter starts a fresh one) instead of
leaving the hub running without its writer, health checker or watchdog.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

EXIT_THREAD_CRASHED = 70


class BackgroundThread:
    """Subclasses implement ``run()`` and wait with ``self.stopping.wait(t)``, never sleep."""

    name = "yurthub-thread"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wake()
        if self._thread is not None and self._thread.is_alive() \
                and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Interrupt a blocking wait other than ``stopping.wait`` (override if needed)."""

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException:
            log.critical("background thread %s crashed; exiting so the service restarts",
                         self.name, exc_info=True)
            logging.shutdown()
            os._exit(EXIT_THREAD_CRASHED)



# -- long jobs on a background thread -------------------------------------------------------
# A job that runs for seconds (committing a 50 MB list) gives the GIL away this often: a
# request thread then waits at most about this long each time it needs the GIL back (a small
# GET needs it some ten times), instead of a whole switch interval.
PACE_EVERY = 0.001
PACE_PAUSE = 0.0001           # a real sleep: a waiting thread takes the GIL meanwhile
LONG_JOB_SWITCH = 0.0005      # sys.setswitchinterval while a long job runs
_paced_at = 0.0


def pace() -> None:
    """Called between the small steps of a long job: every PACE_EVERY seconds, sleep briefly.

    time.sleep(0) would not do: the GIL is released and taken back before a waiting thread
    wakes up.  About 10% of the job's time when nothing else runs, and nothing otherwise."""
    global _paced_at
    now = time.perf_counter()
    if now - _paced_at >= PACE_EVERY:
        time.sleep(PACE_PAUSE)
        _paced_at = time.perf_counter()


@contextlib.contextmanager
def long_job() -> Iterator[None]:
    """Run a job that keeps the GIL busy for seconds without stalling the request threads.

    - No full collection starts meanwhile: the job builds tens of thousands of long-lived
      objects (a list's index entries) that each full collection would walk again, 2-17 ms
      with the GIL held, about once per 1.25x growth.  The young generations are still
      collected; the caller freezes what survives (cache.collection.freeze_long_lived).
    - A shorter switch interval, so the job's long C calls between pace() points hand the
      GIL over sooner.
    Both are restored when the job ends, however it ends.  Only one thread (the cache
    writer) runs long jobs."""
    threshold = gc.get_threshold()
    interval = sys.getswitchinterval()
    gc.set_threshold(threshold[0], threshold[1], NO_FULL_COLLECTION)
    sys.setswitchinterval(min(interval, LONG_JOB_SWITCH))
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


NO_FULL_COLLECTION = 1 << 30
