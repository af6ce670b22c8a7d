"""Startup: quarantine of torn files, reindexing after outside changes, sweeping debris."""

from __future__ import annotations

import json
import os

import pytest
from storage_support import NODES, PODS, body, leftovers, open_store, reopen

from yurthub.cache.reader import CacheReader
from yurthub.errors import ServiceUnavailable, StorageError
from yurthub.storage import CollectionKey, files, journal


def fill(store, n=5, ck=PODS, tx=1):
    ns = "default" if ck.namespaced else ""
    with store.transaction(ck) as txn:
        for i in range(n):
            txn.put(ns, f"pod-{i}", body(f"pod-{i}", ns, tx=tx), {"tx": tx, "labels": {}})
        txn.commit()


def test_torn_object_file_is_quarantined_never_served(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    store.close()
    path = tmp_path / "c" / "kubelet" / "pods.v1.core" / "default" / "pod-1"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (tmp_path / "c" / "kubelet" / "pods.v1.core" / "default" / "pod-2").write_bytes(b"")
    (tmp_path / "c" / "kubelet" / "pods.v1.core" / "default" / "pod-3").write_bytes(b"[1]")
    store, report = reopen(tmp_path / "c")
    assert report.quarantined == 3 and store.stats().quarantined == 3
    assert sorted(report.quarantined_paths) == [
        f"_quarantine/kubelet/pods.v1.core/default/pod-{i}" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        assert store.read(PODS, "default", f"pod-{i}") is None
    assert set(store.entries(PODS)) == {("default", "pod-0"), ("default", "pod-4")}
    qdir = tmp_path / "c" / "_quarantine" / "kubelet" / "pods.v1.core" / "default"
    assert (qdir / "pod-1").read_bytes() == data[: len(data) // 2]
    store.close()
    # Quarantining the same name again keeps both copies.
    path.write_bytes(b"{")
    store, report = reopen(tmp_path / "c")
    assert report.quarantined_paths == ["_quarantine/kubelet/pods.v1.core/default/pod-1.1"]
    store.close()


def test_open_reports_what_it_did(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    store.close()
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    (coll / "default" / "pod-0").write_bytes(b"not json")
    (coll / "default" / "pod-1").write_bytes(body("pod-1", "default", tx=3))
    (coll / ".stage.123.abc.0").mkdir()
    (coll / ".stage.123.abc.0" / "p0").write_bytes(b"{}")
    (coll / "default" / ".pod-3.tmp").write_bytes(b"{}")
    store, report = reopen(tmp_path / "c")
    assert (report.quarantined, report.reindexed, report.swept) == (1, 2, 2)
    assert (report.collections, report.objects) == (1, 4)
    assert (report.rolled_forward, report.discarded) == (0, 0)
    assert report.seconds >= 0
    assert report.summary().startswith(
        "1 collection, 4 objects; swept 2 leftovers, re-read 2 object files, quarantined 1 "
        "damaged file (in _quarantine/) (")
    store.close()


def test_reindex_after_files_changed_behind_the_stores_back(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    store.close()
    ns_dir = tmp_path / "c" / "kubelet" / "pods.v1.core" / "default"
    changed = json.dumps({"kind": "Pod", "apiVersion": "v1", "tx": 9,
                          "metadata": {"name": "pod-1", "labels": {"app": "edited"}}})
    (ns_dir / "pod-1").write_text(changed)
    (ns_dir / "pod-2").unlink()
    os.mkdir(ns_dir.parent / "other")
    (ns_dir.parent / "other" / "new-pod").write_bytes(body("new-pod", "other", tx=5))
    store = open_store(tmp_path / "c")
    entries = store.entries(PODS)
    assert set(entries) == {("default", "pod-0"), ("default", "pod-1"), ("default", "pod-3"),
                            ("default", "pod-4"), ("other", "new-pod")}
    assert entries[("default", "pod-1")].meta == {"tx": 9, "labels": {"app": "edited"}}
    assert entries[("default", "pod-1")].size == len(changed)
    assert entries[("other", "new-pod")].meta == {"tx": 5, "labels": {}}
    # Untouched files kept the meta the writer gave them (not what the loader would say).
    assert entries[("default", "pod-0")].meta == {"tx": 1, "labels": {}}
    store.close()
    # The rebuilt index was saved: the next start reads nothing.
    store, report = reopen(tmp_path / "c")
    assert report.reindexed == 0
    assert store.entries(PODS)[("default", "pod-1")].meta["labels"] == {"app": "edited"}
    store.close()


def test_lost_or_damaged_index_is_rebuilt(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store, n=20)
    store.close()
    idx = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_index"
    for damage in (lambda: idx.unlink(), lambda: idx.write_bytes(idx.read_bytes()[:-9])):
        damage()
        store = open_store(tmp_path / "c")
        assert len(store.entries(PODS)) == 20
        assert {e.meta["tx"] for e in store.entries(PODS).values()} == {1}
        store.close()


def test_index_is_written_lazily_and_a_stale_one_is_not_trusted(tmp_path):
    store = open_store(tmp_path / "c", index_interval=3600)
    fill(store, n=3)
    store.flush()
    idx = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_index"
    stale = idx.read_bytes()
    for i in range(10):  # single-object commits do not rewrite the index
        with store.transaction(PODS) as txn:
            txn.put("default", f"pod-{i}", body(f"pod-{i}", tx=2), {"tx": 2, "labels": {}})
            txn.commit()
    assert idx.read_bytes() == stale
    store.close()
    # As after a crash: the index on disk is older than the files.
    idx.write_bytes(stale)
    store, report = reopen(tmp_path / "c")
    assert report.reindexed == 10
    assert len(store.entries(PODS)) == 10
    assert {e.meta["tx"] for e in store.entries(PODS).values()} == {2}
    store.close()


@pytest.mark.parametrize("after", [[], [{"rv": 9, "type": "ADDED"}]])
def test_a_file_a_committed_watch_event_deleted_is_not_lost_after_a_crash(tmp_path, after):
    """The index is saved lazily: after a crash it may still list an object a watch event
    deleted.  The event's history record (committed with the delete) explains the missing
    file: the object is gone, not lost, and kubelet's views stay whole.  A file missing with
    no such record (or re-created after it) is still lost."""
    store = open_store(tmp_path / "c", index_interval=3600)
    fill(store, n=3)
    store.flush()
    idx = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_index"
    stale = idx.read_bytes()  # lists pod-0, pod-1, pod-2
    with store.transaction(PODS) as txn:
        txn.delete("default", "pod-1")
        txn.append_history([{"rv": 7, "type": "DELETED", "ns": "default", "name": "pod-1"},
                            *({"ns": "default", "name": "pod-1", **r} for r in after)])
        txn.commit()
    store.close()
    idx.write_bytes(stale)  # as after a crash: the saved index predates the delete
    store, report = reopen(tmp_path / "c")
    assert set(store.entries(PODS)) == {("default", "pod-0"), ("default", "pod-2")}
    assert [(o.namespace, o.name) for o in report.lost] == ([] if not after else
                                                            [("default", "pod-1")])
    store.close()


def test_debris_is_swept_and_misplaced_entries_quarantined(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    fill(store, ck=NODES)
    store.close()
    c = tmp_path / "c"
    coll = c / "kubelet" / "pods.v1.core"
    (coll / ".stage.1.2.3").mkdir()
    (coll / ".stage.1.2.3" / "p0").write_bytes(b"{}")
    (coll / "._index.tmp").write_bytes(b"x")
    (coll / "_journal").write_bytes(b"yurthub-journal 999 00000000\n{")  # torn
    (coll / "default" / ".tmp").write_bytes(b"x")
    (coll / "stray-file").write_bytes(b"{}")           # a file where namespaces live
    (coll / "default" / "Bad_Name").write_bytes(b"{}")  # not a Kubernetes name
    (coll / "default" / "subdir").mkdir()              # a dir where objects live
    (c / "kubelet" / "nodes.v1.core" / "node-dir").mkdir()
    (c / ".leftover").write_bytes(b"x")
    (c / "_nonresource" / ".%2Fversion.tmp").write_bytes(b"x")
    (c / "NotAComponent").mkdir()
    store = open_store(c)
    assert leftovers(c) == []
    assert set(store.entries(PODS)) == {("default", f"pod-{i}") for i in range(5)}
    assert len(store.entries(NODES)) == 5
    q = c / "_quarantine" / "kubelet"
    assert (q / "pods.v1.core" / "stray-file").exists()
    assert (q / "pods.v1.core" / "default" / "Bad_Name").exists()
    assert (q / "pods.v1.core" / "default" / "subdir").is_dir()
    assert (q / "nodes.v1.core" / "node-dir").is_dir()
    assert (c / "NotAComponent").is_dir()  # not ours to judge: left alone
    store.close()


def test_collection_without_its_key_file(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    fill(store, ck=NODES)
    ck = CollectionKey("kubelet", "", "v1", "secrets", True)
    with store.transaction(ck) as txn:
        txn.commit()
    store.close()
    kubelet = tmp_path / "c" / "kubelet"
    (kubelet / "pods.v1.core" / "_collection").unlink()
    (kubelet / "nodes.v1.core" / "_collection").write_text("garbage")
    (kubelet / "secrets.v1.core" / "_collection").unlink()  # empty: a crash during create
    store = open_store(tmp_path / "c")
    assert sorted(map(str, store.collections())) == ["kubelet/nodes.v1.core",
                                                     "kubelet/pods.v1.core"]
    assert len(store.entries(PODS)) == 5 and len(store.entries(NODES)) == 5
    assert not (kubelet / "secrets.v1.core").exists()
    store.close()
    store = open_store(tmp_path / "c")
    assert len(store.entries(PODS)) == 5
    store.close()


def test_a_collection_that_cannot_be_recovered_is_quarantined_not_fatal(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    fill(store, ck=NODES)
    store.close()
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    # A committed journal whose namespace directory turned into a file: it cannot apply.
    (coll / ".stage.9").mkdir()
    (coll / ".stage.9" / "p0").write_bytes(body("a", "ns1"))
    (coll / "ns1").write_bytes(b"in the way")
    (coll / "_journal").write_bytes(files.frame(journal.MAGIC, {
        "v": 1, "stage": ".stage.9", "puts": [["ns1", "a", "p0"]], "deletes": [],
        "state": None, "history": None}))
    store, report = reopen(tmp_path / "c")
    assert report.quarantined_paths == ["_quarantine/kubelet/pods.v1.core.broken"]
    assert store.collections() == [NODES] and len(store.entries(NODES)) == 5
    # Its objects are unknown, not absent: a get of one must not say 404.
    assert "could not be recovered" in store.set_aside(PODS) and not store.set_aside(NODES)
    with pytest.raises(ServiceUnavailable, match="may well exist"):
        CacheReader(store).get(PODS, "default", "pod-1")
    fill(store, n=2)  # the collection starts afresh
    assert len(store.entries(PODS)) == 2 and store.set_aside(PODS) == ""
    store.close()


@pytest.mark.parametrize("entry", ["_index", "_state", "_journal", "_history", "_collection"])
def test_a_bookkeeping_entry_that_is_not_a_file_is_set_aside_alone(tmp_path, entry):
    """A directory where _index, _state or _journal belongs cost the whole collection (a get
    of its objects 404); only the entry goes now, as if it were absent."""
    store = open_store(tmp_path / "c")
    fill(store)
    with store.transaction(PODS) as txn:
        txn.set_state({"views": ["kept unless _state is the damaged one"]})
        txn.commit()
    store.close()
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    if (coll / entry).exists():
        (coll / entry).unlink()
    (coll / entry).mkdir()
    (coll / entry / "inside").write_text("x")
    store, report = reopen(tmp_path / "c")
    assert report.quarantined_paths == [f"_quarantine/kubelet/pods.v1.core/{entry}"]
    assert store.collections() == [PODS] and store.set_aside(PODS) == ""
    assert set(store.entries(PODS)) == {("default", f"pod-{i}") for i in range(5)}
    assert store.read(PODS, "default", "pod-1") == body("pod-1", "default", tx=1)
    assert (store.state(PODS) == {}) == (entry == "_state")
    store.close()


def _flip(data: bytes, old: bytes, new: bytes) -> bytes:
    """One bit flipped: ``old`` and ``new`` differ in one bit, and the result is still JSON."""
    assert bin(int.from_bytes(old, "big") ^ int.from_bytes(new, "big")).count("1") == 1
    assert data.count(old) == 1
    return data.replace(old, new)


@pytest.mark.parametrize("old, new", [
    (b'"rv":118', b'"rv":119'),                          # the resourceVersion lists claim
    (b"spec.nodeName=node-0000", b"spec.nodeName=node-0001"),  # the view's selector
])
def test_one_flipped_bit_in_a_state_sets_it_aside_never_alters_it(tmp_path, old, new):
    store = open_store(tmp_path / "c")
    fill(store)
    with store.transaction(PODS) as txn:
        txn.set_state({"views": [{"fields": "spec.nodeName=node-0000", "rv": 118}]})
        txn.commit()
    store.close()
    state = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_state"
    state.write_bytes(_flip(state.read_bytes(), old, new))
    store, report = reopen(tmp_path / "c")
    assert report.quarantined_paths == ["_quarantine/kubelet/pods.v1.core/_state"]
    assert store.state(PODS) == {}  # no view vouches for a list: refused, not altered
    assert len(store.entries(PODS)) == 5  # the objects are kept
    store.close()


def test_a_state_an_earlier_version_wrote_is_read_and_framed_at_the_next_commit(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store)
    store.close()
    state = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_state"
    state.write_bytes(b'{"views":[{"rv":7}]}')  # as written before states were framed
    store, report = reopen(tmp_path / "c")
    assert report.quarantined == 0 and store.state(PODS) == {"views": [{"rv": 7}]}
    with store.transaction(PODS) as txn:
        txn.set_state({"views": [{"rv": 8}]})
        txn.commit()
    store.close()
    assert state.read_bytes().startswith(b"yurthub-state ")
    store, _ = reopen(tmp_path / "c")
    assert store.state(PODS) == {"views": [{"rv": 8}]}
    store.close()


def test_crafted_journal_is_rolled_forward(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store, n=3)
    store.close()
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    # As a crash after the commit point leaves it: pod-0 already renamed, pod-1 not yet.
    (coll / ".stage.7").mkdir()
    (coll / ".stage.7" / "p1").write_bytes(body("pod-1", "default", tx=2))
    (coll / ".stage.7" / "s").write_bytes(b'{"tx": 2}')
    (coll / "default" / "pod-0").write_bytes(body("pod-0", "default", tx=2))
    (coll / "_journal").write_bytes(files.frame(journal.MAGIC, {
        "v": 1, "stage": ".stage.7", "puts": [["default", "pod-0", "p0"],
                                              ["default", "pod-1", "p1"]],
        "deletes": [["default", "pod-2"]], "state": "s", "history": None}))
    store, report = reopen(tmp_path / "c")
    assert (report.rolled_forward, report.discarded) == (1, 0)
    assert set(store.entries(PODS)) == {("default", "pod-0"), ("default", "pod-1")}
    assert {e.meta["tx"] for e in store.entries(PODS).values()} == {2}
    assert store.state(PODS) == {"tx": 2}
    assert leftovers(tmp_path / "c") == []
    store.close()


def test_journal_naming_unsafe_paths_is_refused(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store, n=1)
    store.close()
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    outside = tmp_path / "outside"
    outside.mkdir()
    for doc in ({"stage": "../../../outside", "puts": []},
                {"stage": ".stage.1", "puts": [["..", "x", "p0"]]},
                {"stage": ".stage.1", "puts": [["default", "x", "../../p0"]]}):
        (coll / "_journal").write_bytes(files.frame(journal.MAGIC, {
            "v": 1, "deletes": [], "state": None, "history": None, **doc}))
        store, report = reopen(tmp_path / "c")
        assert report.discarded == 1 and report.rolled_forward == 0
        store.close()
    assert list(outside.iterdir()) == []


def test_a_file_the_meta_loader_fails_on_is_quarantined_alone(tmp_path):
    store = open_store(tmp_path / "c")
    fill(store, n=3)
    store.close()
    (tmp_path / "c" / "kubelet" / "pods.v1.core" / "default" / "pod-1").write_bytes(
        b'{"metadata": 5}')  # the loader's .get() raises AttributeError
    store, report = reopen(tmp_path / "c")
    assert report.quarantined_paths == ["_quarantine/kubelet/pods.v1.core/default/pod-1"]
    assert set(store.entries(PODS)) == {("default", "pod-0"), ("default", "pod-2")}
    store.close()


@pytest.mark.parametrize("damage", ["lock-dir", "quarantine-file", "nonresource-file"])
def test_a_damaged_entry_of_the_root_is_set_aside_and_the_store_opens(tmp_path, damage):
    """These made open() fail (the hub exited 3 at every start)."""
    c = tmp_path / "c"
    store = open_store(c)
    fill(store)
    store.write_nonresource("/version", b'{"major": "1"}')
    store.close()
    if damage == "lock-dir":
        (c / "_lock").unlink()
        (c / "_lock").mkdir()
        (c / "_lock" / "inside").write_text("x")
    elif damage == "quarantine-file":
        (c / "_quarantine").write_text("x")
        (c / "kubelet" / "pods.v1.core" / "default" / "pod-1").write_bytes(b"{")  # to move
    else:
        import shutil
        shutil.rmtree(c / "_nonresource")
        (c / "_nonresource").write_text("x")
    store, report = reopen(c)
    try:
        assert len(store.entries(PODS)) == (4 if damage == "quarantine-file" else 5)
        assert (c / "_lock").is_file() and (c / "_quarantine").is_dir()
        assert (c / "_nonresource").is_dir()
        q = c / "_quarantine"
        if damage == "lock-dir":
            [moved] = list(q.iterdir())
            assert moved.name.startswith("_lock.set-aside.") and (moved / "inside").exists()
        elif damage == "quarantine-file":
            assert (q / "_quarantine").read_text() == "x"
            assert (q / "kubelet" / "pods.v1.core" / "default" / "pod-1").exists()
        else:
            assert (q / "_nonresource").read_text() == "x"
            assert store.read_nonresource("/version") is None
        assert store.stats().quarantined >= 1
    finally:
        store.close()
    store, report = reopen(c)  # and the next start is quiet
    assert report.quarantined == 0
    store.close()


@pytest.mark.parametrize("what", ["collection", "component"])
def test_a_directory_replaced_by_a_symlink_is_set_aside_and_its_gets_are_503(tmp_path, what):
    """A collection's (or a whole component's) directory moved away and symlinked back:
    never followed; set aside, its lists refused and its gets 503, not 404."""
    c = tmp_path / "c"
    store = open_store(c)
    fill(store)
    store.close()
    d = c / "kubelet" / "pods.v1.core" if what == "collection" else c / "kubelet"
    d.rename(tmp_path / "moved")
    d.symlink_to(tmp_path / "moved")
    store, report = reopen(c)
    try:
        where = "kubelet/pods.v1.core" if what == "collection" else "kubelet"
        assert report.quarantined_paths == [f"_quarantine/{where}"]
        assert (c / "_quarantine" / where).is_symlink() and not d.exists()
        assert store.collections() == [] and "a symlink" in store.set_aside(PODS)
        with pytest.raises(ServiceUnavailable, match="may well exist"):
            CacheReader(store).get(PODS, "default", "pod-1")
        fill(store, n=1)  # the cloud's next list makes it anew
        assert store.set_aside(PODS) == "" and len(store.entries(PODS)) == 1
    finally:
        store.close()


def test_a_directory_that_is_no_cache_is_refused_and_left_as_it_was(tmp_path):
    # disk_cache_path = /home by a slip: recovery would sweep every dotfile it finds and
    # set aside whatever looks like a collection.  Nothing there is touched.
    home = tmp_path / "home"
    (home / "alice" / ".ssh").mkdir(parents=True)
    (home / "alice" / ".ssh" / "id_rsa").write_text("key")
    (home / "alice" / ".bashrc").write_text("rc")
    (home / "etc" / "ld.conf.d").mkdir(parents=True)
    (home / "etc" / "ld.conf.d" / "libc.conf").write_text("/usr/lib")
    (home / ".hidden").write_text("x")
    before = sorted((str(p), p.is_file() and p.read_text()) for p in home.rglob("*"))
    with pytest.raises(StorageError, match=r"is not a yurthub cache .* is not empty"):
        open_store(home)
    assert sorted((str(p), p.is_file() and p.read_text()) for p in home.rglob("*")) == before
    # A new file system's lost+found is no one's data; a tree reopens (it has its _lock).
    (tmp_path / "mnt" / "lost+found").mkdir(parents=True)
    store = open_store(tmp_path / "mnt")
    fill(store)
    store.close()
    store, _ = reopen(tmp_path / "mnt")
    assert len(store.entries(PODS)) == 5
    store.close()


@pytest.mark.parametrize("kind", ["hard link", "fifo"])
def test_a_lock_that_is_no_file_of_the_tree_is_left_as_it_is_and_still_locks(tmp_path, kind):
    """A hard link in the lock's place had the file outside the root made 0600 by the start;
    a FIFO there made the preflight of the next start (root_in_use) and ``yurthub cache
    verify`` wait for a writer forever."""
    import stat
    import threading

    from yurthub.storage import root_in_use
    c = tmp_path / "c"
    store = open_store(c)
    fill(store)
    store.close()
    (c / "_lock").unlink()
    outside = tmp_path / "outside"
    if kind == "hard link":
        outside.write_text("someone's file")
        outside.chmod(0o644)
        os.link(outside, c / "_lock")
    else:
        os.mkfifo(c / "_lock")

    def in_use() -> list[bool]:
        answer: list[bool] = []
        t = threading.Thread(target=lambda: answer.append(root_in_use(str(c))), daemon=True)
        t.start()
        t.join(60)
        return answer

    assert in_use() == [False]
    store, _ = reopen(c)
    try:
        assert len(store.entries(PODS)) == 5
        assert in_use() == [True]  # it still keeps a second hub out
    finally:
        store.close()
    if kind == "hard link":
        assert stat.S_IMODE(outside.stat().st_mode) == 0o644
        assert outside.read_text() == "someone's file"
