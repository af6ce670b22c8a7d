"""The tee never blocks the client, and never lets a partial copy pass for a whole one."""

from __future__ import annotations

import os
import threading
import time

from yurthub.cache.tee import Budget, Outcome, Tee

MiB = 1 << 20


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
        tee.pump()


def test_whole_body_arrives_and_is_marked_whole():
    tee = Tee("t", Budget(64 * MiB), 64 * MiB)
    chunks = [bytes([i % 251]) * 70_000 for i in range(40)]  # far more than a pipe holds
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(drain(tee)))
    reader.start()
    for c in chunks:
        tee.write(c)
    tee.close(whole=True)
    reader.join(10)
    assert got == [b"".join(chunks)]
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
    assert budget.used == 0  # the backlog was freed
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
