"""The running hub's admin token: a secret in the cache tree that a purge through the hub
must present.

Whoever can read the cache tree (its owner and root: the root is 0700) may ask the running
hub to change it, as whoever can write it may change it while the hub is stopped; a web page
that a browser on the node loads cannot.  A new token is written at every start; a start
on a full disk cannot write it, so ``AdminToken`` tries again (the cache writer asks it once
a second) until it is written: a purge through the hub, the operator's way to free room,
works as soon as there is room for the token.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable

from yurthub.errors import StorageError
from yurthub.storage import files

ADMIN_TOKEN = "_admin_token"  # noqa: S105 - the file name, not a secret
RETRY_INTERVAL = 1.0          # seconds between two tries to write it

log = logging.getLogger(__name__)


def write_admin_token(root: str) -> str:
    """A fresh secret in ``<root>/_admin_token`` (0600, written atomically): whoever can read
    the cache tree may ask the running hub to change it (``yurthub cache purge``), as whoever
    can write it may change it while the hub is stopped; a web page a browser on the node
    loads cannot.  Returns the token.  Raises OSError."""
    token = secrets.token_hex(24)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        files.replace_file(fd, ADMIN_TOKEN, token.encode(), fsync=False)
    finally:
        os.close(fd)
    return token


class AdminToken:
    """The running hub's token: written by ``ensure``, which, until one write succeeded,
    tries again when asked, at most once per ``RETRY_INTERVAL``.  ``value`` is "" until
    then (a purge through the hub is refused meanwhile)."""

    def __init__(self, root: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.clock = clock
        self.value = ""
        self._tried: float | None = None
        self._lock = threading.Lock()

    def ensure(self) -> bool:
        """True once the token is written (tries to write it now if it is due)."""
        if self.value:
            return True
        with self._lock:
            now = self.clock()
            if self.value or (self._tried is not None and now - self._tried < RETRY_INTERVAL):
                return bool(self.value)
            first = self._tried is None
            self._tried = now
            try:
                self.value = write_admin_token(self.root)
            except OSError as e:
                if first:
                    log.error("cannot write the admin token in %s: %s; a purge through the "
                              "hub is refused until it is written (tried again every %gs)",
                              self.root, e.strerror or e, RETRY_INTERVAL)
                return False
            if not first:
                log.warning("the admin token is written in %s now: a purge through the hub "
                            "is possible again", self.root)
            return True


def read_admin_token(root: str) -> str:
    """The running hub's admin token; StorageError when it cannot be read."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return files.read_file(fd, ADMIN_TOKEN).decode().strip()
        finally:
            os.close(fd)
    except OSError as e:
        raise StorageError(f"cannot read the hub's admin token in {root}: "
                           f"{e.strerror or e} (run as the hub's user or root)") from e
