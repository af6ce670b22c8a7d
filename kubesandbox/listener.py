"""Listening sockets: bind one, accept on it in a thread, and close it to refuse connections.

Closing the listening socket is how the sandbox goes offline: new connects then get
ECONNREFUSED (and those waiting in the backlog a reset); going online binds the same port again.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    """A thread that accepts connections on one socket until stopped."""

    def __init__(self, sock: socket.socket, on_accept: Callable[[socket.socket, object], None],
                 name: str) -> None:
        self.sock = sock
        self.on_accept = on_accept
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> Listener:
        self._thread.start()
        return self

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopped.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, addr = self.sock.accept()
                    except OSError as e:
                        log.debug("accept failed: %s", e)
                        continue
                    self.on_accept(conn, addr)
        finally:
            sel.close()

    def stop(self) -> None:
        """Stop accepting and close the socket: connects are refused from now on."""
        self._stopped.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)
        for s in (self.sock, self._wake_r, self._wake_w):
            s.close()
