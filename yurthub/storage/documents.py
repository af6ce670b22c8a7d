"""The documents of the cache root: ``_nonresource/`` (``/version``, discovery, the filters'
inputs: framed with their CRC, a damaged one is not used and is named once) and the
bookkeeping files ``_<name>`` (framed JSON).

A mixin of DiskStore (storage.disk): these use its root and ``_nonresource`` directories.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from yurthub.errors import StorageError
from yurthub.storage import files
from yurthub.storage.keys import BOOKKEEPING_PREFIX, nonresource_filename
from yurthub.storage.shared import Shared

log = logging.getLogger(__name__)


class Documents:
    """DiskStore's document calls (see the module docstring)."""

    _shared: Shared
    _root_fd: int
    _nonres_fd: int
    _damaged_docs: dict[str, str]
    _check_open: Callable[[], None]

    def read_nonresource(self, path: str) -> bytes | None:
        """A stored document; None when there is none, or it is damaged (files.DOC_MAGIC)."""
        name = nonresource_filename(path)
        self._check_open()
        try:
            data = files.read_optional(self._nonres_fd, name)
        except OSError as e:
            raise StorageError(f"cannot read the cached {path}: {e}") from e
        if data is None:
            return None
        try:
            return files.framed_or_legacy(files.DOC_MAGIC, data)
        except ValueError as e:
            if name not in self._damaged_docs:
                self._damaged_docs[name] = path
                log.warning("the cached %s is damaged (%s): not used until the cloud sends "
                            "it again", path, e)
            return None

    def damaged_documents(self) -> list[str]:
        """The paths of the stored documents found damaged and not used, until rewritten."""
        return sorted(self._damaged_docs.values())

    def write_nonresource(self, path: str, body: bytes) -> None:
        name = nonresource_filename(path)
        self._check_open()
        try:
            files.replace_file(self._nonres_fd, name,
                               [files.frame_head(files.DOC_MAGIC, bytes(body)), bytes(body)],
                               fsync=True)
            self._damaged_docs.pop(name, None)
        except OSError as e:
            self._shared.write_errors += 1
            raise StorageError(f"cannot store {path}: {e}") from e

    def read_bookkeeping(self, name: str) -> Any:
        """The JSON document ``_<name>`` at the cache root, None when absent.

        Raises StorageError when it cannot be read, ValueError when it is torn or damaged.
        """
        fname = _bookkeeping_file(name)
        self._check_open()
        try:
            data = files.read_optional(self._root_fd, fname)
        except OSError as e:
            raise StorageError(f"cannot read {fname}: {e}") from e
        return None if data is None else files.unframe(name, data)

    def write_bookkeeping(self, name: str, doc: Any) -> None:
        """Replace ``_<name>`` at the cache root with ``doc`` (framed, 0600, atomically)."""
        fname = _bookkeeping_file(name)
        self._check_open()
        try:
            files.replace_file(self._root_fd, fname, files.frame(name, doc), fsync=True)
        except OSError as e:
            self._shared.write_errors += 1
            raise StorageError(f"cannot write {fname}: {e}") from e


def _bookkeeping_file(name: str) -> str:
    if not name.isidentifier() or not name.islower():
        raise ValueError(f"{name!r} is not a bookkeeping document name")
    return BOOKKEEPING_PREFIX + name
