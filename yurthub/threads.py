"""The one shape of every background thread: a named thread, ``run()``/``stop()``, and a crash
that takes the process down (systemd or the gunicorn arbiter starts a fresh one) instead of
leaving the hub running without its writer, health checker or watchdog.
"""

from __future__ import annotations

import logging
import os
import threading

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
