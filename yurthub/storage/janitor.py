"""The cache's janitor: removes the files that commits replaced, in the background, and
empties the spare inodes kept too long (storage.shared).

design: unlinking 10,000 replaced files takes about a second.  Done on the writer thread it
would delay the next commit; done at normal priority it would compete with the request
threads streaming to clients.  So one long-lived thread, niced to 19 (Linux nices threads one
by one), takes batches of trash from a queue and removes them, giving the GIL away as it goes.
It is a ``BackgroundThread``: a bug in it ends the process (systemd restarts the service),
never a janitor that silently stopped while the trash piles up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence

from yurthub.storage.shared import Aged, Trash
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)


class Janitor(BackgroundThread):
    """Runs ``remove(batch)`` for every submitted batch of trash (to remove) and aged trash (to
    empty), one batch at a time."""

    name = "yurthub-cache-janitor"

    def __init__(self, remove: Callable[[Sequence[Trash | Aged]], None]) -> None:
        super().__init__()
        self._remove = remove
        self._lock = threading.Lock()
        self._queue: list[Trash | Aged] = []
        self._work = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def submit(self, drop: Sequence[Trash | Aged]) -> None:
        with self._lock:
            self._queue.extend(drop)
            self._idle.clear()
        self._work.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted batch was removed (True) or the timeout passed."""
        return self._idle.wait(timeout)

    def wake(self) -> None:
        self._work.set()

    def run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):
            pass  # why: not Linux, or not allowed: it still runs, only at normal priority
        while not self.stopping.is_set():
            self._work.wait()
            self._work.clear()
            while True:
                with self._lock:
                    batch, self._queue = self._queue, []
                    if not batch:
                        self._idle.set()
                        break
                self._remove(batch)
