"""The running hub's admin token: a secret in the cache tree that a purge through the hub
must present.

Whoever can read the cache tree (its owner and root: the root is 0700) may ask the running
hub to change it, as whoever can write it may change it while the hub is stopped; a web page
that a browser on the node loads cannot.  A new token is written at every start.
"""

from __future__ import annotations

import os
import secrets

from yurthub.errors import StorageError
from yurthub.storage import files

ADMIN_TOKEN = "_admin_token"  # noqa: S105 - the file name, not a secret


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
