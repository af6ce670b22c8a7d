"""What the store does about damaged objects: reading an object with a verdict on its file,
finding the suspect files among many cheaply, and moving a damaged one to ``_quarantine/``.

A mixin of DiskStore (storage.disk): these use its open collections, its shared pin (no commit
rewrites a file a read may have opened) and its root directory.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Callable, Iterable

from yurthub.errors import DamagedObject, StorageError
from yurthub.storage import files
from yurthub.storage.collection import Collection
from yurthub.storage.index import NO_CRC
from yurthub.storage.keys import CollectionKey
from yurthub.storage.quarantine import move_to_quarantine
from yurthub.storage.shared import Shared


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class DamageChecks:
    """DiskStore's damaged-object calls (see the module docstring)."""

    _shared: Shared
    _root_fd: int
    _check_open: Callable[[], None]
    _get: Callable[..., Collection | None]
    _colls: dict[tuple[str, str], Collection]
    _set_aside: dict[tuple[str, str], str]

    def set_aside(self, ck: CollectionKey) -> str:
        """Why startup quarantined the whole collection ``ck`` ("" when it did not, or the
        collection was created again since): a get of one of its objects may not say 404,
        the object may well be cached there and exist in the cloud."""
        if ck.path in self._colls:
            return ""
        return self._set_aside.get(ck.path) or self._set_aside.get((ck.component, ""), "")

    def read_object(self, ck: CollectionKey, namespace: str, name: str
                    ) -> tuple[bytes | None, bool]:
        """(body, trusted) of one object, or (None, True) when the cache does not hold it.

        ``trusted``: the content is what the store wrote (its CRC-32 is the index's);
        otherwise the caller must check the content before serving it (a file replaced
        behind the store's back: a restore, an edit).  Raises DamagedObject when the index
        lists the object but its file is missing, is not a regular file or cannot be read,
        and when the file the store wrote (inode, size and mtime unchanged) no longer holds
        what it wrote: bit rot is never served, whatever it turned the bytes into.
        """
        ck.check_object(namespace, name)
        self._check_open()
        coll = self._get(ck)
        if coll is None:
            return None, True
        key = (namespace, name)
        epoch = self._shared.pin()  # no commit rewrites a file this read may have opened
        try:
            ns_fd = coll.fd
            if ck.namespaced:
                ns_fd = os.open(namespace, files.O_DIR, dir_fd=coll.fd)
            try:
                body, st = files.read_file_stat(ns_fd, name)
            finally:
                if ns_fd != coll.fd:
                    os.close(ns_fd)
        except FileNotFoundError:
            if key in coll.index.snapshot:
                raise DamagedObject(f"{ck.object_relpath(namespace, name)}: its file is "
                                    "missing") from None
            return None, True
        except OSError as e:
            raise DamagedObject(f"{ck.object_relpath(namespace, name)}: cannot be read: "
                                f"{e.strerror or e}") from e
        finally:
            self._shared.unpin(epoch)
        vouched = coll.index.stats.get(key)  # one tuple: stat and checksum of one commit
        if vouched is None:
            return body, False
        if vouched[3] == NO_CRC:
            return body, vouched[:3] == st
        if zlib.crc32(body) == vouched[3]:
            return body, True
        if vouched[:3] == st:
            raise DamagedObject(f"{ck.object_relpath(namespace, name)}: its content changed "
                                "under an unchanged inode, size and mtime (bit rot?): it is "
                                "not what the cache wrote")
        return body, False

    def suspects(self, ck: CollectionKey, keys: Iterable[tuple[str, str]]
                 ) -> dict[tuple[str, str], str]:
        """The objects among ``keys`` whose files are not as the store wrote them, and why
        ("missing", "not a regular file", or "changed": the content must be checked).

        One lstat per file, no read: cheap enough before every offline list.
        """
        coll = self._get(ck)
        if coll is None:
            return {}
        stats = coll.index.stats
        out: dict[tuple[str, str], str] = {}
        dir_fds: dict[str, int] = {}
        epoch = self._shared.pin()
        try:
            for ns, name in keys:
                fd = coll.fd
                if ck.namespaced:
                    fd = dir_fds.get(ns, -1)
                    if fd < 0:
                        try:
                            fd = dir_fds[ns] = os.open(ns, files.O_DIR, dir_fd=coll.fd)
                        except OSError:
                            out[(ns, name)] = "missing"
                            continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    out[(ns, name)] = "missing"
                    continue
                if not stat.S_ISREG(st.st_mode):
                    out[(ns, name)] = "not a regular file"
                elif (stats.get((ns, name)) or ())[:3] != files.stat_key(st):
                    out[(ns, name)] = "changed"
        finally:
            for fd in dir_fds.values():
                close_quietly(fd)
            self._shared.unpin(epoch)
        return out

    def quarantine_object(self, ck: CollectionKey, namespace: str, name: str) -> str | None:
        """Move an object's file (whatever it has become) to ``_quarantine/`` and drop it from
        the index (the writer thread; outside any transaction of the collection).  Returns
        the quarantine path, or None when there was no file to move."""
        ck.check_object(namespace, name)
        self._check_open()
        coll = self._get(ck)
        if coll is None:
            return None
        where = [*ck.path, *([namespace] if namespace else []), name]
        path = None
        try:
            ns_fd = coll.fd
            if ck.namespaced:
                ns_fd = os.open(namespace, files.O_DIR, dir_fd=coll.fd)
            try:
                path = move_to_quarantine(self._root_fd, ns_fd, name, where)
            finally:
                if ns_fd != coll.fd:
                    os.close(ns_fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            self._shared.write_errors += 1
            raise StorageError(f"cannot quarantine {ck.object_relpath(namespace, name)}: "
                               f"{e.strerror or e}") from e
        if (namespace, name) in coll.index:
            coll.index.update([], [(namespace, name)])
        if path is not None:
            self._shared.quarantined += 1
        return path
