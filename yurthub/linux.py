"""The Linux system calls Python's os module lacks: ``syncfs``, ``vmsplice``, the ext2/3/4
inode flags (``FS_IOC_GETFLAGS``/``FS_IOC_SETFLAGS``) and glibc's malloc tuning
(``mallopt``, ``malloc_trim``).  libc is loaded once, here.  Also the one kernel table that is
better grown before threads start: the file-descriptor table (``reserve_fd_table``).

Each call raises ``OSError`` with the kernel's errno; where the C library lacks a call,
``have_*`` says so and the call raises ``OSError(ENOSYS)``.  Policy (what to do when a call is
refused) belongs to the callers.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import fcntl
import os
from typing import Any

SPLICE_F_NONBLOCK = 2
MAX_IOV = 64  # chunks per vmsplice call
TOPDIR_FL = 0x00020000  # ext2/3/4 "top of directory hierarchies" (chattr +T)


def _load_libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _function(name: str, argtypes: list[Any], restype: Any) -> Any:
    fn = getattr(_LIBC, name, None) if _LIBC is not None else None
    if fn is None:
        return None
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_SYNCFS = _function("syncfs", [ctypes.c_int], ctypes.c_int)
_MALLOPT = _function("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
_MALLOC_TRIM = _function("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
M_ARENA_MAX = -8  # glibc's mallopt parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# keep_freed_memory's defaults: above a body's pieces (up to 256 KiB, or one joined with the
# item it completes), and above what a few of them held in a pipe and freed at once leave free
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 16 << 20
_PRCTL = _function("prctl", [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                             ctypes.c_ulong], ctypes.c_int)
PR_SET_TIMERSLACK = 29
_VMSPLICE = _function("vmsplice", [ctypes.c_int, ctypes.POINTER(IOVec), ctypes.c_size_t,
                                   ctypes.c_uint], ctypes.c_ssize_t)


def _raise_errno() -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def have_syncfs() -> bool:
    return _SYNCFS is not None


def syncfs(fd: int) -> None:
    """Flush every dirty page and inode of the file system holding ``fd`` (one call)."""
    if _SYNCFS is None:
        raise OSError(errno.ENOSYS, "syncfs is not available")
    if _SYNCFS(fd) != 0:
        _raise_errno()


def limit_malloc_arenas(n: int) -> bool:
    """At most ``n`` glibc malloc arenas for all threads (the default is 8 per core: with
    hundreds of threads each arena keeps its own freed memory).  False where not glibc."""
    return _MALLOPT is not None and _MALLOPT(M_ARENA_MAX, n) == 1


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD,
                      trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Blocks smaller than ``mmap_threshold`` come from the malloc arenas, and up to
    ``trim_threshold`` bytes free at the top of an arena stay mapped for the next blocks
    (``malloc_trim`` still gives them back).  False where not glibc.

    glibc's defaults map every block of 128 KiB or more on its own and unmap it when
    freed, and give back more than twice that once it is free at the top of a heap (both
    raised only after such a block was freed): a body streaming in pieces of 256 KiB, each
    freed soon after the next is made (lent to a cache tee's pipe until the writer took
    it), had every page of every piece faulted in anew, ~11,000 page faults (~10-15 ms of
    the request thread) per 48 MB list."""
    return (_MALLOPT is not None and _MALLOPT(M_MMAP_THRESHOLD, mmap_threshold) == 1
            and _MALLOPT(M_TRIM_THRESHOLD, trim_threshold) == 1)


def set_timer_slack(ns: int) -> bool:
    """How late the calling thread's timed sleeps may end (the default is 50 us: a 50 us
    sleep takes ~130 us); False where prctl is not available or refused it."""
    return _PRCTL is not None and _PRCTL(PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0


def malloc_trim() -> bool:
    """Give the free memory of every malloc arena back to the kernel; False where not glibc
    or nothing was released."""
    return _MALLOC_TRIM is not None and _MALLOC_TRIM(0) == 1


def have_vmsplice() -> bool:
    return _VMSPLICE is not None


def iovecs() -> Any:
    """A reusable array of MAX_IOV iovecs for ``vmsplice``."""
    return (IOVec * MAX_IOV)()


def address(chunk: bytes) -> int:
    """Where a bytes object keeps its data (c_char_p points into it; nothing is copied)."""
    return ctypes.cast(ctypes.c_char_p(chunk), ctypes.c_void_p).value or 0


def vmsplice(fd: int, iov: Any, batch: list[tuple[bytes, int]]) -> int:
    """Put the pages of ``batch`` (chunks and the offset each starts at) into pipe ``fd`` by
    reference, without blocking; returns the bytes taken.  The caller must keep every chunk
    alive, unchanged, until the reader has taken those bytes out of the pipe.  EAGAIN is
    raised as BlockingIOError."""
    if _VMSPLICE is None:
        raise OSError(errno.ENOSYS, "vmsplice is not available")
    for i, (chunk, start) in enumerate(batch):
        iov[i].base = address(chunk) + start
        iov[i].len = len(chunk) - start
    n = int(_VMSPLICE(fd, iov, len(batch), SPLICE_F_NONBLOCK))
    if n < 0:
        _raise_errno()
    return n


# FS_IOC_GETFLAGS / FS_IOC_SETFLAGS are _IOR/_IOW('f', 1/2, long): their numbers carry
# sizeof(long), and the generic ioctl encoding is only that of the architectures listed.
_LONG = ctypes.sizeof(ctypes.c_long)
_GETFLAGS = (2 << 30) | (_LONG << 16) | (ord("f") << 8) | 1
_SETFLAGS = (1 << 30) | (_LONG << 16) | (ord("f") << 8) | 2
_GENERIC_IOCTL = {"x86_64", "i386", "i486", "i586", "i686", "aarch64", "aarch64_be",
                  "armv6l", "armv7l", "armv8l", "riscv64", "s390x", "loongarch64"}


def have_inode_flags() -> bool:
    return os.uname().machine in _GENERIC_IOCTL


def get_inode_flags(fd: int) -> int:
    """The inode flags of ``fd`` (``lsattr``); OSError where the file system has none."""
    if not have_inode_flags():
        raise OSError(errno.ENOTTY, "inode flags are not known on this architecture")
    flags = array.array("i", [0])
    fcntl.ioctl(fd, _GETFLAGS, flags, True)
    return int(flags[0])


def set_inode_flags(fd: int, value: int) -> None:
    """Set the inode flags of ``fd`` (``chattr``); OSError where the file system refuses."""
    if not have_inode_flags():
        raise OSError(errno.ENOTTY, "inode flags are not known on this architecture")
    fcntl.ioctl(fd, _SETFLAGS, array.array("i", [value]), True)


def reserve_fd_table(n: int) -> None:
    """Make this process's file-descriptor table hold ``n`` descriptors now.

    The kernel grows the table, doubling it, when a new descriptor does not fit; in a
    process with threads it then waits for an RCU grace period (10-20 ms seen here) and
    every thread that opens a descriptor meanwhile (accept, pipe, open) waits with it.  A
    table never shrinks: one descriptor taken at ``n - 1`` (the lowest free one from there,
    so none in use is touched) and closed again sizes it for good.  OSError (EINVAL) when
    ``n`` exceeds RLIMIT_NOFILE."""
    fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.close(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, n - 1))
    finally:
        os.close(fd)

