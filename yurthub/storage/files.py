"""File-system primitives of the store: directory-fd relative, symlink-refusing, mode-exact.

Every path the store touches is resolved one segment at a time from an open directory
descriptor with ``O_NOFOLLOW``, so a symlink planted anywhere under the cache root is
refused rather than followed.  Also here: ``syncfs(2)`` and the checksummed framing of our
bookkeeping documents (journal, index).  Functions raise plain ``OSError``/``ValueError``;
the store translates them into StorageError at its boundary.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import time
import zlib
from collections.abc import Iterable
from typing import Any

from yurthub import linux
from yurthub.gil import pace

try:
    import msgspec
except ImportError:  # Debian 12 packages no msgspec: the stdlib encoder does the same
    msgspec = None  # type: ignore[assignment, unused-ignore]

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in the tree must not hang a reader; it is refused below.
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
READ_CHUNK = 1 << 20


def have_syncfs() -> bool:
    return linux.have_syncfs()


def syncfs(fd: int) -> None:
    """Flush every dirty page and inode of the file system holding ``fd`` (one call)."""
    linux.syncfs(fd)


def spread_subdirs(dir_fd: int) -> bool:
    """Ask the file system to place new subdirectories of ``dir_fd`` apart (ext2/3/4's
    "top of directory hierarchy" flag, ``chattr +T``); True when the flag is set.

    why: a commit stages its files in a new subdirectory.  ext4 without a journal skips
    inodes freed in the last minute or more when it allocates, scanning past each of them
    for every new file; placed next to the files the previous commit just freed, staging
    10,000 objects took 0.9-2 s instead of 0.12 s (measured on this project's VMs).  With the
    flag, each staging directory starts in a block group of its own.  Anything that cannot
    take the flag (another file system or architecture) is left as it is.
    """
    if not linux.have_inode_flags():
        return False
    try:
        flags = linux.get_inode_flags(dir_fd)
        if flags & linux.TOPDIR_FL:
            return True
        linux.set_inode_flags(dir_fd, flags | linux.TOPDIR_FL)
    except OSError as e:
        log.debug("no spreading of new directories here: %s", e)
        return False
    return True


def open_dir(name: str, dir_fd: int | None = None, *, create: bool = False) -> tuple[int, bool]:
    """Open directory ``name`` (relative to ``dir_fd``) without following a symlink.

    With ``create``, a missing directory is made with mode 0700 whatever the umask.
    Returns (fd, created).  A symlink raises OSError (ELOOP or ENOTDIR).
    """
    try:
        return os.open(name, O_DIR, dir_fd=dir_fd), False
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
        created = True
    except FileExistsError:
        created = False
    fd = os.open(name, O_DIR, dir_fd=dir_fd)
    if created:
        try:
            os.fchmod(fd, DIR_MODE)
        except OSError:
            os.close(fd)
            raise
    return fd, created


def write_new(dir_fd: int, name: str, chunks: Iterable[bytes], *,
              fsync: bool = False) -> os.stat_result:
    """Create ``name`` (which must not exist), mode 0600, holding ``chunks``; its fstat.

    On failure the partial file is removed before the error propagates.
    """
    fd = os.open(name, O_NEW, FILE_MODE, dir_fd=dir_fd)
    try:
        os.fchmod(fd, FILE_MODE)
        for chunk in chunks:
            write_all(fd, chunk)
        if fsync:
            os.fsync(fd)
        return os.fstat(fd)
    except BaseException:
        os.close(fd)
        fd = -1
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def rewrite_spare(dir_fd: int, name: str, body: bytes, *,
                  fsync: bool = False) -> os.stat_result | None:
    """Overwrite the existing file ``name`` with ``body`` in place (a spare inode: see
    storage.shared); its fstat, or None (and the name removed) unless it is a plain file
    with one link.  Like write_new, the file ends mode 0600."""
    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.unlink(name, dir_fd=dir_fd)
            return None
        if stat.S_IMODE(st.st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
        write_all(fd, body, 0)
        os.ftruncate(fd, len(body))
        if fsync:
            os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        if offset is not None:
            offset += n


def replace_file(dir_fd: int, name: str, data: bytes | list[bytes], *,
                 fsync: bool = True) -> None:
    """Atomically replace ``name`` with ``data`` (or its pieces, in order): temp file,
    (fsync,) rename, (fsync dir)."""
    tmp = f".{name}.tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    write_new(dir_fd, tmp, [data] if isinstance(data, bytes) else data, fsync=fsync)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    if fsync:
        os.fsync(dir_fd)


def read_file(dir_fd: int, name: str) -> bytes:
    """The whole content of regular file ``name``; OSError(ELOOP/EINVAL) for anything else."""
    return read_file_stat(dir_fd, name)[0]


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """What the index records of a file to trust it without reading it."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def read_file_stat(dir_fd: int, name: str) -> tuple[bytes, tuple[int, int, int]]:
    """``read_file`` and the (inode, size, mtime_ns) of the file that was read."""
    fd = os.open(name, O_READ, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        # Our files are immutable once renamed into place: read what fstat promised.
        parts = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, READ_CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts), stat_key(st)
    finally:
        os.close(fd)


def read_optional(dir_fd: int, name: str) -> bytes | None:
    try:
        return read_file(dir_fd, name)
    except FileNotFoundError:
        return None


def unlink_optional(dir_fd: int, name: str) -> bool:
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False


def remove_any(dir_fd: int, name: str) -> None:
    """Remove a file, symlink or whole directory tree, never following a symlink."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def remove_tree_gently(dir_fd: int, name: str, every: int = 32) -> None:
    """Remove a file or directory tree like ``remove_any``, letting other threads run.

    Used by the background janitor: after every ``every`` files it gives the GIL away, so
    removing 10,000 replaced files does not hold up request threads streaming to clients.
    """
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, O_DIR, dir_fd=dir_fd)
    try:
        for i, entry in enumerate(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False):
                remove_tree_gently(fd, entry.name, every)
            else:
                os.unlink(entry.name, dir_fd=fd)
            if i % every == every - 1:
                time.sleep(0)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def empty_files_gently(dir_fd: int, name: str, prefixes: tuple[str, ...],
                       every: int = 32) -> int:
    """Truncate to no bytes each plain, single-link file of directory ``name`` whose name
    starts with one of ``prefixes``, keeping the files (their inodes); the bytes freed.

    Used by the background janitor on spare inodes (storage.shared): after every ``every``
    files it gives the GIL away.  A name that is gone, or not such a file, is skipped.
    """
    freed = 0
    fd = os.open(name, O_DIR, dir_fd=dir_fd)
    try:
        for i, entry in enumerate(os.scandir(fd)):
            if not entry.name.startswith(prefixes):
                continue
            try:
                f = os.open(entry.name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                            | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue  # why: taken meanwhile, or not a plain file (ELOOP, ENXIO)
            try:
                st = os.fstat(f)
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size:
                    os.ftruncate(f, 0)
                    freed += st.st_size
            finally:
                os.close(f)
            if i % every == every - 1:
                time.sleep(0)
    finally:
        os.close(fd)
    return freed


def frame(magic: str, doc: Any, rows: str = "") -> bytes:
    """A bookkeeping document: ``<magic> <length> <crc32>\\n<json>``, torn writes detectable
    (``frame_pieces`` joined)."""
    return b"".join(frame_pieces(magic, doc, rows))


def frame_pieces(magic: str, doc: Any, rows: str = "") -> list[bytes]:
    """``frame``'s document in pieces, for writing as they are: no call holds the GIL over
    the whole of a big document.

    ``rows`` names a list in ``doc`` that is encoded ROWS_PER_CALL rows at a time, and the
    length and CRC are summed piece by piece: a 10,000-object index is 4 MB of JSON (60 ms
    in one json.dumps on a busy machine, while no request thread could run), and joining,
    checksumming and prefixing it as one buffer were three more holds of 2-4 ms each.
    msgspec encodes when importable.
    """
    items = doc.get(rows) if rows else None
    if not items:
        pieces = [_encode(doc)]
    else:
        head = {k: v for k, v in doc.items() if k != rows}
        opening = (_encode(head)[:-1] + b',"%s":[' % rows.encode() if head else
                   b'{"%s":[' % rows.encode())
        pieces = [opening]
        for i in range(0, len(items), ROWS_PER_CALL):
            pace()
            part = _encode(items[i:i + ROWS_PER_CALL])
            pieces.append((b"," if i else b"") + part[1:-1])
        pieces.append(b"]}")
    crc = length = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
        length += len(piece)
    return [b"%s %d %08x\n" % (magic.encode(), length, crc), *pieces]


ROWS_PER_CALL = 256
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _encode(doc: Any) -> bytes:
    if msgspec is not None:
        return msgspec.json.encode(doc)
    return _JSON.encode(doc).encode()


def unframe(magic: str, data: bytes) -> Any:
    """Inverse of frame; ValueError when the document is torn, damaged or of another kind."""
    return json.loads(unframe_bytes(magic, data))


# Non-resource documents (discovery, the filters' inputs) are framed like the bookkeeping:
# one flipped bit of the filters' inputs (a node of a pool) is still JSON and would change
# what offline answers are filtered to.  A damaged one is read as not cached: offline, what
# depends on it waits for the cloud.
DOC_MAGIC = "yurthub-doc"


def frame_head(magic: str, body: bytes) -> bytes:
    """The header that frames ``body`` as it is (no JSON encoding): write it, then the body."""
    return b"%s %d %08x\n" % (magic.encode(), len(body), zlib.crc32(body))


def unframe_bytes(magic: str, data: bytes) -> bytes:
    """The body of a framed document; ValueError when it is torn, damaged or of another
    kind."""
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != magic.encode():
        raise ValueError(f"not a {magic} document")
    try:
        length, crc = int(parts[1]), int(parts[2], 16)
    except ValueError:
        raise ValueError(f"bad {magic} header") from None
    if length != len(body) or crc != zlib.crc32(body):
        raise ValueError(f"{magic} document is torn or damaged")
    return body


def framed_or_legacy(magic: str, data: bytes) -> bytes:
    """``unframe_bytes`` for a file that earlier versions wrote without the frame: such a
    file (one that does not begin with ``magic``) is returned as it is, for the caller to
    parse; a framed one must check out."""
    if not data.startswith(magic.encode() + b" "):
        return data
    return unframe_bytes(magic, data)
