"""One collection at run time: its directory, index, state and history, as readers see them.

The writer replaces ``index.snapshot``, ``state_json`` and ``history.window`` wholesale on
commit (single attribute assignments), so a reader never sees a half-updated value.  The
``_collection`` file records the key, so startup knows the scope of a collection even when
it holds no objects.  ``_state`` is framed with its length and CRC32 (``encode_state``), like
the index and the journal: one flipped bit in it (a digit of a view's resourceVersion, a
letter of its selector) would still be JSON, and would change what offline answers claim.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from yurthub.errors import InvalidKeyError
from yurthub.storage import files
from yurthub.storage.history import History
from yurthub.storage.index import Index
from yurthub.storage.keys import CollectionKey

log = logging.getLogger(__name__)

KEY_FILE = "_collection"
EMPTY_STATE = b"{}"
STATE_MAGIC = "yurthub-state"


def encode_state(state_json: bytes) -> bytes:
    """The ``_state`` file of a state's JSON: ``<magic> <length> <crc32>\\n<json>``."""
    return files.frame_head(STATE_MAGIC, state_json) + state_json


def decode_state(data: bytes) -> bytes:
    """The state's JSON in a ``_state`` file; ValueError when the frame is torn or damaged.
    A file without the frame is one an earlier version wrote, taken as it is (its JSON is
    checked by the caller); the next commit frames it."""
    return files.framed_or_legacy(STATE_MAGIC, data)


class Collection:
    """A collection the store holds open: ``fd`` is its directory, opened without symlinks."""

    def __init__(self, key: CollectionKey, fd: int, index: Index, history: History,
                 state_json: bytes = EMPTY_STATE) -> None:
        self.key = key
        self.fd = fd
        self.index = index
        self.history = history
        self.state_json = state_json
        self.needs_recovery = False    # a rollback failed: roll forward before the next one
        self.last_used = 0.0           # wall time of the last read or commit (the LRU order)
        self.touched = float("-inf")   # monotonic time of the same, in this process

    @property
    def used_bytes(self) -> int:
        """What the collection counts against the quota: its objects and its history."""
        return self.index.bytes + self.history.size

    def state(self) -> dict[str, Any]:
        value = json.loads(self.state_json)
        return value if isinstance(value, dict) else {}


def key_doc(key: CollectionKey) -> bytes:
    return json.dumps({"component": key.component, "group": key.group, "version": key.version,
                       "resource": key.resource, "namespaced": key.namespaced}).encode()


def read_key(coll_fd: int, component: str, dirname: str) -> CollectionKey | None:
    """The key recorded in ``_collection``, or None when it is missing or does not match."""
    data = files.read_optional(coll_fd, KEY_FILE)
    if data is None:
        return None
    try:
        doc = json.loads(data)
        key = CollectionKey(doc["component"], doc["group"], doc["version"], doc["resource"],
                            doc["namespaced"])
    except (ValueError, KeyError, TypeError, InvalidKeyError):
        log.warning("%s/%s/%s is damaged; the scope is taken from the files", component,
                    dirname, KEY_FILE)
        return None
    if key.path != (component, dirname):
        log.warning("%s/%s/%s names another collection (%s)", component, dirname, KEY_FILE, key)
        return None
    return key


def write_key(coll_fd: int, key: CollectionKey) -> None:
    files.replace_file(coll_fd, KEY_FILE, key_doc(key), fsync=True)


def create(root_fd: int, key: CollectionKey) -> int:
    """Make ``<root>/<component>/<dirname>/`` with its ``_collection`` file, durably, and
    new directories under it spread over the file system where that is possible.

    Returns the collection's directory fd.  Raises OSError.
    """
    comp_fd, comp_created = files.open_dir(key.component, root_fd, create=True)
    try:
        coll_fd, _ = files.open_dir(key.dirname, comp_fd, create=True)
        try:
            files.spread_subdirs(coll_fd)  # its staging dirs: see files.spread_subdirs
            write_key(coll_fd, key)
            os.fsync(comp_fd)
            if comp_created:
                os.fsync(root_fd)
        except BaseException:
            os.close(coll_fd)
            raise
    finally:
        os.close(comp_fd)
    return coll_fd
