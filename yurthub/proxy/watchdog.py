"""The watchdog: notices clients that went away while their watch was idle.

design: gunicorn learns that a client disconnected only when it writes to it, so an idle
watch whose client left would pin a thread and an upstream connection until the apiserver
closes the watch (5-10 minutes for client-go).  One thread waits in ``epoll`` on the client
sockets of open streams for hang-up and error events only (never EPOLLIN, so bytes such as
a TLS close_notify do not wake it) and calls the stream's ``on_gone`` callback, which ends
the upstream read at once.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Callable

from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

_EVENTS = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


class Watchdog(BackgroundThread):
    """Calls a callback when the peer of a registered socket hangs up."""

    name = "yurthub-watchdog"

    def __init__(self) -> None:
        super().__init__()
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)

    def watch(self, sock: socket.socket, on_gone: Callable[[], None]) -> int | None:
        """Register ``sock``; returns a token for ``unwatch`` (None if it cannot be watched)."""
        try:
            fd = sock.fileno()
        except (OSError, ValueError):
            return None
        if fd < 0:
            return None
        with self._lock:
            try:
                if fd in self._callbacks:
                    self._epoll.modify(fd, _EVENTS)
                else:
                    self._epoll.register(fd, _EVENTS)
            except OSError:
                return None
            self._callbacks[fd] = on_gone
        return fd

    def unwatch(self, token: int | None) -> None:
        if token is None:
            return
        with self._lock:
            if self._callbacks.pop(token, None) is not None:
                try:
                    self._epoll.unregister(token)
                except OSError:
                    pass  # why: the socket was closed first; epoll forgot it by itself

    @property
    def watched(self) -> int:
        return len(self._callbacks)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                events = self._epoll.poll(1.0)
            except InterruptedError:
                continue
            for fd, _mask in events:
                if fd == self._wake_r.fileno():
                    continue
                with self._lock:
                    callback = self._callbacks.pop(fd, None)
                    if callback is not None:
                        try:
                            self._epoll.unregister(fd)
                        except OSError:
                            pass  # why: closed concurrently; nothing to unregister
                if callback is not None:
                    log.debug("client of fd %d went away; ending its stream", fd)
                    try:
                        callback()
                    except Exception:
                        log.exception("watchdog callback failed")

    def wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # why: already closed at interpreter shutdown

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()
