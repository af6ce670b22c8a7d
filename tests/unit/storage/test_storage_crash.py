"""Crash safety: a writer process killed at random moments, or dying between renames.

After every crash, open() must show each collection wholly at one transaction (all objects,
the state and the last history record carry the same id), with no staging leftovers, and
an index that matches the files.  kill -9 does not lose the page cache, so these tests
prove atomicity and recovery, not the fsync ordering (which the design paragraph of
storage.txn argues).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import crash_worker
import pytest
from crash_worker import COLLECTIONS, expected, namespace
from storage_support import leftovers, open_store, reopen, spares

from yurthub.storage import RecoveryReport
from yurthub.storage import shared as shared_mod

HERE = Path(__file__).parent
REPO = HERE.parents[2]


def spawn(root: Path, durability: str, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    return subprocess.Popen([sys.executable, str(HERE / "crash_worker.py"), str(root),
                             durability, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def objects_on_disk(root: Path, ck) -> set[tuple[str, str]]:
    coll = root / ck.component / ck.dirname
    out = set()
    for dirpath, dirnames, filenames in os.walk(coll):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # spare dirs
        rel = os.path.relpath(dirpath, coll)
        for f in filenames:
            if not f.startswith(("_", ".")):
                out.add(("" if rel == "." else rel, f))
    return out


def check_consistent(root: Path) -> tuple[RecoveryReport, dict[str, int]]:
    store, report = reopen(root)
    seen = {}
    try:
        for ck, n in COLLECTIONS:
            state = store.state(ck)
            if not state:  # killed before the first commit of this collection
                assert store.entries(ck) == {}
                continue
            tx = state["tx"]
            seen[str(ck)] = tx
            keys = {(namespace(ck, i), f"o{i}") for i in expected(n, tx)}
            entries = store.entries(ck)
            assert set(entries) == keys, f"{ck} at tx {tx}"
            assert objects_on_disk(root, ck) == keys
            for key in keys:
                raw = store.read(ck, *key)
                assert raw is not None and json.loads(raw)["tx"] == tx, (ck, key)
                assert entries[key].size == len(raw) and entries[key].meta["tx"] == tx
            with store.history_after(ck, tx - 1) as h:
                assert h.rvs == [tx]
        store.flush()  # the janitor has removed the spares beyond those kept
        assert leftovers(root) == []
        assert len(spares(root)) <= shared_mod.KEEP_TRASH
    finally:
        store.close()
    return report, seen


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments(tmp_path, seed):
    rng = random.Random(seed)
    root = tmp_path / "cache"
    rolled = swept = 0
    last: dict[str, int] = {}
    for round_ in range(5):
        durability = ("syncfs", "fsync")[round_ % 2]
        proc = spawn(root, durability)
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line == b"ready\n", proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(rng.uniform(0.02, 0.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
        report, seen = check_consistent(root)
        rolled += report.rolled_forward
        swept += report.swept + report.discarded
        for name, tx in seen.items():  # committed work is never lost
            assert tx >= last.get(name, 0)
        last = seen
    assert last, "the worker never committed anything"
    print(f"seed {seed}: rolled forward {rolled}, swept {swept}, reached {last}")


def first_round(root: Path) -> None:
    """Commit transaction ids 1..3 (one per collection) in-process."""
    store = open_store(root)
    for tx, (ck, n) in enumerate(COLLECTIONS, start=1):
        with store.transaction(ck) as txn:
            for i in expected(n, tx):
                txn.put(namespace(ck, i), f"o{i}", crash_worker.obj(ck, i, tx), {"tx": tx})
            txn.set_state({"tx": tx})
            txn.append_history([{"rv": tx}])
            txn.commit()
    store.close()


@pytest.mark.parametrize("durability", ["syncfs", "fsync"])
@pytest.mark.parametrize("renames", [0, 1, 57, 119])
def test_crash_between_journal_and_renames_rolls_forward(tmp_path, renames, durability):
    root = tmp_path / "cache"
    first_round(root)
    proc = spawn(root, durability, str(renames))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err.decode()
    coll = root / "kubelet" / "pods.v1.core"
    assert (coll / "_journal").exists()
    report, seen = check_consistent(root)
    assert report.rolled_forward == 1
    assert seen["kubelet/pods.v1.core"] == 4  # the interrupted transaction, whole


def test_torn_journal_is_discarded_and_the_old_state_stays(tmp_path):
    root = tmp_path / "cache"
    first_round(root)
    proc = spawn(root, "syncfs", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err.decode()
    journal = root / "kubelet" / "pods.v1.core" / "_journal"
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 10])  # as if the crash came during its write
    report, seen = check_consistent(root)
    assert (report.rolled_forward, report.discarded) == (0, 1)
    assert seen["kubelet/pods.v1.core"] == 1
