"""The tee never blocks the client, and never lets a partial copy pass for a whole one."""

from __future__ import annotations

import array
import errno
import fcntl
import os
import sys
import termios
import threading
import time

import pytest

from yurthub import linux
from yurthub.cache import tee as tee_mod
from yurthub.cache.tee import GATHER, Budget, Outcome, Tee

MiB = 1 << 20
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def drain(tee: Tee) -> bytes:
    """Read the pipe to its end the way the writer thread does (read, then pump)."""
    out = bytearray()
    while True:
        try:
            data = os.read(tee.read_fd, 1 << 16)
        except BlockingIOError:
            tee.pump()
            time.sleep(0.001)
            continue
        if not data:
            return bytes(out)
        out += data
        tee.pump(len(data))


def through(tee: Tee, chunks: list[bytes]) -> list[bytes]:
    """Write a whole body while a writer-like thread drains the pipe; what it read."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(drain(tee)))
    reader.start()
    for c in chunks:
        tee.write(c)
    tee.close(whole=True)
    reader.join(10)
    return got


def test_whole_body_arrives_and_is_marked_whole():
    tee = Tee("t", Budget(64 * MiB), 64 * MiB)
    chunks = [bytes([i % 251]) * 70_000 for i in range(40)]  # far more than a pipe holds
    assert through(tee, chunks) == [b"".join(chunks)]
    assert tee.outcome is Outcome.WHOLE
    tee.close_read()


def test_a_writer_that_never_reads_does_not_block_the_client_and_overflows():
    budget = Budget(2 * MiB)
    tee = Tee("t", budget, 2 * MiB)
    chunk = b"x" * 65536
    done = threading.Event()

    def client() -> None:
        for _ in range(200):  # 12.5 MiB: far past the pipe and the budget
            tee.write(chunk)
        tee.close(whole=True)
        done.set()

    threading.Thread(target=client, daemon=True).start()
    assert done.wait(10), "the client was held up by a cache writer that never read"
    assert tee.outcome is Outcome.OVERFLOW
    assert budget.used <= 2 * MiB  # what is left is lent to the pipe: still in memory
    tee.close_read()  # the writer lets the entry go: every byte is back
    assert budget.used == 0
    tee.close_read()


def test_broken_response_is_never_whole():
    tee = Tee("t", Budget(MiB * 8), MiB * 8)
    tee.write(b'{"kind":"PodList","items":[')
    tee.close(whole=False)
    assert tee.outcome is Outcome.BROKEN
    assert drain(tee) == b'{"kind":"PodList","items":['  # the bytes may arrive ...
    assert tee.outcome is Outcome.BROKEN                  # ... but never as a whole body
    tee.close_read()


def test_global_budget_is_shared_by_all_tees():
    budget = Budget(MiB)
    a, b = Tee("a", budget, MiB), Tee("b", budget, MiB)
    big = b"y" * (3 * MiB)  # more than the pipe: the rest would have to wait in the backlog
    a.write(big)
    assert a.outcome is Outcome.OVERFLOW
    b.write(b"small")
    b.close(whole=True)
    assert drain(b) == b"small"
    assert b.outcome is Outcome.WHOLE
    a.close_read()
    b.close_read()


def test_abandon_stops_the_feed_without_blocking():
    tee = Tee("t", Budget(MiB), MiB)
    tee.abandon()
    tee.write(b"ignored")
    tee.close(whole=True)
    assert tee.outcome is Outcome.BROKEN


def test_lent_chunks_stay_intact_until_the_writer_took_them():
    """Big chunks go into the pipe by reference (vmsplice): the pipe shows the chunk's own
    memory, so the tee must hold each chunk until the writer has read it, even after the
    request thread dropped it and new chunks of the same size took the freed memory."""
    assert tee_mod._vmsplice_ok  # Linux: the lending path is the one under test
    tee = Tee("t", Budget(64 * MiB), 64 * MiB)
    want = bytearray()
    for _ in range(12):  # 768 KiB, none of it read yet
        chunk = os.urandom(64 << 10)
        want += chunk
        tee.write(chunk)
        del chunk  # the request thread lets go; the next urandom may reuse the memory
    scribble = [bytes([i]) * (64 << 10) for i in range(32)]  # reuse freed memory
    tee.close(whole=True)
    assert drain(tee) == bytes(want)
    assert tee.outcome is Outcome.WHOLE
    del scribble
    tee.close_read()


@pytest.mark.parametrize("gather", [0, GATHER])
def test_lent_chunks_count_in_the_memory_limit_until_the_writer_took_them(gather):
    """A lent chunk is the process's memory until the writer read it out of the pipe: a
    hundred slow lists whose entries wait for the writer once held 1 MiB each beyond the
    limit (the worker at 335 MB with the limit at 48 MiB)."""
    assert tee_mod._vmsplice_ok
    budget = Budget(64 * MiB)
    tee = Tee("t", budget, 64 * MiB, gather=gather)
    for _ in range(8):  # 512 KiB in batches past GATHER: all of it lent to the pipe
        tee.write(os.urandom(64 << 10))
    tee.close(whole=True)
    assert budget.used == 512 << 10
    assert drain(tee) and budget.used == 0
    tee.close_read()
    assert budget.used == 0


def test_a_lent_chunk_is_let_go_once_read():
    """No chunk is kept longer than the pipe holds it: memory goes back at once."""
    tee = Tee("t", Budget(64 * MiB), 64 * MiB)
    chunk = os.urandom(300_000)
    baseline = sys.getrefcount(chunk)
    tee.write(chunk)
    assert sys.getrefcount(chunk) > baseline  # held while its pages are in the pipe
    got = b""
    while len(got) < len(chunk):  # read as the writer does: each read reported
        part = os.read(tee.read_fd, 1 << 20)
        got += part
        tee.pump(len(part))
    assert got == chunk
    assert sys.getrefcount(chunk) == baseline
    tee.close(whole=True)
    tee.close_read()


def test_a_chunk_larger_than_the_pipe_is_lent_in_parts():
    tee = Tee("t", Budget(64 * MiB), 64 * MiB)
    body = os.urandom(5 * MiB + 123)
    assert through(tee, [body]) == [body]
    assert tee.outcome is Outcome.WHOLE
    tee.close_read()


def test_a_list_tee_gathers_small_chunks_and_close_sends_the_rest():
    """TLS records arrive 16 KiB at a time: the writer is woken per batch, not per record."""
    tee = Tee("t", Budget(64 * MiB), 64 * MiB, gather=GATHER)
    per_batch = GATHER // (16 << 10)
    records = [os.urandom(16 << 10) for _ in range(per_batch + 24)]  # a batch and a part
    for r in records[:per_batch - 1]:
        tee.write(r)
    with pytest.raises(BlockingIOError):  # under one batch: nothing in the pipe yet
        os.read(tee.read_fd, 1 << 20)
    tee.write(records[per_batch - 1])
    first = os.read(tee.read_fd, 1 << 20)
    assert first == b"".join(records[:per_batch])  # one batch, in order
    tee.pump(len(first))
    for r in records[per_batch:]:
        tee.write(r)
    tee.close(whole=True)  # the last, short batch goes in at close
    assert drain(tee) == b"".join(records[per_batch:])
    assert tee.outcome is Outcome.WHOLE
    tee.close_read()


def test_a_big_list_goes_into_the_pipe_in_few_system_calls(monkeypatch):
    """A 48 MB list arrives in pieces of up to 256 KiB: each vmsplice is a system call on
    the request thread and a wake-up of the writer, which then splices and pumps (~90 us of
    CPU of the two threads each time).  8 MiB of such pieces, read as the writer reads:
    in batches of three pieces, each put into the pipe whole by one call."""
    assert tee_mod._vmsplice_ok
    calls = []
    real = linux.vmsplice

    def counted(fd, iov, batch):
        n = real(fd, iov, batch)
        calls.append((sum(len(c) - s for c, s in batch), n))
        return n

    monkeypatch.setattr(linux, "vmsplice", counted)
    tee = Tee("t", Budget(64 * MiB), 64 * MiB, gather=GATHER)
    pieces = [os.urandom(256 << 10) for _ in range(32)]
    got = bytearray()
    for p in pieces:
        tee.write(p)
        while True:  # the writer: what the pipe holds, then pump
            try:
                data = os.read(tee.read_fd, 1 << 20)
            except BlockingIOError:
                tee.pump()
                break
            got += data
            tee.pump(len(data))
    tee.close(whole=True)
    got += drain(tee)
    assert got == b"".join(pieces)
    assert len(calls) <= 11, calls
    assert all(n == size for size, n in calls), calls  # no batch left for the writer to pump
    tee.close_read()


def test_a_gathering_tee_still_overflows_within_its_budget():
    budget = Budget(2 * MiB)
    tee = Tee("t", budget, 2 * MiB, gather=GATHER)
    for _ in range(300):  # 4.7 MiB, never read: past the pipe and the budget
        tee.write(b"z" * (16 << 10))
    assert tee.outcome is Outcome.OVERFLOW
    assert budget.used <= 2 * MiB
    tee.close_read()
    assert budget.used == 0
    tee.close_read()


def test_without_vmsplice_chunks_are_copied(monkeypatch):
    """A sandbox that refuses vmsplice (seccomp, gVisor): the tee copies and works."""
    calls = []

    def refused(fd, iov, batch):
        calls.append(len(batch))
        raise OSError(errno.EPERM, "refused by a seccomp filter")

    monkeypatch.setattr(linux, "vmsplice", refused)
    monkeypatch.setattr(tee_mod, "_vmsplice_ok", True)
    tee = Tee("t", Budget(64 * MiB), 64 * MiB, gather=GATHER)
    body = [os.urandom(100_000) for _ in range(30)]
    assert through(tee, body) == [b"".join(body)]
    assert tee.outcome is Outcome.WHOLE
    assert calls == [-(-GATHER // 100_000)]  # tried once (the first batch), then copies only
    tee.close_read()
    later = Tee("t2", Budget(64 * MiB), 64 * MiB, gather=GATHER)
    later.write(body[0] * 3)
    later.close(whole=True)
    assert drain(later) == body[0] * 3
    assert len(calls) == 1  # later tees do not try again (and the warning is said once)
    later.close_read()


def test_past_the_memory_limit_the_largest_backlog_is_dropped_not_the_writer(caplog):
    """One limit for all tees: the tee holding the most goes, whichever tee is writing."""
    budget = Budget(2 * MiB)
    big, small, late = (Tee(n, budget, 64 * MiB, big=False) for n in ("big", "small", "late"))
    # Nobody reads the pipes (a writer far behind): past 64 KiB each, chunks wait in memory.
    for _ in range(24):
        big.write(b"b" * 65536)           # ~1.5 MiB waiting
    for _ in range(4):
        small.write(b"s" * 65536)         # ~0.2 MiB waiting
    with caplog.at_level("DEBUG", logger="yurthub.cache.tee"):
        for _ in range(10):
            late.write(b"l" * 65536)      # needs room: the largest backlog makes it
    assert big.outcome is Outcome.OVERFLOW
    assert small.outcome is Outcome.OPEN and late.outcome is Outcome.OPEN
    assert budget.used == small.queued + late.queued <= budget.limit
    assert budget.drops == 1
    for t in (big, small, late):
        t.close_read()


def test_drops_are_counted_each_but_logged_once_per_episode(caplog):
    budget = Budget(MiB)
    tees = [Tee(f"t{i}", budget, 64 * MiB, big=False) for i in range(6)]
    with caplog.at_level("WARNING", logger="yurthub.cache.tee"):
        for _ in range(40):
            for t in tees:
                t.write(b"z" * 32768)
    dropped = [t for t in tees if t.outcome is Outcome.OVERFLOW]
    assert len(dropped) >= 2
    assert budget.drops == len(dropped)
    warnings = [r for r in caplog.records if "dropping cache entry" in r.getMessage()]
    assert len(warnings) == 1
    assert budget.used <= budget.limit
    for t in tees:
        t.close_read()


def test_a_victim_busy_writing_is_passed_over_and_no_writer_waits():
    """The budget only tries a victim's lock: a tee held by its own request thread is
    skipped and the writing tee drops instead; nothing blocks."""
    budget = Budget(MiB)
    busy, writer = Tee("busy", budget, 64 * MiB, big=False), Tee("w", budget, 64 * MiB,
                                                                   big=False)
    for _ in range(14):
        busy.write(b"b" * 65536)
    held = busy._lock  # the request thread of ``busy`` is inside write() right now
    held.acquire()
    done = threading.Event()

    def client() -> None:
        for _ in range(6):
            writer.write(b"w" * 65536)
        done.set()

    threading.Thread(target=client, daemon=True).start()
    try:
        assert done.wait(10), "a tee waited for another tee's lock"
    finally:
        held.release()
    assert busy.outcome is Outcome.OPEN
    assert writer.outcome is Outcome.OVERFLOW
    busy.close_read()
    writer.close_read()


def _in_pipe(tee: Tee) -> int:
    n = array.array("i", [0])
    fcntl.ioctl(tee.read_fd, termios.FIONREAD, n)
    return n[0]


@pytest.mark.parametrize("lend", [True, False])
def test_bytes_copied_into_a_pipe_beyond_the_budget_stay_few(monkeypatch, lend):
    """A watch's events are copied into its pipe, where the Budget does not count them:
    kernel memory per open watch, with the writer behind.  They stay within a default pipe
    (64 KiB); the rest waits in the backlog, which the one limit bounds."""
    monkeypatch.setattr(tee_mod, "_vmsplice_ok", lend)
    budget = Budget(64 * MiB)
    watch = Tee("watch", budget, 64 * MiB)
    event = b'{"type":"MODIFIED","object":{}}' + b"x" * 1000 + b"\n"
    for _ in range(2000):  # ~2 MiB of events; the writer reads nothing
        watch.write(event)
    held = _in_pipe(watch)
    assert held + budget.used == 2000 * len(event)
    assert held <= 64 << 10, f"{held} bytes in the pipe beside the budget"
    watch.close(whole=True)
    assert drain(watch) == event * 2000
    watch.close_read()
    # A list's tee lends its batches (counted until taken): it alone gets the big pipe;
    # where vmsplice is refused it copies, and keeps the small one.
    lst = Tee("list", budget, 64 * MiB, gather=GATHER)
    assert fcntl.fcntl(lst.read_fd, F_GETPIPE_SZ) == (tee_mod.PIPE_SIZE if lend else 64 << 10)
    lst.abandon()
