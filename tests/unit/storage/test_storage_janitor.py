"""The janitor that frees what commits replaced is a BackgroundThread: it lives from open() to
close(), and a bug in it ends the process (systemd restarts the hub) instead of a thread that
died without a word while the trash piles up on disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from tests.unit.storage.storage_support import PODS, body, open_store
from yurthub.threads import EXIT_THREAD_CRASHED

ROOT = Path(__file__).resolve().parents[3]
JANITOR = "yurthub-cache-janitor"


def _janitors() -> int:
    return sum(1 for t in threading.enumerate() if t.name == JANITOR)


def test_one_janitor_from_open_to_close(tmp_path):
    before = _janitors()
    store = open_store(tmp_path / "c")
    assert _janitors() == before + 1
    for gen in range(3):
        with store.transaction(PODS) as txn:
            for i in range(200):
                txn.put("default", f"p{i}", body(f"p{i}", v=str(gen)), {})
            txn.commit()
        store.tidy()
    assert _janitors() == before + 1  # one long-lived thread, not one per batch
    store.close()
    assert _janitors() == before


CRASHING = textwrap.dedent("""
    import sys, threading
    from yurthub.storage import shared
    from tests.unit.storage.storage_support import PODS, body, open_store

    shared.SPARE_SECONDS = 0.0  # what the last commits replaced is trash at once
    store = open_store(sys.argv[1])
    for gen in range(2):
        with store.transaction(PODS) as txn:
            for i in range(200):
                txn.put("default", f"p{i}", body(f"p{i}", v=str(gen)), {})
            txn.commit()

    def broken(drop):
        raise RuntimeError("a bug in the janitor")

    store._remove_trash = broken
    store.tidy()
    threading.Event().wait(60)
    print("the hub went on without its janitor")
""")


def test_a_crashing_janitor_ends_the_process_loudly(tmp_path):
    r = subprocess.run([sys.executable, "-c", CRASHING, str(tmp_path / "c")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_THREAD_CRASHED, (r.returncode, r.stdout, r.stderr)
    assert "went on" not in r.stdout
    assert f"background thread {JANITOR} crashed" in r.stderr
    assert "RuntimeError: a bug in the janitor" in r.stderr
