"""The audit of a cache tree: what is wrong with its structure, for ``yurthub cache verify``.

``TreeAudit`` walks the whole tree a ``TreeReader`` reads and reports, one line each, what
is wrong with its structure (modes, owners, debris, bookkeeping that does not parse, objects
the saved index lists whose files are gone); the caller checks each object's content (the
storage room does not know what an object is).  Like the reader it never writes, never takes
the lock and never recovers; beside a running hub, its commits in progress are not debris.
"""

from __future__ import annotations

import json
import os
import stat
import zlib
from collections.abc import Callable, Iterator

from yurthub.errors import InvalidKeyError
from yurthub.storage import collection as coll_mod
from yurthub.storage import files, history, journal
from yurthub.storage.history import History
from yurthub.storage.index import FILE as INDEX_FILE
from yurthub.storage.index import NO_CRC, Index, Vouch
from yurthub.storage.keys import (
    CollectionKey,
    check_component,
    check_name,
    check_namespace,
    is_bookkeeping,
    nonresource_path,
)
from yurthub.storage.quarantine import QUARANTINE, UNREADABLE
from yurthub.storage.recovery import NONRESOURCE, StateCheck
from yurthub.storage.rootlock import LOCK_FILE
from yurthub.storage.treereader import Dir, TreeReader, scan, valid

# (collection, namespace, name, body) -> why the body is not that object ("" when it is)
BodyCheck = Callable[[CollectionKey, str, str, bytes], str]
_BOOKKEEPING = {coll_mod.KEY_FILE, INDEX_FILE, journal.STATE_FILE, history.FILE, journal.FILE}


