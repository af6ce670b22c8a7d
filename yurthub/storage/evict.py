"""Evicting a collection from the cache tree, safely for the readers that may be in it.

design: an evicted collection leaves the store's map at once (new readers find nothing) and
its directory is renamed, in one step, to ``<component>/.evicted.<dirname>.<id>`` (startup
sweeps ``.`` names, so a crash leaves nothing behind).  Its descriptor stays open until no
reader that started before the eviction is still reading (the readers' epoch pins, as for
spare inodes), then the janitor removes the tree.  The store calls ``Evictions`` from the
writer thread only.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass

from yurthub.storage import files
from yurthub.storage.collection import Collection
from yurthub.storage.shared import Shared, Trash

log = logging.getLogger(__name__)

PREFIX = ".evicted."
_ids = itertools.count()


@dataclass
class Evicted(Trash):
    """A collection directory taken out of the store, waiting to be removed (it rides the
    janitor's batches of trash): ``stage`` is its name now, under ``component``; readers
    pinned before ``retired`` may still use ``coll_fd``."""

    component: str = ""


class Evictions:
    """The evicted collections of one store, from their rename until their removal."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._pending: list[Evicted] = []
        self.count = 0

    def evict(self, root_fd: int, coll: Collection) -> None:
        """Rename ``coll``'s directory out of the tree (raises OSError; nothing changed)."""
        key = coll.key
        name = f"{PREFIX}{key.dirname}.{os.getpid()}.{next(_ids)}"
        comp_fd, _ = files.open_dir(key.component, root_fd)
        try:
            os.rename(key.dirname, name, src_dir_fd=comp_fd, dst_dir_fd=comp_fd)
            os.fsync(comp_fd)
        finally:
            os.close(comp_fd)
        with self._shared.lock:
            # Its spare inodes go with it (never claimed: no transaction is open on it).
            self._shared.trash[:] = [t for t in self._shared.trash if t.coll_fd != coll.fd]
            self._shared.epoch += 1
            self._pending.append(Evicted(coll.fd, name, self._shared.epoch, time.monotonic(),
                                         component=key.component))
        self.count += 1

    def reapable(self) -> list[Trash]:
        """The evicted collections no reader can still be using, taken off the list."""
        with self._shared.lock:
            oldest = min(self._shared.pins) if self._shared.pins else None
            ready: list[Trash] = [e for e in self._pending
                                  if oldest is None or oldest >= e.retired]
            self._pending = [e for e in self._pending if e not in ready]
        return ready

    @staticmethod
    def remove(root_fd: int, evicted: list[Evicted]) -> None:
        """Close and remove evicted collections (the janitor's thread).  Never raises."""
        for e in evicted:
            try:
                os.close(e.coll_fd)
            except OSError:
                pass
            try:
                comp_fd, _ = files.open_dir(e.component, root_fd)
                try:
                    files.remove_tree_gently(comp_fd, e.stage)
                finally:
                    os.close(comp_fd)
            except FileNotFoundError:
                pass
            except OSError as err:
                log.warning("cannot remove the evicted %s/%s (startup will): %s", e.component,
                            e.stage, err)

    def close(self) -> None:
        """Release every descriptor (the store is closing; startup sweeps the directories)."""
        with self._shared.lock:
            pending, self._pending = self._pending, []
        for e in pending:
            try:
                os.close(e.coll_fd)
            except OSError:
                pass
