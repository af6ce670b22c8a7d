"""A cache tree read without opening it: for ``yurthub cache`` beside a hub or on a stopped one.

``TreeReader`` never writes, never takes the lock and never recovers (DiskStore.open would
roll journals forward and sweep debris); it reads what is committed.  Every file an object
lives in is renamed into place whole, so a reader beside a running hub sees each object
either before or after a commit, never torn.  ``TreeAudit`` (treeaudit.py) checks the
structure of a tree read with it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yurthub.errors import InvalidKeyError, StorageError
from yurthub.storage import collection as coll_mod
from yurthub.storage import files, journal
from yurthub.storage.keys import (
    CollectionKey,
    check_component,
    check_name,
    check_namespace,
    is_bookkeeping,
)
from yurthub.storage.quarantine import quarantined_paths
from yurthub.storage.rootlock import root_in_use


@dataclass(frozen=True)
class ObjectFile:
    namespace: str
    name: str
    size: int
    mtime: float


class TreeReader:
    """Read-only access to the cache tree at ``root``.  Raises StorageError when it is not a
    readable directory, and PermissionError from any part of it this user may not read."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        try:
            # The root may be reached through a symlink (an operator's choice); nothing under it.
            self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise StorageError(f"cannot read the cache at {self.root}: "
                               f"{e.strerror or e}") from e

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TreeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def in_use(self) -> bool:
        """True while a hub (or a purge) holds the tree's lock."""
        return root_in_use(self.root)

    # -- collections --------------------------------------------------------------------------

    def components(self) -> list[str]:
        out = []
        for e in scan(self.fd):
            if not is_bookkeeping(e.name) and e.is_dir(follow_symlinks=False) \
                    and valid(check_component, e.name):
                out.append(e.name)
        return sorted(out)

    def collections(self, component: str | None = None) -> list[CollectionKey]:
        """Every collection (of ``component``), as its ``_collection`` file names it."""
        keys = []
        for comp in self.components():
            if component is not None and comp != component:
                continue
            with Dir(self.fd, comp) as comp_fd:
                for e in scan(comp_fd):
                    if is_bookkeeping(e.name) or not e.is_dir(follow_symlinks=False):
                        continue
                    with Dir(comp_fd, e.name) as coll_fd:
                        key = self.key_at(coll_fd, comp, e.name)
                    if key is not None:
                        keys.append(key)
        return sorted(keys, key=lambda k: (k.component, k.resource, k.group, k.version))

    def key_at(self, coll_fd: int, component: str, dirname: str) -> CollectionKey | None:
        """The key of the collection in ``dirname`` (open as ``coll_fd``), or None."""
        try:
            key = coll_mod.read_key(coll_fd, component, dirname)
            if key is None:  # as recovery does: the scope from what the directory holds
                kinds = {e.is_dir(follow_symlinks=False) for e in scan(coll_fd)
                         if not is_bookkeeping(e.name)}
                if kinds:
                    key = CollectionKey.from_dirname(component, dirname, True in kinds)
        except PermissionError:
            raise  # a tree this user may not read is not an empty one
        except (InvalidKeyError, OSError):
            return None
        return key

    def state(self, ck: CollectionKey) -> dict[str, Any]:
        """The collection's committed state, ``{}`` when it has none or cannot be read.

        Raises ValueError naming why when the file is there but the hub's start would set
        it aside (empty, a torn or damaged frame, not a JSON object).

        why: taken as ``{}``, such a state showed in ``cache ls`` as a collection with no
        view and nothing stale, where the hub refuses its lists offline.
        """
        try:
            with self._coll(ck) as fd:
                data = files.read_optional(fd, journal.STATE_FILE)
        except PermissionError:
            raise
        except OSError:
            return {}
        if data is None:
            return {}
        if not data:
            raise ValueError("the file is empty")
        try:
            value = json.loads(coll_mod.decode_state(data))
        except UnicodeDecodeError as e:
            raise ValueError(f"not JSON ({e.reason})") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg})") from None
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value

    def objects(self, ck: CollectionKey) -> list[ObjectFile]:
        """The object files of ``ck`` (regular files with valid names), from the directory."""
        out: list[ObjectFile] = []
        try:
            with self._coll(ck) as fd:
                if not ck.namespaced:
                    out += _files(fd, "")
                else:
                    for e in scan(fd):
                        if not is_bookkeeping(e.name) and e.is_dir(follow_symlinks=False) \
                                and valid(check_namespace, e.name):
                            with Dir(fd, e.name) as ns_fd:
                                out += _files(ns_fd, e.name)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StorageError(f"cannot read {ck}: {e.strerror or e}") from e
        return out

    def read(self, ck: CollectionKey, namespace: str, name: str) -> bytes | None:
        """The object's committed body, or None.  InvalidKeyError for a bad name."""
        rel = ck.object_relpath(namespace, name).split("/")
        fds: list[int] = []
        try:
            fd = self.fd
            for part in rel[:-1]:
                fd, _ = files.open_dir(part, fd)
                fds.append(fd)
            return files.read_file(fd, rel[-1])
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot read {'/'.join(rel)}: {e.strerror or e}") from e
        finally:
            for f in fds:
                os.close(f)

    def _coll(self, ck: CollectionKey) -> Dir:
        return Dir(self.fd, ck.component, ck.dirname)

    # -- for ``yurthub cache verify`` ----------------------------------------------------------

    def count_files(self) -> int:
        """How many object files ``TreeAudit.problems`` will read (for a progress bar)."""
        return sum(len(self.objects(ck)) for ck in self.collections())

    def quarantined(self) -> list[str]:
        """Paths of the files startup set aside in ``_quarantine/`` (relative to the root)."""
        return quarantined_paths(self.fd)


class Dir:
    """A directory opened segment by segment without following symlinks, closed on exit."""

    def __init__(self, base: int, *names: str) -> None:
        self.base, self.names, self.fds = base, names, []  # type: ignore[var-annotated]

    def __enter__(self) -> int:
        fd = self.base
        try:
            for n in self.names:
                fd, _ = files.open_dir(n, fd)
                self.fds.append(fd)
        except BaseException:
            self.__exit__()
            raise
        return fd

    def __exit__(self, *exc: object) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds = []


def scan(fd: int) -> list[os.DirEntry[str]]:
    """A directory's entries, by name."""
    return sorted(os.scandir(fd), key=lambda e: e.name)


def _files(fd: int, ns: str) -> list[ObjectFile]:
    out = []
    for e in scan(fd):
        if is_bookkeeping(e.name) or not valid(check_name, e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(ObjectFile(ns, e.name, st.st_size, st.st_mtime))
    return out


def valid(check: Callable[[str], str], value: str) -> bool:
    """Whether ``check`` (a name rule of keys.py) takes ``value``."""
    try:
        check(value)
        return True
    except InvalidKeyError:
        return False