class TreeAudit:
    """The structure of the tree ``tree`` reads, checked."""

    def __init__(self, tree: TreeReader) -> None:
        self.tree = tree
        self._state_check: StateCheck | None = None
        self._vouched: dict[tuple[str, str], Vouch] = {}

    def problems(self, check: BodyCheck, progress: Callable[[], None] = lambda: None,
                 state_check: StateCheck | None = None) -> Iterator[str]:
        """Every problem of the tree, one line each (paths relative to the root).

        While a hub owns the tree, its commits in progress (staging directories, journals,
        temporary files) are not debris and are not reported.  ``state_check`` is the
        hub's own test of a collection's state (what its start sets aside).
        """
        self._state_check = state_check
        busy = self.tree.in_use()
        st = os.fstat(self.tree.fd)
        self._uid = st.st_uid
        yield from self._mode(".", st, files.DIR_MODE)
        for e in scan(self.tree.fd):
            name, est = e.name, e.stat(follow_symlinks=False)
            if name.startswith("."):
                if not busy:
                    yield f"{name}: debris (a crash's leftover; the next start removes it)"
            elif name == LOCK_FILE:
                yield from self._mode(name, est, files.FILE_MODE)
            elif name in (NONRESOURCE, QUARANTINE):
                if not stat.S_ISDIR(est.st_mode):
                    yield f"{name}: not a directory; the hub sets it aside at its start"
                elif name == NONRESOURCE:
                    yield from self._plain_dir(name, est, busy)
            elif name in _FRAMED_AT_ROOT:
                yield from self._mode(name, est, files.FILE_MODE)
                if stat.S_ISREG(est.st_mode):
                    yield from _framed(self.tree.fd, name)
            elif name.startswith(UNREADABLE):
                yield _unreadable(name)
            elif is_bookkeeping(name):
                continue
            elif not stat.S_ISDIR(est.st_mode) or not valid(check_component, name):
                yield f"{name}: not a component directory"
            else:
                yield from self._component(name, est, check, progress, busy)

    def _mode(self, where: str, st: os.stat_result, want: int) -> Iterator[str]:
        kind = "directory" if want == files.DIR_MODE else "file"
        if want == files.DIR_MODE and not stat.S_ISDIR(st.st_mode):
            yield f"{where}: not a directory"
            return
        if want == files.FILE_MODE and not stat.S_ISREG(st.st_mode):
            yield f"{where}: not a regular file ({_file_type(st)})"
            return
        mode = stat.S_IMODE(st.st_mode)
        if mode != want:
            yield f"{where}: {kind} mode {mode:04o}, not {want:04o}"
        if st.st_uid != self._uid:
            yield f"{where}: owned by uid {st.st_uid}, not the cache's owner (uid {self._uid})"

    def _plain_dir(self, where: str, st: os.stat_result, busy: bool) -> Iterator[str]:
        yield from self._mode(where, st, files.DIR_MODE)
        with Dir(self.tree.fd, where) as fd:
            for e in scan(fd):
                if e.name.startswith("."):
                    if not busy:
                        yield f"{where}/{e.name}: debris (a crash's leftover)"
                    continue
                est = e.stat(follow_symlinks=False)
                yield from self._mode(f"{where}/{e.name}", est, files.FILE_MODE)
                if stat.S_ISREG(est.st_mode):
                    own = nonresource_path(e.name).startswith(OWN_DOCS)
                    yield from _document(fd, e.name, f"{where}/{e.name}", own)

    def _component(self, comp: str, st: os.stat_result, check: BodyCheck,
                   progress: Callable[[], None], busy: bool) -> Iterator[str]:
        yield from self._mode(comp, st, files.DIR_MODE)
        with Dir(self.tree.fd, comp) as comp_fd:
            for e in scan(comp_fd):
                where, est = f"{comp}/{e.name}", e.stat(follow_symlinks=False)
                if e.name.startswith("."):
                    if not busy:
                        yield f"{where}: debris (a crash's leftover; the next start removes it)"
                    continue
                if e.name.startswith(UNREADABLE):
                    yield _unreadable(where)
                    continue
                if is_bookkeeping(e.name):
                    continue
                try:
                    CollectionKey.from_dirname(comp, e.name, True)
                except InvalidKeyError:
                    yield f"{where}: not a <resource>.<version>.<group> directory"
                    continue
                if not stat.S_ISDIR(est.st_mode):
                    yield f"{where}: not a directory"
                    continue
                with Dir(comp_fd, e.name) as coll_fd:
                    yield from self._collection(coll_fd, comp, e.name, est, check, progress,
                                                busy)

    def _collection(self, fd: int, comp: str, dirname: str, st: os.stat_result,
                    check: BodyCheck, progress: Callable[[], None], busy: bool
                    ) -> Iterator[str]:
        where = f"{comp}/{dirname}"
        yield from self._mode(where, st, files.DIR_MODE)
        key = coll_mod.read_key(fd, comp, dirname)
        if key is None:
            yield f"{where}/{coll_mod.KEY_FILE}: missing or does not name this collection"
            key = self.tree.key_at(fd, comp, dirname)
            if key is None:
                return
        yield from self._bookkeeping(fd, where, busy)
        # A running hub's index lags its commits: only a stopped one's vouches for files.
        self._vouched = {} if busy else _saved_index(fd)
        yield from _unfiled(fd, key, where, self._vouched)
        if not key.namespaced:
            yield from self._objects(fd, key, "", where, check, progress, busy)
            return
        for e in scan(fd):
            if is_bookkeeping(e.name):
                continue
            est = e.stat(follow_symlinks=False)
            if not stat.S_ISDIR(est.st_mode) or not valid(check_namespace, e.name):
                yield f"{where}/{e.name}: not a namespace directory"
                continue
            yield from self._mode(f"{where}/{e.name}", est, files.DIR_MODE)
            with Dir(fd, e.name) as ns_fd:
                yield from self._objects(ns_fd, key, e.name, f"{where}/{e.name}", check,
                                         progress, busy)

    def _bookkeeping(self, fd: int, where: str, busy: bool) -> Iterator[str]:
        for e in scan(fd):
            name, path = e.name, f"{where}/{e.name}"
            if name.startswith("."):
                if not busy and not (name.startswith(journal.SPARE_PREFIX)
                                     and e.is_dir(follow_symlinks=False)):
                    yield f"{path}: debris (a crash's leftover; the next start removes it)"
                continue
            if not is_bookkeeping(name):
                continue
            est = e.stat(follow_symlinks=False)
            if name == journal.FILE:
                if not stat.S_ISREG(est.st_mode):
                    yield (f"{path}: not a regular file ({_file_type(est)}); the hub sets it "
                           "aside at its start")
                elif not busy:
                    yield f"{path}: a commit a crash interrupted (the next start applies it)"
                continue
            if name not in _BOOKKEEPING:
                yield f"{path}: unknown bookkeeping file"
                continue
            yield from self._mode(path, est, files.FILE_MODE)
            if stat.S_ISREG(est.st_mode):
                yield from _parses(fd, name, path, self._state_check)

    def _objects(self, fd: int, key: CollectionKey, ns: str, where: str, check: BodyCheck,
                 progress: Callable[[], None], busy: bool) -> Iterator[str]:
        for e in scan(fd):
            name, path = e.name, f"{where}/{e.name}"
            if not ns and is_bookkeeping(name):
                continue
            if name.startswith("."):
                if not busy:
                    yield f"{path}: debris (a crash's leftover; the next start removes it)"
                continue
            try:
                est = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # replaced by a commit while we looked
            if not valid(check_name, name):
                yield f"{path}: not a valid object name"
                continue
            problems = list(self._mode(path, est, files.FILE_MODE))
            if stat.S_ISREG(est.st_mode):
                try:
                    data, st = files.read_file_stat(fd, name)
                    why = check(key, ns, name, data)
                    vouched = self._vouched.get((ns, name))
                    if (not why and vouched is not None and vouched[3] != NO_CRC
                            and vouched[:3] == st and zlib.crc32(data) != vouched[3]):
                        why = ("its content changed under an unchanged inode, size and mtime "
                               "(bit rot?); the hub sets it aside at its start")
                except FileNotFoundError:
                    why = ""
                except OSError as err:
                    why = f"unreadable ({err.strerror or err})"
                if why:
                    problems.append(f"{path}: {why}")
            progress()
            yield from problems


