"""Quarantine: where files that cannot be trusted are moved, never served and never deleted.

``<root>/_quarantine/`` mirrors the tree (``<component>/<collection>/<namespace>/<name>``,
with ``.<n>`` appended when that path is taken), so an operator can see what was damaged
and where it came from.  Anything can be moved there: a torn file, a file whose content
names another object, a directory or a FIFO where a file belongs.
"""

from __future__ import annotations

import logging
import os

from yurthub.storage import files

log = logging.getLogger(__name__)

QUARANTINE = "_quarantine"


def move_to_quarantine(root_fd: int, dir_fd: int, name: str, where: list[str]) -> str:
    """Move ``name`` (in ``dir_fd``) to ``_quarantine/<where...>``; returns the path moved
    to, relative to the cache root.  Raises OSError (FileNotFoundError when it is gone)."""
    parts, target = [QUARANTINE, *where[:-1]], where[-1]
    fds: list[int] = []
    try:
        fd = root_fd
        for p in parts:
            fd, _ = files.open_dir(p, fd, create=True)
            fds.append(fd)
        dest, n = target, 0
        while True:
            try:
                os.stat(dest, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                break
            n += 1
            dest = f"{target}.{n}"
        os.rename(name, dest, src_dir_fd=dir_fd, dst_dir_fd=fd)
    finally:
        for f in fds:
            os.close(f)
    path = "/".join([*parts, dest])
    log.warning("quarantined %s", path)
    return path
