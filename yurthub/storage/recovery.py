"""Startup: roll committed journals forward, sweep staging debris, rebuild and check indexes.

For each collection: a valid ``_journal`` is applied (a torn one is discarded), every
``.``-prefixed entry is removed, and the persisted ``_index`` is checked against a scan of
the directory: an entry whose file still has the recorded (inode, size, mtime_ns) is kept
without reading the file; files that changed or appeared are re-read and re-indexed;
files that are not valid JSON objects, symlinks and misplaced entries are moved to
``<root>/_quarantine/`` and never served.  An object the saved index lists whose file is
gone (deleted, or its namespace directory replaced by a file or a symlink and set aside) is
reported lost like a quarantined one: the views that held it become incomplete, never
shorter.  design: after a crash the index may predate a commit that deleted an object (it
is written lazily).  A watch event's delete is explained by its history record, and a
list's removals by the REMOVED record committed with them: those objects are gone, not
lost.  A file missing with no such record (deleted behind the store's back) is lost.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yurthub.errors import InvalidKeyError
from yurthub.storage import collection as coll_mod
from yurthub.storage import files, history, journal
from yurthub.storage.collection import Collection
from yurthub.storage.history import History
from yurthub.storage.index import FILE as INDEX_FILE
from yurthub.storage.index import NO_CRC, Index, Key, Stat, Vouch, vouch
from yurthub.storage.keys import (
    CollectionKey,
    check_component,
    check_name,
    check_namespace,
    is_bookkeeping,
)
from yurthub.storage.quarantine import move_to_quarantine, set_aside_dir
from yurthub.storage.store import Entry, LostObject, RecoveryReport

log = logging.getLogger(__name__)

NONRESOURCE = "_nonresource"
# (collection, namespace, name, file content) -> the object's index meta.  Raises (anything)
# when the content is not the object its path names: the file is then quarantined.
MetaLoader = Callable[[CollectionKey, str, str, bytes], dict[str, Any]]
# A collection's state document -> None; raises (anything) when this version cannot read it:
# the state is then quarantined like one that is not JSON.
StateCheck = Callable[[Any], None]


@dataclass
class Recovery:
    root_fd: int
    history_limit: int
    use_syncfs: bool
    meta_loader: MetaLoader | None
    report: RecoveryReport
    # When a list: the spare dirs found (collection fd, name), kept for the store to reuse;
    # otherwise they are swept like staging debris.
    spares: list[tuple[int, str]] | None = None
    state_check: StateCheck | None = None
    # Objects of the collection being recovered that were quarantined: (ns, name, why).
    _lost: list[tuple[str, str, str]] = field(default_factory=list)
    # Namespace entries of that collection set aside whole (not a directory): ns -> why.
    _lost_ns: dict[str, str] = field(default_factory=dict)

    # -- the root ---------------------------------------------------------------------------

    def run(self) -> dict[tuple[str, str], Collection]:
        found: dict[tuple[str, str], Collection] = {}
        try:
            self._root(found)
        except BaseException:
            for coll in found.values():
                os.close(coll.fd)
            raise
        return found

    def _root(self, found: dict[tuple[str, str], Collection]) -> None:
        for entry in sorted(os.scandir(self.root_fd), key=lambda e: e.name):
            name = entry.name
            if name.startswith("."):
                self._sweep(self.root_fd, name, name)
            elif name == NONRESOURCE and entry.is_dir(follow_symlinks=False):
                fd, _ = files.open_dir(name, self.root_fd)
                try:
                    for e in list(os.scandir(fd)):
                        if e.name.startswith("."):
                            self._sweep(fd, e.name, f"{name}/{e.name}")
                finally:
                    os.close(fd)
            elif is_bookkeeping(name):
                continue
            elif _valid(check_component, name) and not entry.is_dir(follow_symlinks=False):
                # A component's directory replaced (a symlink, a file): set aside, and gets of
                # what it held are 503 (it may well be cached there), not 404.
                why = _file_type(entry.stat(follow_symlinks=False))
                log.warning("%s in the cache root is %s, not a directory: setting it aside",
                            name, why)
                self._quarantine(self.root_fd, name, [name])
                self.report.set_aside[(name, "")] = (
                    f"the component's directory was {why} and was set aside")
            elif not entry.is_dir(follow_symlinks=False) or not _valid(check_component, name):
                log.warning("ignoring %r in the cache root: not a component directory", name)
            else:
                self._component(name, found)

    def _component(self, component: str, found: dict[tuple[str, str], Collection]) -> None:
        try:
            comp_fd, _ = files.open_dir(component, self.root_fd)
        except PermissionError as e:
            log.error("cannot read the component directory %s (%s): setting it aside",
                      component, e.strerror)
            self.report.quarantined_paths.append(
                set_aside_dir(self.root_fd, self.root_fd, component, [component]))
            self.report.quarantined += 1
            self.report.set_aside[(component, "")] = (
                f"the component's directory could not be read ({e.strerror}) and was set aside")
            return
        try:
            for entry in sorted(os.scandir(comp_fd), key=lambda e: e.name):
                name, where = entry.name, f"{component}/{entry.name}"
                if name.startswith("."):
                    self._sweep(comp_fd, name, where)
                    continue
                try:
                    CollectionKey.from_dirname(component, name, True)
                except InvalidKeyError:
                    if not is_bookkeeping(name):
                        log.warning("ignoring %r: not a <resource>.<version>.<group> dir", where)
                    continue
                if not entry.is_dir(follow_symlinks=False):
                    why = _file_type(entry.stat(follow_symlinks=False))
                    log.warning("%s is %s, not a directory: setting it aside", where, why)
                    self._quarantine(comp_fd, name, [component, name])
                    self.report.set_aside[(component, name)] = (
                        f"its collection's directory was {why} and was set aside")
                    continue
                try:
                    coll = self.collection(comp_fd, component, name)
                except OSError as e:
                    # A cache can lose a collection; the gateway must still start.
                    log.error("cannot recover %s (%s): moving it to quarantine", where, e)
                    self.report.quarantined_paths.append(set_aside_dir(
                        self.root_fd, comp_fd, name, [component, name + ".broken"]))
                    self.report.quarantined += 1
                    self.report.set_aside[(component, name)] = (
                        f"its collection could not be recovered ({e}) and was set aside")
                    continue
                if coll is not None:
                    found[coll.key.path] = coll
        finally:
            os.close(comp_fd)

    # -- one collection ----------------------------------------------------------------------

    def collection(self, comp_fd: int, component: str, dirname: str,
                   coll_fd: int | None = None) -> Collection | None:
        """Recover one collection; None if its directory held nothing worth keeping."""
        if coll_fd is None:
            coll_fd, _ = files.open_dir(dirname, comp_fd)
        try:
            coll = self._collection(coll_fd, component, dirname)
        except BaseException:
            os.close(coll_fd)
            raise
        if coll is None:
            log.info("removing %s/%s: an empty collection left by a crash", component, dirname)
            os.close(coll_fd)
            files.remove_any(comp_fd, dirname)
            self.report.swept += 1
        return coll

    def _collection(self, coll_fd: int, component: str, dirname: str) -> Collection | None:
        where = f"{component}/{dirname}"
        aside = self._bookkeeping(coll_fd, component, dirname)
        key = coll_mod.read_key(coll_fd, component, dirname)
        if key is None:
            namespaced = self._infer_scope(coll_fd)
            if namespaced is None:
                return None
            key = CollectionKey.from_dirname(component, dirname, namespaced)
            coll_mod.write_key(coll_fd, key)
        files.spread_subdirs(coll_fd)  # a cache made before the flag was set
        self._roll_forward(coll_fd, key)
        kept: list[str] = []
        for name in [n for n in os.listdir(coll_fd) if n.startswith(".")]:
            if (self.spares is not None and name.startswith(journal.SPARE_PREFIX)
                    and stat.S_ISDIR(os.stat(name, dir_fd=coll_fd,
                                             follow_symlinks=False).st_mode)):
                kept.append(name)
            else:
                self._sweep(coll_fd, name, f"{where}/{name}")
        state = self._state(coll_fd, key)
        hist, damaged = History.load(coll_fd, self.history_limit)
        if damaged:
            self._quarantine(coll_fd, history.FILE, [*key.path, history.FILE])
        elif history.FILE in aside:
            # why: taken as no history at all, it made an offline watch resumed from a
            # version before the last event end quietly with no events (kubelet missed them)
            hist = History.lost_one(self.history_limit)
        index = self._index(coll_fd, key, hist)
        self.report.collections += 1
        self.report.objects += len(index)
        if self.spares is not None:
            self.spares += [(coll_fd, name) for name in kept]
        return Collection(key, coll_fd, index, hist, state)

    def _bookkeeping(self, coll_fd: int, component: str, dirname: str) -> set[str]:
        """Set aside a bookkeeping entry that is not a regular file (a directory, a symlink,
        a FIFO), alone: reading it would fail, and the whole collection would be lost for
        it (a get of its objects 404).  Each is then as if absent: a journal is a commit
        that never happened, a state has no views (lists refused offline), an index and a
        history are rebuilt or marked lost as when damaged.  Returns the names set aside."""
        aside = set()
        for name in (coll_mod.KEY_FILE, journal.FILE, journal.STATE_FILE, history.FILE,
                     INDEX_FILE):
            try:
                st = os.stat(name, dir_fd=coll_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                log.warning("%s/%s/%s is not a regular file (%s): setting it aside",
                            component, dirname, name, _file_type(st))
                self._quarantine(coll_fd, name, [component, dirname, name])
                aside.add(name)
        return aside

    def _infer_scope(self, coll_fd: int) -> bool | None:
        kinds = {e.is_dir(follow_symlinks=False) for e in os.scandir(coll_fd)
                 if not is_bookkeeping(e.name)}
        return None if not kinds else (True in kinds)

    def _roll_forward(self, coll_fd: int, key: CollectionKey) -> None:
        data = files.read_optional(coll_fd, journal.FILE)
        if data is None:
            return
        try:
            j = journal.Journal.decode(data, key.namespaced)
        except ValueError as e:
            log.info("%s: discarding an incomplete journal (%s)", key, e)
            os.unlink(journal.FILE, dir_fd=coll_fd)
            self.report.discarded += 1
            return
        try:
            stage_fd: int | None = files.open_dir(j.stage, coll_fd)[0]
        except FileNotFoundError:
            stage_fd = None
        applier = journal.Applier(coll_fd, j, stage_fd, undo=False)
        try:
            applier.run()
            applier.sync(self.use_syncfs, stage=True)
        finally:
            applier.close()
            if stage_fd is not None:
                os.close(stage_fd)
        os.unlink(journal.FILE, dir_fd=coll_fd)
        os.fsync(coll_fd)
        log.info("%s: rolled a committed transaction forward", key)
        self.report.rolled_forward += 1

    def _state(self, coll_fd: int, key: CollectionKey) -> bytes:
        data = files.read_optional(coll_fd, journal.STATE_FILE)
        if data is None:
            return coll_mod.EMPTY_STATE
        try:
            data = coll_mod.decode_state(data)
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if self.state_check is not None:
                self.state_check(doc)
            return data
        except Exception as e:  # a check failing on one state costs that state, no more
            why = f"{type(e).__name__}: {e}"
        log.warning("%s: its state cannot be read (%s): set aside; its lists are refused "
                    "offline until the cloud's next list", key, why)
        self.report.states_set_aside[key.path] = why
        self._quarantine(coll_fd, journal.STATE_FILE, [*key.path, journal.STATE_FILE])
        return coll_mod.EMPTY_STATE

    # -- the index -------------------------------------------------------------------------

    def _index(self, coll_fd: int, key: CollectionKey, hist: History) -> Index:
        saved: dict[Key, tuple[Entry, Vouch]] = {}
        data = files.read_optional(coll_fd, INDEX_FILE)
        if data is not None:
            try:
                saved = Index.decode(data)
            except (ValueError, TypeError, KeyError) as e:
                log.warning("%s: the saved index is unusable (%s); rebuilding it", key, e)
        entries: dict[Key, Entry] = {}
        stats: dict[Key, Vouch] = {}
        ns_fds: list[int] = []
        self._lost = []
        self._lost_ns = {}
        try:
            on_disk = self._scan(coll_fd, key, ns_fds)
            changed = data is None or len(saved) != len(on_disk)
            self._missing(coll_fd, key, hist, saved, on_disk)
            for k, (dir_fd, st) in on_disk.items():
                known = saved.get(k)
                if known is not None and known[1][:3] == st:
                    crc = self._checksum(dir_fd, key, k, known[1][3])
                    if crc == known[1][3]:
                        entries[k], stats[k] = known
                        continue
                    changed = True
                    if crc is not None:  # an index without checksums vouched for the file
                        entries[k], stats[k] = known[0], vouch(st, crc)
                    continue
                changed = True
                got = self._reindex(dir_fd, key, k)
                if got is not None:
                    entries[k], stats[k] = got[0], vouch(st, got[1])
        finally:
            for fd in ns_fds:
                os.close(fd)
            for ns, name, why in self._lost:
                # What the saved index knew of it (its labels, fields), if anything: the
                # cache marks exactly the views that held it incomplete.
                known_meta = saved[(ns, name)][0].meta if (ns, name) in saved else None
                self.report.lost.append(LostObject(key, ns, name, known_meta, why))
            self._lost = []
            self._lost_ns = {}
        index = Index(entries, stats)
        if changed:
            index.unsaved = 1
            try:
                index.persist(coll_fd)
            except OSError as e:
                log.warning("%s: cannot write the index: %s", key, e)
        return index

    def _missing(self, coll_fd: int, key: CollectionKey, hist: History,
                 saved: dict[Key, tuple[Entry, Vouch]],
                 on_disk: dict[Key, tuple[int, Stat]]) -> None:
        """Objects the saved index lists whose files are gone (deleted, or their namespace
        directory set aside) are lost, like quarantined ones: a view that held one must not
        answer a list without it (kubelet takes a pod missing from its list as deleted).
        Not one a committed watch event or list removed (the history says so): the index
        is saved lazily, and a pod deleted shortly before a crash made kubelet's whole pod
        list refused after the reboot."""
        already = {(ns, name) for ns, name, _ in self._lost}
        gone = sorted(saved.keys() - on_disk.keys() - already)
        deleted = hist.deleted(coll_fd, {k: _rv(saved[k][0].meta) for k in gone
                                         if k[0] not in self._lost_ns})
        for ns, name in gone:
            if (ns, name) in deleted:
                continue
            why = self._lost_ns.get(ns)
            if why is None:
                why = "its file is missing"
                log.warning("%s/%s/%s: %s", key, ns or "-", name, why)
            self._lost.append((ns, name, why))

    def _checksum(self, dir_fd: int, key: CollectionKey, k: Key, want: int) -> int | None:
        """The CRC-32 of a file the saved index vouches for by its stat, read to check that
        its content is still what the store wrote (bit rot, a flipped byte or a torn tail
        keep inode, size and mtime); None when it is not (the file is then lost).  Without a
        recorded checksum (an index of version 1), the content is checked as on a reindex.
        """
        ns, name = k
        body = self._read(dir_fd, key, k)
        if body is None:
            return None
        crc = zlib.crc32(body)
        if want == NO_CRC:
            return crc if self._valid_body(dir_fd, key, k, body) is not None else None
        if crc != want:
            self._lose(dir_fd, key, ns, name, "its content changed under an unchanged inode, "
                       "size and mtime (bit rot?): it is not what the cache wrote")
            return None
        return crc

    def _read(self, dir_fd: int, key: CollectionKey, k: Key) -> bytes | None:
        """An object file's bytes; None (and the object lost) when it cannot be read."""
        ns, name = k
        try:
            return files.read_file(dir_fd, name)
        except OSError as e:
            self._lose(dir_fd, key, ns, name, f"cannot be read: {e.strerror or e}")
            return None

    def _reindex(self, dir_fd: int, key: CollectionKey, k: Key) -> tuple[Entry, int] | None:
        body = self._read(dir_fd, key, k)
        if body is None:
            return None
        self.report.reindexed += 1
        meta = self._valid_body(dir_fd, key, k, body)
        if meta is None:
            return None
        return Entry(meta, len(body)), zlib.crc32(body)

    def _valid_body(self, dir_fd: int, key: CollectionKey, k: Key,
                    body: bytes) -> dict[str, Any] | None:
        """The index meta of a file's content, or None (and the file lost) when it is not
        the object its path names."""
        ns, name = k
        try:
            if not isinstance(json.loads(body), dict):
                raise ValueError("not a JSON object")
            return self.meta_loader(key, ns, name, body) if self.meta_loader is not None else {}
        except Exception as e:  # a loader failing on one file costs that file, no more
            self._lose(dir_fd, key, ns, name, f"not a valid object: {type(e).__name__}: {e}")
            return None

    def _scan(self, coll_fd: int, key: CollectionKey,
              ns_fds: list[int]) -> dict[Key, tuple[int, Stat]]:
        """Every object file: (namespace, name) -> (its directory's fd, its stat).

        The namespace directories' fds are appended to ``ns_fds`` for the caller to close.
        """
        out: dict[Key, tuple[int, Stat]] = {}
        if not key.namespaced:
            self._scan_dir(coll_fd, key, "", out)
            return out
        for e in sorted(os.scandir(coll_fd), key=lambda e: e.name):
            if is_bookkeeping(e.name):
                continue
            if not e.is_dir(follow_symlinks=False) or not _valid(check_namespace, e.name):
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    why = "its namespace directory has an invalid name"
                else:
                    why = f"its namespace directory was not a directory ({_file_type(st)})"
                log.warning("%s/%s set aside with its objects: %s", key, e.name, why)
                self._quarantine(coll_fd, e.name, [*key.path, e.name])
                self._lost_ns[e.name] = why
                continue
            ns_fd, _ = files.open_dir(e.name, coll_fd)
            ns_fds.append(ns_fd)
            if not self._scan_dir(ns_fd, key, e.name, out):
                try:
                    os.rmdir(e.name, dir_fd=coll_fd)
                except OSError:
                    pass
        return out

    def _scan_dir(self, dir_fd: int, key: CollectionKey, ns: str,
                  out: dict[Key, tuple[int, Stat]]) -> int:
        n = 0
        for e in list(os.scandir(dir_fd)):  # listed first: entries move away as we go
            name = e.name
            if name.startswith(".") and ns:
                self._sweep(dir_fd, name, f"{key}/{ns}/{name}")
                continue
            if is_bookkeeping(name) and not ns:
                continue
            st = e.stat(follow_symlinks=False)
            if not _valid(check_name, name):
                self._quarantine(dir_fd, name, _where(key, ns, name))  # never one of ours
                continue
            if not stat.S_ISREG(st.st_mode):
                self._lose(dir_fd, key, ns, name, f"not a regular file ({_file_type(st)})")
                continue
            out[(ns, name)] = (dir_fd, (st.st_ino, st.st_size, st.st_mtime_ns))
            n += 1
        return n

    # -- sweeping and quarantine -----------------------------------------------------------------

    def _sweep(self, dir_fd: int, name: str, where: str) -> None:
        try:
            files.remove_any(dir_fd, name)
        except FileNotFoundError:
            return
        log.debug("swept %s", where)
        self.report.swept += 1

    def _quarantine(self, dir_fd: int, name: str, where: list[str]) -> None:
        """Move ``name`` to ``_quarantine/<where...>`` (with ``.<n>`` if that is taken)."""
        path = move_to_quarantine(self.root_fd, dir_fd, name, where)
        self.report.quarantined += 1
        self.report.quarantined_paths.append(path)

    def _lose(self, dir_fd: int, key: CollectionKey, ns: str, name: str, why: str) -> None:
        """Quarantine an object file and report the object as lost to its collection."""
        log.warning("%s/%s/%s cannot be trusted: %s", key, ns or "-", name, why)
        self._quarantine(dir_fd, name, _where(key, ns, name))
        self._lost.append((ns, name, why))


def _rv(meta: dict[str, Any]) -> int:
    rv = meta.get("rv", 0)
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _where(key: CollectionKey, ns: str, name: str) -> list[str]:
    return [*key.path, *([ns] if ns else []), name]


def _valid(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
        return True
    except InvalidKeyError:
        return False


def _file_type(st: os.stat_result) -> str:
    for test, what in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISLNK, "a symlink"),
                       (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(st.st_mode):
            return what
    return "of an unknown type"
