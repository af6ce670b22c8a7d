"""The root of a cache tree: its lock, and whether a directory may be opened as one.

A tree holds ``_lock`` from its first open on: the running hub keeps an exclusive flock on
it (storage.disk), so tools beside it (``yurthub cache``, the start-up preflight) can tell a
tree in use (``root_in_use``).  A directory without one is a cache only while it holds
nothing else (``not_a_cache``): opening a tree sweeps and sets aside what it does not
recognise, which must never happen to a directory given by mistake.  Once the lock is held,
the root is made private (``private_root``).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat

from yurthub.storage import files
from yurthub.storage.keys import BOOKKEEPING_PREFIX

log = logging.getLogger(__name__)

LOCK_FILE = "_lock"


def not_a_cache(root: str, root_fd: int | None = None) -> str:
    """Why the directory ``root`` must not be opened as a cache ("" when it may).

    Opening a tree sweeps names that begin with "." and sets aside what it does not
    recognise: on a directory that is no cache (``/home``, ``/``, ``/var/lib`` by a slip of
    the setting) that would remove everyone's dotfiles.  A tree has its ``_lock`` from its
    first open on; a directory without one is used only when it holds nothing but names of
    the hub's own (``_...``, which the start never removes) and a new file system's
    ``lost+found``.  A directory that does not exist yet may be.
    """
    try:
        names = sorted(os.listdir(root_fd if root_fd is not None else root))
    except OSError:  # none yet, or unreadable: opening it says why
        return ""
    if LOCK_FILE in names:
        return ""
    foreign = [n for n in names if n != "lost+found" and not n.startswith(BOOKKEEPING_PREFIX)]
    if not foreign:
        return ""
    shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    return (f"{root} is not a yurthub cache (it has no {LOCK_FILE}) and is not empty "
            f"({shown}): opening it would remove or set aside what it holds; give the cache "
            "an empty or new directory")


# O_NONBLOCK: a FIFO in the lock's place must not hang the opener.  why: root_in_use's
# read-only open of one waited for a writer forever, hanging the next ``yurthub serve``
# preflight and ``yurthub cache verify`` on a stopped hub's tree.
_O_LOCK = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_lock(root: str, root_fd: int) -> int:
    """The root's lock file, opened (created when missing) for ``flock``; raises OSError.

    why: the start made whatever stood there 0600: a hard link to a file outside the root
    changed that file's mode.  Only the tree's own file (a regular file with one link) is
    changed; anything else still locks (flock takes any inode) and is named in a WARNING.
    """
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | _O_LOCK, files.FILE_MODE, dir_fd=root_fd)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            os.fchmod(fd, files.FILE_MODE)
        else:
            what = ("not a regular file" if not stat.S_ISREG(st.st_mode)
                    else f"a file with {st.st_nlink} links (a hard link to another file)")
            log.warning("%s is %s: used as the cache's lock and left as it is; replace it "
                        "with an empty file of the service's while no hub runs",
                        os.path.join(root, LOCK_FILE), what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def root_in_use(root: str) -> bool:
    """True when another process holds the cache at ``root`` (for a start-up preflight)."""
    try:
        fd = os.open(os.path.join(root, LOCK_FILE), os.O_RDONLY | _O_LOCK)
    except OSError:
        return False  # no lock file yet: nobody has opened this cache
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False

def private_root(root: str, root_fd: int) -> None:
    """With the lock held: the cache root is 0700, as every directory under it.

    why: a root made by hand before the first start (``mkdir -p``, umask 022), or a tree
    restored from a backup with loose modes, was served as it was: cached Secrets and
    ConfigMaps readable by every user of the node while only ``yurthub cache verify`` said
    so.  The root closes the whole tree; one the service does not own is left to the
    operator, with a warning.
    """
    st = os.fstat(root_fd)
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if st.st_uid == os.geteuid():
        os.fchmod(root_fd, files.DIR_MODE)
        log.warning("the cache root %s was mode %04o, open to other users: set to 0700",
                    root, mode)
    else:
        log.warning("the cache root %s is mode %04o and owned by uid %d, not this service: "
                    "other users may read what is cached; make it 0700 and the service's",
                    root, mode, st.st_uid)
