"""linux.py: the system calls os lacks, in one module that loads libc once; each call either
does what the kernel does or raises OSError with the kernel's errno."""

from __future__ import annotations

import ast
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yurthub import linux

PACKAGE = Path(__file__).resolve().parents[2] / "yurthub"


def test_only_linux_py_reaches_libc():
    """libc is loaded once: no other module imports ctypes (or loads a C library itself)."""
    users = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "ctypes" for n in names):
                users.add(str(path.relative_to(PACKAGE)))
    assert users == {"linux.py"}


def test_syncfs_flushes_the_file_system_of_a_descriptor(tmp_path):
    assert linux.have_syncfs()
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        linux.syncfs(fd)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as e:
        linux.syncfs(fd)  # closed: the kernel's EBADF, not a ctypes return code
    assert e.value.errno == errno.EBADF


def test_vmsplice_puts_the_chunks_into_the_pipe_and_says_when_it_is_full():
    assert linux.have_vmsplice()
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        iov = linux.iovecs()
        chunks = [(b"hello, ", 0), (b"xxworld\n", 2)]  # the second from its offset 2
        assert linux.vmsplice(w, iov, chunks) == len(b"hello, world\n")
        assert os.read(r, 100) == b"hello, world\n"
        big = b"z" * (1 << 20)
        taken = 0
        with pytest.raises(BlockingIOError):  # EAGAIN, never a blocked request thread
            while True:
                taken += linux.vmsplice(w, iov, [(big, taken % len(big))])
        assert taken > 0
        os.set_blocking(r, False)
        got = 0
        while got < taken:
            got += len(os.read(r, 1 << 16))
        assert got == taken
    finally:
        os.close(r)
        os.close(w)


def _chattr(path: Path, flag: str) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_inode_flags_agree_with_chattr(tmp_path):
    """Where the file system has inode flags (ext4), ours read what chattr set and chattr's
    lsattr reads what we set; where it has none (tmpfs), both say so."""
    d = tmp_path / "d"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if not _chattr(d, "+T"):
            with pytest.raises(OSError):
                linux.get_inode_flags(fd)
            return
        flags = linux.get_inode_flags(fd)
        assert flags & linux.TOPDIR_FL
        linux.set_inode_flags(fd, flags & ~linux.TOPDIR_FL)
        shown = subprocess.run(["lsattr", "-d", str(d)], capture_output=True, text=True)
        assert "T" not in shown.stdout.split()[0]
        assert not linux.get_inode_flags(fd) & linux.TOPDIR_FL
    finally:
        os.close(fd)


def test_malloc_arenas_are_bounded_and_freed_memory_goes_back_to_the_kernel():
    """In a child (the bound is process-wide): freed big blocks leave the RSS on a trim."""
    code = (
        "import os\n"
        "from yurthub import linux\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGESIZE')\n"
        "assert linux.limit_malloc_arenas(2)\n"
        "blocks = [bytearray(100_000) for _ in range(800)]\n"
        "del blocks[::2]\n"  # holes in the heap: free() alone keeps them
        "held = rss()\n"
        "assert linux.malloc_trim()\n"
        "print(held - rss())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, check=True).stdout
    assert int(out) > 20_000_000  # about 40 MB were free inside the heap


def test_pieces_of_a_streamed_body_reuse_freed_memory_instead_of_faulting_it_in():
    """In a child (malloc's thresholds are process-wide): 100 MiB in pieces of 256 KiB,
    freed a pipe's worth (8) at a time as a cache tee frees what the writer took.  With
    glibc's defaults each freed batch is given back and every page of the next faulted in
    again (~24,000 page faults here); after ``keep_freed_memory`` (as the hub's worker
    calls it) none is."""
    code = (
        "import resource\n"
        "from yurthub import linux\n"
        "assert linux.limit_malloc_arenas(2) and linux.keep_freed_memory()\n"
        "faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "piece = memoryview(bytes(256 << 10))\n"
        "held = [bytes(piece) for _ in range(8)]\n"
        "held.clear()\n"
        "before = faults()\n"
        "for i in range(400):\n"
        "    held.append(bytes(piece))\n"
        "    if len(held) == 8:\n"
        "        held.clear()\n"
        "print(faults() - before)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, check=True).stdout
    assert int(out) < (100 << 20) // os.sysconf("SC_PAGESIZE") // 100


def test_the_descriptor_table_is_grown_once_and_no_descriptor_in_use_is_touched():
    """In a child (the table is process-wide and never shrinks): FDSize holds n after the
    call; a descriptor already open at n - 1 stays what it was; more than RLIMIT_NOFILE is
    refused with the kernel's error."""
    code = (
        "import os, resource\n"
        "from yurthub import linux\n"
        "from tests.fixtures.procfs import fd_table_size\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (6000, 6000))\n"
        "before = fd_table_size()\n"
        "r, w = os.pipe()\n"
        "os.dup2(w, 4999)\n"          # in use at n - 1: must survive
        "os.close(w)\n"
        "linux.reserve_fd_table(5000)\n"
        "os.write(4999, b'still mine')\n"
        "assert os.read(r, 64) == b'still mine'\n"
        "os.close(4999)\n"
        "linux.reserve_fd_table(5500)\n"
        "after = fd_table_size()\n"
        "try:\n"
        "    linux.reserve_fd_table(7000)\n"
        "    refused = 0\n"
        "except OSError as e:\n"
        "    refused = e.errno\n"
        "open_fds = sorted(int(n) for n in os.listdir('/proc/self/fd'))\n"
        "print(before, after, refused, open_fds[-1])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, check=True).stdout.split()
    before, after, refused, highest = (int(x) for x in out)
    assert before < 5000 <= 5500 <= after
    assert refused == errno.EINVAL
    assert highest < 1000  # the descriptors taken to size the table were closed
