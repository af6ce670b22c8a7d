"""The worker's heartbeat survives the node's clock jumping (yurthub/worker/heartbeat.py)."""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.config import Config

from yurthub.worker import YurthubWorker


class _Arbiter:
    """What gunicorn's ``Arbiter.murder_workers`` uses of its arbiter."""

    def __init__(self, worker: Any) -> None:
        self.timeout = 60
        self.WORKERS = {os.getpid() + 1: worker}
        self.log = logging.getLogger("test")
        self.killed: list[int] = []

    def kill_worker(self, pid: int, sig: int) -> None:
        self.killed.append(sig)


def _worker() -> Any:
    return YurthubWorker(1, os.getpid(), [], None, 30, Config(), logging.getLogger("test"))


def test_a_clock_set_an_hour_ahead_does_not_kill_a_live_worker(monkeypatch):
    """An edge node's clock jumps when NTP first syncs after boot.  gunicorn 20.1's arbiter
    compared the heartbeat file's ctime with ``time.time()`` and killed the hub (WORKER
    TIMEOUT: every watch cut, the cache reopened) whenever it looked before the worker's
    next heartbeat."""
    worker = _worker()
    try:
        worker.notify()                    # the worker's loop, a moment before the jump
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        arbiter = _Arbiter(worker)
        Arbiter.murder_workers(arbiter)    # gunicorn's own check, as installed
        assert arbiter.killed == []
    finally:
        worker.tmp.close()


def test_a_worker_that_stops_beating_is_still_killed(monkeypatch):
    worker = _worker()
    try:
        worker.notify()
        mono = time.monotonic
        monkeypatch.setattr(time, "monotonic", lambda: mono() + 61)   # 61 s of silence
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 61)
        arbiter = _Arbiter(worker)
        Arbiter.murder_workers(arbiter)
        assert arbiter.killed == [signal.SIGABRT]
    finally:
        worker.tmp.close()
