"""The commit journal of one collection, and the code that applies it (forward and back).

A journal names a staging directory and the changes to make from it: staged files renamed
over objects, objects deleted, the new ``_state``, and the history change.  Applying it is
idempotent, so the same code serves a commit and startup's roll-forward: a staged file that
is gone was already renamed into place.  During a commit the Applier also keeps what it
needs to take the changes back (a hard link of each replaced file, deleted files renamed
into the staging directory) so that an I/O error after the commit point can be undone.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from typing import Any

from yurthub.errors import InvalidKeyError
from yurthub.gil import pace
from yurthub.storage import files, history
from yurthub.storage.keys import check_name, check_namespace

log = logging.getLogger(__name__)

FILE = "_journal"
MAGIC = "yurthub-journal"
STAGE_PREFIX = ".stage."
# A big commit's staging dir, once committed, holding the files it replaced: spare inodes
# for the next big commit (storage.shared.Shared); startup keeps these, and sweeps the rest.
SPARE_PREFIX = ".spare."
STATE_FILE = "_state"
_STAGED_OK = frozenset("0123456789phsH")


@dataclass
class Journal:
    stage: str                                  # staging dir, relative to the collection
    puts: list[tuple[str, str, str]]            # (namespace, name, staged file)
    deletes: list[tuple[str, str]]              # (namespace, name)
    state: str | None = None                    # staged file that becomes _state
    history: dict[str, Any] | None = None       # {"mode", "file", "base"}

    def encode(self) -> list[bytes]:
        """The journal, in pieces (``files.frame_pieces``)."""
        return files.frame_pieces(MAGIC, {"v": 1, "stage": self.stage, "puts": self.puts,
                                   "deletes": self.deletes, "state": self.state,
                                   "history": self.history}, rows="puts")

    @classmethod
    def decode(cls, data: bytes, namespaced: bool) -> Journal:
        """A journal read back; ValueError if torn, damaged, or naming anything unsafe."""
        doc = files.unframe(MAGIC, data)
        try:
            if not isinstance(doc, dict) or doc.get("v") != 1:
                raise ValueError("unknown journal version")
            puts = [(str(ns), str(name), str(s)) for ns, name, s in doc["puts"]]
            deletes = [(str(ns), str(name)) for ns, name in doc["deletes"]]
            j = cls(str(doc["stage"]), puts, deletes, doc["state"], doc["history"])
            j._check(namespaced)
        except (KeyError, TypeError, InvalidKeyError) as e:
            raise ValueError(f"bad journal: {e}") from None
        return j

    def _check(self, namespaced: bool) -> None:
        # A journal is trusted to move files around: check every name it carries.
        if not self.stage.startswith(STAGE_PREFIX) or "/" in self.stage or "\0" in self.stage:
            raise ValueError("bad staging dir in journal")
        staged = [s for _, _, s in self.puts] + ([self.state] if self.state else [])
        if self.history is not None:
            if self.history["mode"] not in ("append", "replace"):
                raise ValueError("bad history mode in journal")
            staged.append(self.history["file"])
            int(self.history.get("base", 0))
        for s in staged:
            if not (isinstance(s, str) and s and set(s) <= _STAGED_OK):
                raise ValueError("bad staged file name in journal")
        for ns, name in [(ns, name) for ns, name, _ in self.puts] + self.deletes:
            if namespaced:
                check_namespace(ns)
            elif ns != "":
                raise ValueError("namespace in a cluster-scoped journal")
            check_name(name)


class Applier:
    """Applies one journal to a collection directory.

    ``undo=True`` (a live commit) records how to take every step back; without it (startup)
    missing staged files are taken as already applied.  Directory fds it opens are kept in
    ``dirs`` (namespace -> fd; ``""`` is the collection dir itself) and closed by close().
    """

    def __init__(self, coll_fd: int, journal: Journal, stage_fd: int | None, *,
                 undo: bool, dirs: dict[str, int] | None = None) -> None:
        self.coll_fd = coll_fd
        self.j = journal
        self.stage_fd = stage_fd
        self.keep_undo = undo
        self.dirs = dirs if dirs is not None else {}
        self.touched: set[str] = set()
        self.undo: list[tuple[Any, ...]] = []
        self.history_fd: int | None = None
        self.history_refused = False  # _history was no file of ours: see _append_history

    def _dir(self, ns: str, create: bool) -> int | None:
        if ns == "":
            return self.coll_fd
        fd = self.dirs.get(ns)
        if fd is None:
            try:
                fd, _ = files.open_dir(ns, self.coll_fd, create=create)
            except FileNotFoundError:
                return None
            self.dirs[ns] = fd
        return fd

    def _replace(self, ns: str, name: str, staged: str) -> None:
        d = self._dir(ns, create=True)
        assert d is not None
        if self.stage_fd is None:
            return  # staging dir gone: applied before
        backup = None
        if self.keep_undo:
            try:
                os.link(name, "b" + staged, src_dir_fd=d, dst_dir_fd=self.stage_fd,
                        follow_symlinks=False)
                backup = "b" + staged
            except FileNotFoundError:
                pass
        try:
            os.replace(staged, name, src_dir_fd=self.stage_fd, dst_dir_fd=d)
        except FileNotFoundError:
            if self.keep_undo:
                raise
            return  # renamed into place before
        self.touched.add(ns)
        self.undo.append(("put", ns, name, staged, backup))

    def run(self) -> None:
        j = self.j
        for ns, name, staged in j.puts:
            pace()
            self._replace(ns, name, staged)
        for i, (ns, name) in enumerate(j.deletes):
            d = self._dir(ns, create=False)
            if d is None:
                continue
            if self.keep_undo and self.stage_fd is not None:
                try:
                    os.rename(name, f"d{i}", src_dir_fd=d, dst_dir_fd=self.stage_fd)
                except FileNotFoundError:
                    continue
                self.undo.append(("del", ns, name, f"d{i}"))
            elif not files.unlink_optional(d, name):
                continue
            self.touched.add(ns)
        if j.state:
            self._replace("", STATE_FILE, j.state)
        if j.history:
            if j.history["mode"] == "replace":
                self._replace("", history.FILE, j.history["file"])
            else:
                self._append_history(j.history["file"], int(j.history["base"]))

    def _append_history(self, staged: str, base: int) -> None:
        if self.stage_fd is None:
            return
        data = files.read_optional(self.stage_fd, staged)
        if data is None:
            return
        # O_CREAT: should the file be gone, what gets written is unreadable, so the next
        # load marks the history lost, the safe answer.
        # why (O_NONBLOCK and the check): a FIFO put in its place while the hub ran hung the
        # writer thread in this open for good, and a hard link had it write into a file
        # outside the cache.  Refused, the commit rolls back; the collection is recovered
        # (the entry set aside, the history marked lost) before its next commit.
        try:
            fd = os.open(history.FILE, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, files.FILE_MODE, dir_fd=self.coll_fd)
        except OSError as e:
            self.history_refused = e.errno in (errno.ENXIO, errno.ELOOP)  # FIFO/socket, symlink
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            self.history_refused = True
            raise OSError(errno.EINVAL, "not the collection's own file (a FIFO, a socket or "
                          "a hard link)", history.FILE)
        self.history_fd = fd
        self.undo.append(("hist", base))
        os.ftruncate(fd, base)  # a roll-forward may find part of it written already
        files.write_all(fd, data, base)

    def kept(self) -> int:
        """How many replaced or deleted files run() kept in the staging dir."""
        return sum(1 for step in self.undo
                   if step[0] == "del" or (step[0] == "put" and step[4] is not None))

    def sync(self, use_syncfs: bool, *, stage: bool = False) -> None:
        """Make what run() (or rollback()) did durable: one syncfs, or fsync each dir."""
        if use_syncfs:
            files.syncfs(self.coll_fd)
            return
        if self.history_fd is not None:
            os.fsync(self.history_fd)
        for ns in self.touched:
            fd = self._dir(ns, create=False)
            if fd is not None:
                os.fsync(fd)
        if stage and self.stage_fd is not None:
            os.fsync(self.stage_fd)

    def rollback(self) -> None:
        """Take back every step run() made, newest first.  Raises OSError if one fails."""
        while self.undo:
            step = self.undo[-1]
            if step[0] == "put":
                _, ns, name, staged, backup = step
                d = self._dir(ns, create=False)
                os.replace(name, staged, src_dir_fd=d, dst_dir_fd=self.stage_fd)
                if backup is not None:
                    os.rename(backup, name, src_dir_fd=self.stage_fd, dst_dir_fd=d)
            elif step[0] == "del":
                _, ns, name, backup = step
                os.rename(backup, name, src_dir_fd=self.stage_fd, dst_dir_fd=self._dir(ns, False))
            else:
                assert self.history_fd is not None
                os.ftruncate(self.history_fd, step[1])
            self.undo.pop()

    def close(self) -> None:
        for ns, fd in list(self.dirs.items()):
            if ns:
                os.close(fd)
        self.dirs.clear()
        if self.history_fd is not None:
            os.close(self.history_fd)
            self.history_fd = None
