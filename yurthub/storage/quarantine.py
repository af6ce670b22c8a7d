"""Quarantine: where files that cannot be trusted are moved, never served and never deleted.

``<root>/_quarantine/`` mirrors the tree (``<component>/<collection>/<namespace>/<name>``,
with ``.<n>`` appended when that path is taken), so an operator can see what was damaged
and where it came from.  Anything can be moved there: a torn file, a file whose content
names another object, a directory or a FIFO where a file belongs.
"""

from __future__ import annotations

import logging
import os
import stat
import time

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
        dest = _free_name(fd, target)
        os.rename(name, dest, src_dir_fd=dir_fd, dst_dir_fd=fd)
    finally:
        for f in fds:
            os.close(f)
    path = "/".join([*parts, dest])
    log.warning("quarantined %s", path)
    return path


UNREADABLE = "_unreadable."


def _free_name(dir_fd: int, base: str) -> str:
    """``base``, or ``base.<n>`` for the first n that names nothing in ``dir_fd`` yet."""
    dest, n = base, 0
    while True:
        try:
            os.stat(dest, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return dest
        n += 1
        dest = f"{base}.{n}"


def set_aside_dir(root_fd: int, dir_fd: int, name: str, where: list[str]) -> str:
    """Move directory ``name`` (in ``dir_fd``) to ``_quarantine/<where...>``, or, when the
    service may not write it, to ``_unreadable.<name>`` beside it; returns the path moved to
    (relative to ``dir_fd`` in the second case).  Raises OSError.

    why: moving a directory to another parent needs write permission on it (its ``..``
    changes).  A component's or collection's directory the service may not enter (root's
    0700, restored from a backup as root) could be neither recovered nor quarantined, and
    the start failed: the hub exited at every restart, online proxying included.  A rename
    within the same parent needs no permission on the directory itself; the ``_`` name is
    bookkeeping, which recovery leaves alone at every later start.
    """
    try:
        return move_to_quarantine(root_fd, dir_fd, name, where)
    except PermissionError as e:
        return rename_beside(dir_fd, name, f"{'/'.join(where)} cannot be moved to "
                             f"{QUARANTINE}/ ({e.strerror})")


def rename_beside(dir_fd: int, name: str, why: str) -> str:
    """Rename ``name`` to ``_unreadable.<name>`` (``.<n>`` appended when taken) in the same
    directory, logging ``why`` as an ERROR; the new name.  Raises OSError."""
    dest = _free_name(dir_fd, f"{UNREADABLE}{name}")
    os.rename(name, dest, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    log.error("%s: set aside as %s beside it; make it the service's and move it to %s/, or "
              "remove it", why, dest, QUARANTINE)
    return dest


def quarantined_paths(root_fd: int) -> list[str]:
    """The entries in ``_quarantine/`` (files, and the symlinks and FIFOs set aside there),
    as paths relative to the cache root, found without following a symlink.

    why: ``os.walk(<root>/_quarantine)`` followed the top: with ``_quarantine`` a symlink
    to ``/usr`` (planted while the hub ran, or in a stopped hub's tree), ``yurthub cache
    verify`` counted the files of ``/usr`` as set aside, and every ``/metrics`` scrape and
    status page walked that directory tree outside the cache root.
    """
    try:
        top, _ = files.open_dir(QUARANTINE, root_fd)
    except OSError:  # none, or not a directory (the next start sets it aside)
        return []
    out: list[str] = []
    stack = [(top, QUARANTINE)]
    while stack:
        fd, rel = stack.pop()
        try:
            for e in os.scandir(fd):
                if not e.is_dir(follow_symlinks=False):
                    out.append(f"{rel}/{e.name}")
                    continue
                try:
                    sub, _ = files.open_dir(e.name, fd)
                except OSError:
                    continue  # gone meanwhile
                stack.append((sub, f"{rel}/{e.name}"))
        except OSError:
            pass
        finally:
            os.close(fd)
    return sorted(out)


# -- the root's own entries ---------------------------------------------------------------------
# design: a damaged entry of the root (``_lock`` a directory, ``_quarantine`` or
# ``_nonresource`` a file) made open() fail and the hub exit 3 at every start.  It is set
# aside instead, when that is safe: the lock's directory before the lock is taken (by a
# rename that only a directory can make, so a racing start's fresh lock file is never
# moved), the others once the lock is held (no other process touches the root then).
# A symlink as ``_lock`` keeps the clear error; a FIFO or a hard link there still locks
# and is left unchanged (rootlock.open_lock).

SET_ASIDE = ".set-aside."


def set_aside_lock_dir(root_fd: int, lock: str) -> bool:
    """Before the lock is taken: move a directory standing where the lock file belongs to
    ``<lock>.set-aside.<n>`` at the root (``quarantine_root_leftovers`` files it later);
    True when one was moved.  Only a directory moves: the rename replaces an empty directory,
    which fails (EISDIR/ENOTDIR) for a lock file another start has just created."""
    try:
        st = os.stat(lock, dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    dest = f"{lock}{SET_ASIDE}{os.getpid()}.{time.time_ns()}"
    os.mkdir(dest, files.DIR_MODE, dir_fd=root_fd)
    try:
        os.rename(lock, dest, src_dir_fd=root_fd, dst_dir_fd=root_fd)
    except OSError:
        os.rmdir(dest, dir_fd=root_fd)  # gone, or a file now: the lock's open decides
        return False
    log.warning("%s was a directory, not the cache's lock file: set aside", lock)
    return True


def ensure_root_dirs(root_fd: int, names: list[str]) -> list[str]:
    """With the lock held: each of ``names`` (QUARANTINE first) that exists as anything but
    a directory is set aside into ``_quarantine/`` (and ``<lock>.set-aside.*`` directories
    with them), and one the service may not write is renamed ``_unreadable.<name>``;
    returns the paths moved to."""
    moved = []
    for name in names:
        try:
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            # why: one the service may not write (root's 0700) failed the start, when the
            # store opened it (_nonresource) or at the first file recovery set aside into it
            # (_quarantine).
            if not os.access(name, os.R_OK | os.W_OK | os.X_OK, dir_fd=root_fd,
                             effective_ids=True):
                moved.append(rename_beside(root_fd, name, f"{name} is a directory the "
                                           "service may not write"))
            continue
        if name == QUARANTINE:  # out of the way, then into the new directory
            tmp = f"{QUARANTINE}{SET_ASIDE}{os.getpid()}.{time.time_ns()}"
            os.rename(name, tmp, src_dir_fd=root_fd, dst_dir_fd=root_fd)
            fd, _ = files.open_dir(QUARANTINE, root_fd, create=True)
            try:
                os.rename(tmp, QUARANTINE, src_dir_fd=root_fd, dst_dir_fd=fd)
            finally:
                os.close(fd)
            path = f"{QUARANTINE}/{QUARANTINE}"
            log.warning("quarantined %s", path)
        else:
            path = move_to_quarantine(root_fd, root_fd, name, [name])
        log.warning("%s was not a directory: set aside as %s", name, path)
        moved.append(path)
    for name in sorted(os.listdir(root_fd)):
        if SET_ASIDE in name and not name.startswith((QUARANTINE, UNREADABLE)):
            moved.append(set_aside_dir(root_fd, root_fd, name, [name]))
    return moved
