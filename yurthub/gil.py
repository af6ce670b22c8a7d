"""Sharing the GIL between the cache writer's long jobs and the threads serving requests.

design: committing a 50 MB list keeps the cache writer busy for seconds, in Python and in
C calls that hold the GIL.  A thread serving a small GET needs the GIL back some ten times
(after each socket call), and each time waited for the writer's whole switch interval
(5 ms); full collections of the list's new index entries (2-17 ms each, about once per
1.25x growth) stopped every thread.  Small GETs had p99 13-45 ms over idle during such a
commit.  So, while a long job runs (``long_job``):

- no full collection starts (the young generations are still collected; the caller
  freezes what survives, see cache.mutation.freeze_long_lived);
- the switch interval is 0.5 ms, so a waiting thread gets the GIL sooner;
- between its small steps the job calls ``pace()``, which sleeps 50 us every 1 ms while
  short requests are being served (``foreground``: one is in the app, or one left it less
  than RECENT ago, as the next request of a keep-alive connection is read before it reaches
  the app), so their threads run at once.  The job's thread asks for 1 us of timer slack
  (kept for the thread's life: only its own sleeps and waits end closer to their time), so
  a pause takes ~90 us, ~9% of the job.  Pacing stays off on a quiet node and while only
  watches are open: their threads need the GIL once per event, which the short switch
  interval serves.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from yurthub import linux
from yurthub.kube.requestinfo import bool_option, parse_query

PACE_EVERY = 0.001
PACE_PAUSE = 0.00005          # a real sleep: time.sleep(0) hands the GIL to no one
PACE_SLACK_NS = 1000          # the job thread's timer slack: a pause takes ~90 us, not ~130
LONG_JOB_SWITCH = 0.0005      # sys.setswitchinterval while a long job runs
NO_FULL_COLLECTION = 1 << 30  # the oldest generation's threshold while a long job runs
RECENT = 0.1                  # a short request that left this long ago still counts


class Foreground:
    """How many short requests (not watches or other streams) are being served, and when
    the last one left."""

    def __init__(self) -> None:
        self.count = 0
        self.left_at = float("-inf")  # time.perf_counter()
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.count += 1

    def leave(self) -> None:
        with self._lock:
            self.count -= 1
        self.left_at = time.perf_counter()

    def busy(self, now: float) -> bool:
        return self.count > 0 or now - self.left_at < RECENT


foreground = Foreground()
_paced_at = 0.0


def pace() -> None:
    """Called between the small steps of a long job: while short requests are being served,
    sleep PACE_PAUSE every PACE_EVERY seconds."""
    global _paced_at
    now = time.perf_counter()
    if now - _paced_at < PACE_EVERY:
        return
    _paced_at = now
    if foreground.busy(now):
        time.sleep(PACE_PAUSE)
        _paced_at = time.perf_counter()


@contextlib.contextmanager
def long_job() -> Iterator[None]:
    """Run a job that keeps the GIL busy for seconds (see the module's doc); the collector's
    threshold and the switch interval are restored however it ends (the timer slack is the
    thread's own and stays).  Only one thread (the cache writer) runs long jobs."""
    threshold = gc.get_threshold()
    interval = sys.getswitchinterval()
    gc.set_threshold(threshold[0], threshold[1], NO_FULL_COLLECTION)
    linux.set_timer_slack(PACE_SLACK_NS)
    sys.setswitchinterval(min(interval, LONG_JOB_SWITCH))
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


def streams(environ: dict[str, Any]) -> bool:
    """True for a request whose response may stream for long: a watch (``watch`` read as
    kube-apiserver reads it), a followed log, an upgraded connection (exec, attach,
    port-forward)."""
    if environ.get("HTTP_UPGRADE") or "/watch/" in environ.get("PATH_INFO", ""):
        return True
    query = environ.get("QUERY_STRING", "")
    if "watch" not in query and "follow" not in query and "%" not in query:
        return False  # most requests: no parsing
    q = parse_query(query)  # as kube-apiserver reads it: ?wat%63h=1 is a watch too
    return bool_option(q.get("watch")) or bool_option(q.get("follow"))


def counted(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The WSGI app ``app``, with each short request counted in ``foreground`` from the
    call until its response is closed."""
    def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if streams(environ):
            return app(environ, start_response)
        foreground.enter()
        try:
            body = app(environ, start_response)
        except BaseException:
            foreground.leave()
            raise
        return _Closing(body)
    return wrapped


class _Closing:
    """A response body that leaves ``foreground`` once, when the server closes it."""

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body
        self._it = iter(body)
        self._left = False

    def __iter__(self) -> Iterator[bytes]:
        return self._it

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._left:
                self._left = True
                foreground.leave()
