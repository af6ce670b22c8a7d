"""I/O errors (ENOSPC, EIO) injected at the process edge: one failing call at every point of a
commit, and of staging, must leave the previous state intact and the store usable."""

from __future__ import annotations

import errno
import json
import os

import pytest
from storage_support import PODS, leftovers, open_store

from yurthub.errors import StorageError
from yurthub.storage import files
from yurthub.storage import shared as shared_mod

# Calls a commit makes; each one is failed once, at each of its calls in turn.
OS_CALLS = ["write", "pwrite", "open", "replace", "rename", "link", "unlink", "fsync",
            "ftruncate"]


def obj(name: str, tx: int) -> bytes:
    return json.dumps({"kind": "Pod", "metadata": {"name": name}, "tx": tx}).encode()


class Model:
    """What the store must show: objects -> tx, the state, the last history record."""

    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.tx = 0
        self.last_rv = 0

    def stage(self, store, tx: int, changes: int, records: int):
        txn = store.transaction(PODS)
        puts = [f"o{i}" for i in range(tx, tx + changes)]
        deletes = [n for n in sorted(self.objects) if n not in puts][:2]
        for n in puts:
            txn.put("default", n, obj(n, tx), {"tx": tx})
        for n in deletes:
            txn.delete("default", n)
        txn.set_state({"tx": tx})
        txn.append_history([{"rv": tx * 100 + r} for r in range(records)])

        def done() -> None:
            for n in puts:
                self.objects[n] = tx
            for n in deletes:
                self.objects.pop(n, None)
            self.tx, self.last_rv = tx, tx * 100 + records - 1
        return txn, done

    def check(self, store) -> None:
        entries = store.entries(PODS)
        assert {n for _, n in entries} == set(self.objects)
        for n, tx in self.objects.items():
            assert json.loads(store.read(PODS, "default", n))["tx"] == tx
            assert entries[("default", n)].meta["tx"] == tx
        assert store.state(PODS) == ({"tx": self.tx} if self.tx else {})
        with store.history_after(PODS, self.last_rv - 1) as h:
            assert h.rvs == [self.last_rv]


def fail_nth(m: pytest.MonkeyPatch, name: str, nth: int, err: int) -> list[int]:
    """Make the nth call of os.<name> (or files.syncfs) raise OSError(err)."""
    owner = files if name == "syncfs" else os
    real = getattr(owner, name)
    calls = [0]

    def fake(*a, **kw):
        calls[0] += 1
        if calls[0] == nth:
            raise OSError(err, os.strerror(err))
        return real(*a, **kw)
    m.setattr(owner, name, fake)
    return calls


def run_case(root, name: str, nth: int, changes: int, records: int, limit: int) -> bool:
    """One store, one failing call in a commit; True if the injection fired."""
    model = Model()
    store = open_store(root, history_limit=limit)
    txn, done = model.stage(store, 1, 20, 1)
    txn.commit()
    done()
    txn, done = model.stage(store, 2, changes, records)
    with pytest.MonkeyPatch.context() as m:
        calls = fail_nth(m, name, nth, errno.ENOSPC if nth % 2 else errno.EIO)
        try:
            txn.commit()
            failed = False
        except StorageError:
            failed = True
        txn.abort()
    fired = calls[0] >= nth
    if not failed:
        done()  # the failure hit cleanup after the commit: the transaction stands
    model.check(store)
    assert store.stats().write_errors == int(failed)
    assert not failed or fired
    txn, done = model.stage(store, 3, 3, 1)  # the store is still usable
    txn.commit()
    done()
    model.check(store)
    store.close()
    store = open_store(root, history_limit=limit)
    model.check(store)
    assert leftovers(root) == []
    store.close()
    return fired


SMALL = (4, 1, 1024)   # fsync per file; the history is appended (pwrite, ftruncate)
BIG = (30, 20, 2)      # one syncfs; the history file is rewritten (compaction)
CASES = [pytest.param(name, SMALL, id=f"{name}-small") for name in OS_CALLS] + [
    pytest.param(name, BIG, id=f"{name}-big")
    for name in [*OS_CALLS, "syncfs"] if name not in ("pwrite", "ftruncate")]


@pytest.mark.parametrize("name,scenario", CASES)
def test_one_failing_call_anywhere_in_commit(tmp_path, name, scenario):
    changes, records, limit = scenario
    nth = 1
    while run_case(tmp_path / f"n{nth}", name, nth, changes, records, limit):
        nth += 1
        assert nth < 200
    assert nth > 1, f"{name} is not called by this commit"


