"""Directories the package prepares for the service, as root, without following a symlink that
someone other than root could have planted.

The package's postinst gives ``/var/lib/yurthub`` and the cache directory to the ``yurthub``
user.  Those are writable by that user, so by the next upgrade anything in them may be a
symlink (``cache -> /etc``): a ``chown`` or ``chmod`` by path would hand its target to the
service user.  ``prepare_dir`` walks the path one component at a time from ``/`` with
``O_NOFOLLOW``, follows a symlink only where only root could have made it (in a directory
owned by root and writable by no one else), opens the last component itself with
``O_NOFOLLOW`` and changes owner and mode through that descriptor: what it changes is the
directory it checked, whatever happens to the name meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat

from yurthub.errors import ConfigError

_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 40


def _trusted(dir_fd: int) -> bool:
    """Only root can have made an entry of this directory."""
    st = os.fstat(dir_fd)
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def prepare_dir(path: str, uid: int, gid: int, mode: int) -> bool:
    """Make ``path`` a directory owned by ``uid:gid`` with ``mode``; True if it was created.

    Missing parents are created as root, 0755.  Raises ConfigError, naming the path, when
    a component is a symlink that a user other than root could have made (the last one
    always counts as such), or is not a directory.
    """
    if not os.path.isabs(path):
        raise ConfigError(f"{path!r}: not an absolute path")
    todo = [c for c in os.path.normpath(path).split("/") if c]
    if not todo:
        raise ConfigError("/: refusing to prepare the root directory")
    fd = os.open("/", _PATH)
    hops = 0
    created = False
    try:
        while todo:
            name = todo.pop(0)
            last = not todo
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.mkdir(name, mode if last else 0o755, dir_fd=fd)
                created = last
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if last or not _trusted(fd) or hops > MAX_SYMLINKS:
                    raise ConfigError(f"{path}: {name!r} is a symlink that root did not "
                                      "necessarily make; not following it")
                target = os.readlink(name, dir_fd=fd)
                todo[:0] = [c for c in target.split("/") if c and c != "."]
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _PATH)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise ConfigError(f"{path}: {name!r} is not a directory")
            try:
                nfd = os.open(name, _DIR if last else _PATH, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ConfigError(f"{path}: {name!r} changed under us (now a symlink or "
                                      "not a directory); not following it") from None
                raise
            os.close(fd)
            fd = nfd
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        return created
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    finally:
        os.close(fd)