def _saved_index(coll_fd: int) -> dict[tuple[str, str], Vouch]:
    """What a collection's saved index vouches for ({} when it is missing or unusable)."""
    try:
        return {k: v for k, (_, v) in Index.decode(files.read_file(coll_fd, INDEX_FILE)).items()}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _unfiled(coll_fd: int, key: CollectionKey, where: str,
             saved: dict[tuple[str, str], Vouch]) -> Iterator[str]:
    """Objects the saved index lists whose files are gone: the hub reports them lost at
    its start (lists that need them are refused until the cloud's next list)."""
    by_ns: dict[str, list[str]] = {}
    for ns, name in saved:
        by_ns.setdefault(ns, []).append(name)
    lost = "listed in the index but its file is missing (the hub sets it aside as lost)"
    for ns, names in sorted(by_ns.items()):
        ns_fd = coll_fd
        if key.namespaced:
            try:
                ns_fd, _ = files.open_dir(ns, coll_fd)
            except OSError:
                yield (f"{where}/{ns}: {len(names)} object(s) listed in the index have no "
                       "namespace directory (the hub sets them aside as lost)")
                continue
        gone = []
        try:
            for name in sorted(names):
                try:
                    os.stat(name, dir_fd=ns_fd, follow_symlinks=False)
                except FileNotFoundError:
                    gone.append(name)
        finally:
            if ns_fd != coll_fd:
                os.close(ns_fd)
        # A file a committed watch event deleted is gone, not lost (recovery._missing).
        deleted = _deleted(coll_fd, {(ns, n): 0 for n in gone}) if gone else set()
        for name in gone:
            if (ns, name) not in deleted:
                yield f"{where}/{ns}/{name}: {lost}" if ns else f"{where}/{name}: {lost}"


def _deleted(coll_fd: int, wanted: dict[tuple[str, str], int]) -> set[tuple[str, str]]:
    try:
        hist, _ = History.load(coll_fd, 1 << 30)  # reads only; every record in the file
    except OSError:
        return set()
    return hist.deleted(coll_fd, wanted)


# The bookkeeping documents at the root (DiskStore.read_bookkeeping: framed JSON): the
# offline token memory, and kubelet's kept ServiceAccount tokens (secrets: 0600 checked).
_FRAMED_AT_ROOT = {"_access": "bearer tokens seen before are refused offline until the "
                   "cloud accepts them again",
                   "_tokens": "offline, kubelet gets short-lived local ServiceAccount "
                   "tokens until the cloud answers again"}


def _framed(fd: int, name: str) -> Iterator[str]:
    try:
        files.unframe(name[1:], files.read_file(fd, name))
    except FileNotFoundError:
        return
    except OSError as e:
        yield f"{name}: unreadable ({e.strerror or e})"
    except ValueError as e:
        yield (f"{name}: does not parse ({e}); the hub starts without it: "
               f"{_FRAMED_AT_ROOT[name]}")


# Non-resource paths under which the hub keeps documents of its own (the filters' inputs):
# JSON objects, unlike the cloud's bodies, which are kept as they came.
OWN_DOCS = "/_yurthub/"


def _document(fd: int, name: str, path: str, own: bool) -> Iterator[str]:
    """A stored document must check out against its frame (files.DOC_MAGIC); one the hub
    keeps for itself (``own``) must parse too: the hub cannot use one that does not (it
    waits for the cloud to tell it again; the filters' inputs: filtered requests are refused
    offline meanwhile)."""
    try:
        body = files.framed_or_legacy(files.DOC_MAGIC, files.read_file(fd, name))
        if own and not isinstance(json.loads(body), dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return
    except OSError as e:
        yield f"{path}: unreadable ({e.strerror or e})"
    except ValueError as e:
        yield (f"{path}: does not parse ({e}); the hub cannot use it and waits for the "
               "cloud (what depends on it, e.g. filtered requests, is refused offline)")


def _parses(fd: int, name: str, path: str,
            state_check: StateCheck | None = None) -> Iterator[str]:
    try:
        data = files.read_file(fd, name)
    except FileNotFoundError:
        return
    except OSError as e:
        yield f"{path}: unreadable ({e.strerror or e})"
        return
    try:
        if name == INDEX_FILE:
            Index.decode(data)
        elif name == history.FILE:
            if History.load(fd, 1_000_000)[1]:
                yield f"{path}: damaged (offline watch resumes from before it are refused)"
        elif name == journal.STATE_FILE:
            doc = json.loads(coll_mod.decode_state(data))  # an empty one is set aside too
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if state_check is not None:
                state_check(doc)
        elif data and not isinstance(json.loads(data), dict):
            raise ValueError("not a JSON object")
    except (ValueError, TypeError, KeyError) as e:
        then = {journal.STATE_FILE: "; the hub sets it aside at its start: its lists are "
                "refused offline until the cloud's next list",
                INDEX_FILE: "; the hub rebuilds it at its start"}.get(name, "")
        yield f"{path}: does not parse ({e}){then}"


def _unreadable(where: str) -> str:
    return (f"{where}: set aside by the hub, which may not write it (another user's); make it "
            "the service's and move it to _quarantine/, or remove it")


def _file_type(st: os.stat_result) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISLNK, "a symlink"), (stat.S_ISSOCK, "a socket")):
        if test(st.st_mode):
            return what
    return "a device or unknown type"

