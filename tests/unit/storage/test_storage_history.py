"""The bounded history: append, bound, compaction, completeness, reset, restarts, readers."""

from __future__ import annotations

import os

import pytest
from storage_support import NODES, PODS, open_store

from yurthub.storage import CollectionKey


def append(store, records, ck=PODS):
    with store.transaction(ck) as txn:
        txn.append_history(records)
        txn.commit()


def rvs(store, rv, ck=PODS):
    with store.history_after(ck, rv) as h:
        return [r["rv"] for r in h], h.complete


def test_records_round_trip_in_commit_order(tmp_path):
    store = open_store(tmp_path / "c")
    obj = '{"kind":"Pod","metadata":{"name":"a\\nb \\u2028"}}'
    append(store, [{"rv": 3, "type": "ADDED", "object": obj}, {"rv": 5, "type": "MODIFIED"}])
    append(store, [{"rv": 4, "type": "BOOKMARK"}])
    with store.history_after(PODS, 0) as h:
        assert h.complete and len(h) == 3 and h.rvs == [3, 5, 4]
        assert next(iter(h)) == {"rv": 3, "type": "ADDED", "object": obj}
    assert rvs(store, 3) == ([5, 4], True)
    assert rvs(store, 4) == ([5], True)
    assert rvs(store, 99) == ([], True)
    store.close()
    store = open_store(tmp_path / "c")
    assert rvs(store, 0) == ([3, 5, 4], True)
    store.close()


def test_unknown_collection_has_no_complete_history(tmp_path):
    store = open_store(tmp_path / "c")
    with store.history_after(CollectionKey("kubelet", "", "v1", "secrets", True), 0) as h:
        assert not h.complete and list(h) == []
    store.close()


def test_the_bound_drops_the_oldest_and_says_so(tmp_path):
    store = open_store(tmp_path / "c", history_limit=10)
    for rv in range(1, 101):
        append(store, [{"rv": rv}])
    records, complete = rvs(store, 95)
    assert records == [96, 97, 98, 99, 100] and complete
    assert rvs(store, 90) == (list(range(91, 101)), True)   # 90 was dropped, not needed
    assert rvs(store, 89) == (list(range(91, 101)), False)  # 90 would be needed
    size = os.path.getsize(tmp_path / "c" / "kubelet" / "pods.v1.core" / "_history")
    store.close()
    # The file is compacted: it holds about the bound, not all 100 records.
    assert size < 40 * 30
    store = open_store(tmp_path / "c", history_limit=10)
    assert rvs(store, 90) == (list(range(91, 101)), True)
    assert rvs(store, 89)[1] is False
    store.close()
    # A smaller bound after a restart drops more, and remembers it.
    store = open_store(tmp_path / "c", history_limit=3)
    assert rvs(store, 97) == ([98, 99, 100], True)
    assert rvs(store, 96)[1] is False
    store.close()


def test_one_big_append_past_the_bound(tmp_path):
    store = open_store(tmp_path / "c", history_limit=8)
    append(store, [{"rv": rv} for rv in range(1, 31)])
    assert rvs(store, 22) == (list(range(23, 31)), True)
    assert rvs(store, 21)[1] is False
    store.close()


def test_reset_history_marks_everything_before_as_dropped(tmp_path):
    store = open_store(tmp_path / "c")
    append(store, [{"rv": 1}, {"rv": 2}])
    with store.transaction(PODS) as txn:
        txn.append_history([{"rv": 3}])
        txn.reset_history(10)
        txn.append_history([{"rv": 11}])
        txn.commit()
    assert rvs(store, 10) == ([11], True)
    assert rvs(store, 5) == ([11], False)
    store.close()
    store = open_store(tmp_path / "c")
    assert rvs(store, 10) == ([11], True)
    assert rvs(store, 9)[1] is False
    store.close()


def test_a_slice_survives_a_concurrent_compaction(tmp_path):
    store = open_store(tmp_path / "c", history_limit=4)
    append(store, [{"rv": rv, "pad": "x" * rv} for rv in range(1, 5)])
    held = store.history_after(PODS, 0)
    for rv in range(5, 30):  # several rewrites of the file
        append(store, [{"rv": rv, "pad": "y"}])
    assert [r["pad"] for r in held] == ["x", "xx", "xxx", "xxxx"]
    held.close()
    assert rvs(store, 25) == ([26, 27, 28, 29], True)
    store.close()


def test_damaged_history_refuses_every_resume_until_new_records(tmp_path):
    store = open_store(tmp_path / "c")
    append(store, [{"rv": 1}, {"rv": 2}])
    store.close()
    path = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_history"
    data = path.read_bytes()
    path.write_bytes(data.replace(b'{"rv":2}', b'{"rv":7}'))
    store = open_store(tmp_path / "c")
    assert rvs(store, 0) == ([], False)
    append(store, [{"rv": 20}, {"rv": 21}])
    assert rvs(store, 20) == ([21], True)
    assert rvs(store, 19)[1] is False
    store.close()
    assert any("_history" in p for p in os.listdir(
        tmp_path / "c" / "_quarantine" / "kubelet" / "pods.v1.core"))


@pytest.mark.parametrize("ck", [PODS, NODES])
def test_history_with_objects_in_the_same_transaction(tmp_path, ck):
    store = open_store(tmp_path / "c")
    ns = "default" if ck.namespaced else ""
    with store.transaction(ck) as txn:
        txn.put(ns, "a", b'{"metadata": {"name": "a"}}', {"rv": 7})
        txn.append_history([{"rv": 7, "type": "ADDED"}])
        txn.set_state({"rv": 7})
        txn.commit()
    assert rvs(store, 0, ck) == ([7], True)
    assert store.state(ck) == {"rv": 7}
    store.close()


@pytest.mark.parametrize("damage", ["hard link at rest", "fifo at rest", "fifo while running"])
def test_a_history_that_is_no_file_of_ours_is_never_written_and_refuses_resumes(tmp_path,
                                                                                damage):
    """``_history`` is appended to in place.  A hard link there had the hub write into a
    file outside the cache; a FIFO put there while the hub ran hung the writer thread in
    its open for good; one set aside at a start was taken as no history at all, so a watch
    resumed from before its last event ended quietly with no events."""
    import threading

    from yurthub.errors import StorageError
    root = tmp_path / "c"
    store = open_store(root)
    append(store, [{"rv": 3, "type": "ADDED"}])
    h = root / "kubelet" / "pods.v1.core" / "_history"
    outside = tmp_path / "outside"
    if damage == "hard link at rest":
        store.close()
        outside.write_bytes(h.read_bytes())
        h.unlink()
        os.link(outside, h)
        store = open_store(root)
    elif damage == "fifo at rest":
        store.close()
        h.unlink()
        os.mkfifo(h)
        store = open_store(root)
    else:
        h.unlink()
        os.mkfifo(h)
        failed: list[Exception] = []

        def commit():
            try:
                append(store, [{"rv": 4, "type": "ADDED"}])
            except StorageError as e:
                failed.append(e)
        t = threading.Thread(target=commit, daemon=True)
        t.start()
        t.join(60)
        assert len(failed) == 1 and "rolled back" in str(failed[0])
    before = outside.read_bytes() if outside.exists() else b""
    append(store, [{"rv": 5, "type": "ADDED"}])
    assert rvs(store, 2) == ([5], False)  # rv 3's event is gone: a resume from 2 is refused
    assert h.is_file() and h.stat().st_nlink == 1
    assert (root / "_quarantine" / "kubelet" / "pods.v1.core" / "_history").exists()
    if outside.exists():
        assert outside.read_bytes() == before
    store.close()