@pytest.mark.parametrize("name", ["write", "open", "fchmod", "fstat"])
def test_failing_staging_kills_the_transaction_not_the_store(tmp_path, name):
    model = Model()
    store = open_store(tmp_path / "c")
    txn, done = model.stage(store, 1, 5, 1)
    txn.commit()
    done()
    txn = store.transaction(PODS)
    with pytest.MonkeyPatch.context() as m:
        fail_nth(m, name, 1, errno.ENOSPC)
        with pytest.raises(StorageError, match="cannot stage"):
            txn.put("default", "new", obj("new", 2), {"tx": 2})
    with pytest.raises(StorageError):
        txn.commit()
    txn.abort()
    model.check(store)
    assert store.stats().write_errors == 1
    txn, done = model.stage(store, 3, 3, 1)
    txn.commit()
    done()
    model.check(store)
    store.close()
    assert leftovers(tmp_path / "c") == []


def test_failing_nonresource_write_keeps_the_old_document(tmp_path):
    store = open_store(tmp_path / "c")
    store.write_nonresource("/version", b"old")
    with pytest.MonkeyPatch.context() as m:
        fail_nth(m, "write", 1, errno.ENOSPC)
        with pytest.raises(StorageError):
            store.write_nonresource("/version", b"new")
    assert store.read_nonresource("/version") == b"old"
    assert store.stats().write_errors == 1
    store.close()
    assert leftovers(tmp_path / "c") == []


def test_failed_rollback_is_rolled_forward_before_the_next_transaction(tmp_path):
    model = Model()
    store = open_store(tmp_path / "c")
    txn, done = model.stage(store, 1, 5, 1)
    txn.commit()
    done()
    txn, done = model.stage(store, 2, 5, 1)
    # The first replace (the apply) fails, and the rollback's first replace fails too.
    with pytest.MonkeyPatch.context() as m:
        real, calls = os.replace, [0]

        def replace(*a, **kw):
            calls[0] += 1
            if calls[0] in (3, 4):
                raise OSError(errno.EIO, "I/O error")
            return real(*a, **kw)
        m.setattr(os, "replace", replace)
        with pytest.raises(StorageError):
            txn.commit()
    # The journal says committed: the next transaction first rolls it forward.
    txn3 = store.transaction(PODS)
    done()
    model.check(store)
    txn3.abort()
    store.close()
    store = open_store(tmp_path / "c")
    model.check(store)
    store.close()


@pytest.mark.parametrize("name", ["rename", "open", "fstat", "pwrite", "ftruncate", "scandir"])
def test_a_failure_while_reusing_a_spare_leaves_the_store_whole(tmp_path, name):
    """A big commit rewrites the files the one before replaced (spare inodes): an error at
    any call of that path either falls back to a new file or fails the transaction, and
    the previous state, the store and the next commits stay whole."""
    model = Model()
    store = open_store(tmp_path / "c")
    for tx in (1, 2):   # tx 2 replaces or deletes 100 objects: 100 spares
        txn, done = model.stage(store, tx, 100, 1)
        txn.commit()
        done()
    txn = store.transaction(PODS)
    puts = [f"o{i}" for i in range(300, 300 + shared_mod.REUSE_AFTER + 20)]
    for n in puts[:shared_mod.REUSE_AFTER]:
        txn.put("default", n, obj(n, 3), {"tx": 3})
    failed = False
    with pytest.MonkeyPatch.context() as m:
        calls = fail_nth(m, name, 1, errno.EIO)
        try:
            for n in puts[shared_mod.REUSE_AFTER:]:
                txn.put("default", n, obj(n, 3), {"tx": 3})
        except StorageError as e:
            assert "cannot stage" in str(e)
            failed = True
    assert calls[0] >= 1, f"{name} is not called when reusing a spare"
    if failed:
        txn.abort()
        assert store.stats().write_errors == 1
    else:
        txn.set_state({"tx": 3})
        txn.append_history([{"rv": 301}])
        txn.commit()
        for n in puts:
            model.objects[n] = 3
        model.tx, model.last_rv = 3, 301
    model.check(store)
    txn, done = model.stage(store, 4, 100, 1)   # the store is still usable
    txn.commit()
    done()
    model.check(store)
    store.close()
    store = open_store(tmp_path / "c")
    model.check(store)
    store.close()
    assert leftovers(tmp_path / "c") == []
