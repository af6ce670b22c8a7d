"""DiskStore round trips: objects, index, state, non-resource documents, modes, layout."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from storage_support import (
    LEASES,
    NODES,
    PODS,
    body,
    leftovers,
    open_store,
    reopen,
    tree,
)

from yurthub.errors import StorageError
from yurthub.storage import CollectionKey, DiskStore, Entry


def test_put_read_delete_round_trip(tmp_path):
    store = open_store(tmp_path / "c")
    assert store.read(PODS, "default", "pod-1") is None
    assert store.entries(PODS) == {}
    assert store.state(PODS) == {}
    with store.transaction(PODS) as txn:
        txn.put("default", "pod-1", body("pod-1", "default"), {"labels": {"app": "a"}})
        txn.put("kube-system", "pod-2", body("pod-2", "kube-system"), {"labels": {}})
        txn.set_state({"rv": 10, "views": {"": {"synced": True}}})
        txn.commit()
    assert store.read(PODS, "default", "pod-1") == body("pod-1", "default")
    assert dict(store.entries(PODS)) == {
        ("default", "pod-1"): Entry({"labels": {"app": "a"}}, len(body("pod-1", "default"))),
        ("kube-system", "pod-2"): Entry({"labels": {}}, len(body("pod-2", "kube-system"))),
    }
    assert store.state(PODS) == {"rv": 10, "views": {"": {"synced": True}}}
    # The layout operators rely on: the object's bytes, exactly, at the YurtHub path.
    path = tmp_path / "c" / "kubelet" / "pods.v1.core" / "default" / "pod-1"
    assert path.read_bytes() == body("pod-1", "default")
    with store.transaction(PODS) as txn:
        txn.delete("default", "pod-1")
        txn.delete("default", "never-existed")
        txn.commit()
    assert store.read(PODS, "default", "pod-1") is None
    assert list(store.entries(PODS)) == [("kube-system", "pod-2")]
    assert store.state(PODS)["rv"] == 10
    store.close()
    store = open_store(tmp_path / "c")
    assert list(store.entries(PODS)) == [("kube-system", "pod-2")]
    assert store.read(PODS, "kube-system", "pod-2") == body("pod-2", "kube-system")
    assert store.state(PODS)["rv"] == 10
    assert store.collections() == [PODS]
    assert leftovers(tmp_path / "c") == []
    store.close()


def test_cluster_scoped_and_grouped_collections(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(NODES) as txn:
        txn.put("", "node-1", body("node-1"), {})
        txn.commit()
    with store.transaction(LEASES) as txn:
        txn.put("kube-node-lease", "node-1", body("node-1", "kube-node-lease"), {})
        txn.commit()
    root = tmp_path / "c" / "kubelet"
    assert (root / "nodes.v1.core" / "node-1").read_bytes() == body("node-1")
    assert (root / "leases.v1.coordination.k8s.io" / "kube-node-lease" / "node-1").exists()
    store.close()
    store = open_store(tmp_path / "c")
    assert sorted(store.collections(), key=str) == sorted([NODES, LEASES], key=str)
    assert store.read(NODES, "", "node-1") == body("node-1")
    # The same resource seen with the other scope is another (unknown) collection.
    other = CollectionKey("kubelet", "", "v1", "nodes", True)
    assert store.entries(other) == {}
    with pytest.raises(StorageError):
        store.transaction(other)
    store.close()


def test_modes_are_exact_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        os.umask(0o000)
        store = open_store(tmp_path / "c")
        with store.transaction(PODS) as txn:
            txn.put("default", "pod-1", body("pod-1"), {})
            txn.set_state({"a": 1})
            txn.append_history([{"rv": 1}])
            txn.commit()
        store.write_nonresource("/version", b'{"major": "1"}')
        store.close()
        os.umask(0o277)  # would make files 0400 and directories 0500
        store = open_store(tmp_path / "c")
        with store.transaction(NODES) as txn:
            txn.put("", "node-1", body("node-1"), {})
            txn.commit()
        store.write_nonresource("/api", b"{}")
        store.close()
    finally:
        os.umask(old)
    modes = tree(tmp_path / "c")
    assert modes, "nothing was written"
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o700
    for path, mode in modes.items():
        if path.startswith("_quarantine"):
            continue
        assert stat.S_IMODE(mode) == (0o700 if stat.S_ISDIR(mode) else 0o600), path


def test_replace_a_collection_of_1000_with_some_deleted(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        for i in range(1000):
            txn.put(f"ns-{i % 7}", f"pod-{i}", body(f"pod-{i}", tx=1), {"tx": 1})
        txn.set_state({"tx": 1})
        txn.commit()
    with store.transaction(PODS) as txn:
        for i in range(1000):
            if i % 3 == 0:
                txn.delete(f"ns-{i % 7}", f"pod-{i}")
            else:
                txn.put(f"ns-{i % 7}", f"pod-{i}", body(f"pod-{i}", tx=2), {"tx": 2})
        txn.set_state({"tx": 2})
        txn.commit()
    expect = {(f"ns-{i % 7}", f"pod-{i}") for i in range(1000) if i % 3}
    assert set(store.entries(PODS)) == expect
    assert {e.meta["tx"] for e in store.entries(PODS).values()} == {2}
    assert store.read(PODS, "ns-0", "pod-0") is None
    assert store.read(PODS, "ns-1", "pod-1") == body("pod-1", tx=2)
    assert store.stats().objects == len(expect)
    store.flush()
    assert leftovers(tmp_path / "c") == []
    store.close()
    store = open_store(tmp_path / "c")
    assert set(store.entries(PODS)) == expect
    assert store.state(PODS) == {"tx": 2}
    store.close()


def test_empty_collection_state_persists(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        txn.set_state({"views": {"ns=default": {"rv": 7}}})
        txn.commit()
    store.close()
    store = open_store(tmp_path / "c")
    assert store.collections() == [PODS]
    assert store.entries(PODS) == {}
    assert store.state(PODS) == {"views": {"ns=default": {"rv": 7}}}
    store.close()


def test_entries_is_an_immutable_snapshot(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        txn.put("default", "a", body("a"), {"n": 1})
        txn.commit()
    snap = store.entries(PODS)
    with pytest.raises(TypeError):
        snap[("default", "b")] = Entry({}, 0)  # type: ignore[index]
    with store.transaction(PODS) as txn:
        txn.put("default", "b", body("b"), {"n": 2})
        txn.delete("default", "a")
        # Uncommitted changes are invisible.
        assert set(store.entries(PODS)) == {("default", "a")}
        txn.commit()
    assert set(snap) == {("default", "a")}
    assert set(store.entries(PODS)) == {("default", "b")}
    store.close()


def test_abort_and_unfinished_transactions_leave_nothing(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        txn.put("default", "a", body("a"), {})
        txn.commit()
    with store.transaction(PODS) as txn:
        txn.put("default", "b", body("b"), {})
        txn.delete("default", "a")
        txn.set_state({"x": 1})
        txn.append_history([{"rv": 5}])
    # Left without commit: aborted.
    txn2 = store.transaction(PODS)
    txn2.put("default", "c", body("c"), {})
    txn2.abort()
    txn2.abort()
    with pytest.raises(StorageError):
        txn2.put("default", "d", body("d"), {})
    with pytest.raises(StorageError):
        txn2.commit()
    assert set(store.entries(PODS)) == {("default", "a")}
    assert store.state(PODS) == {}
    assert store.read(PODS, "default", "b") is None
    assert leftovers(tmp_path / "c") == []
    store.close()


def test_puts_and_deletes_of_one_key_in_one_transaction_last_wins(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        txn.put("default", "a", body("a", v=1), {"v": 1})
        txn.put("default", "a", body("a", v=2), {"v": 2})
        txn.put("default", "b", body("b"), {})
        txn.delete("default", "b")
        txn.delete("default", "c")
        txn.put("default", "c", body("c"), {"v": 3})
        txn.commit()
    assert store.read(PODS, "default", "a") == body("a", v=2)
    assert store.entries(PODS)[("default", "a")].meta == {"v": 2}
    assert store.read(PODS, "default", "b") is None
    assert store.read(PODS, "default", "c") == body("c")
    assert leftovers(tmp_path / "c") == []
    store.close()


def test_two_open_transactions_on_one_collection(tmp_path):
    store = open_store(tmp_path / "c")
    list_txn = store.transaction(PODS)
    list_txn.put("default", "a", body("a", v="list"), {})
    with store.transaction(PODS) as watch_txn:
        watch_txn.put("default", "b", body("b", v="watch"), {})
        watch_txn.commit()
    list_txn.put("default", "c", body("c", v="list"), {})
    list_txn.commit()
    assert set(store.entries(PODS)) == {("default", "a"), ("default", "b"), ("default", "c")}
    store.close()


def test_bad_values_are_refused_before_anything_is_written(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        for meta in ({"x": object()}, {"x": [1, {"y": float("nan")}]}, {1: "k"},
                     {"x": {"y": {2, 3}}}, {"x": float("inf")}):
            with pytest.raises(TypeError):
                txn.put("default", "a", body("a"), meta)  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            txn.put("default", "a", "not bytes", {})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            txn.set_state({"x": {1, 2}})  # type: ignore[dict-item]
        with pytest.raises(ValueError):
            txn.append_history([{"no": "rv"}])
        with pytest.raises(ValueError):
            txn.append_history([{"rv": "12"}])
        with pytest.raises(ValueError):
            txn.append_history([{"rv": 2**64}])
        with pytest.raises(ValueError):
            txn.reset_history(True)
        txn.commit()
    assert store.entries(PODS) == {}
    meta = {"rv": 3, "labels": {"a": "b"}, "f": [1.5, None, True]}
    with store.transaction(PODS) as txn:
        txn.put("default", "ok", body("ok"), meta)
        txn.commit()
    assert store.entries(PODS)[("default", "ok")].meta == meta
    store.close()


def test_nonresource_documents(tmp_path):
    store = open_store(tmp_path / "c")
    assert store.read_nonresource("/version") is None
    store.write_nonresource("/version", b'{"gitVersion": "v1.30.0"}')
    store.write_nonresource("/apis/discovery.k8s.io/v1", b'{"kind": "APIResourceList"}')
    store.write_nonresource("/version", b'{"gitVersion": "v1.31.0"}')
    store.close()
    store = open_store(tmp_path / "c")
    assert store.read_nonresource("/version") == b'{"gitVersion": "v1.31.0"}'
    assert store.read_nonresource("/apis/discovery.k8s.io/v1") == b'{"kind": "APIResourceList"}'
    assert sorted(os.listdir(tmp_path / "c" / "_nonresource")) == [
        "%2Fapis%2Fdiscovery.k8s.io%2Fv1", "%2Fversion"]
    store.close()


def test_a_damaged_document_reads_as_not_cached_and_is_named_once(tmp_path, caplog):
    store = open_store(tmp_path / "c")
    store.write_nonresource("/version", b'{"gitVersion": "v1.31.0"}')
    doc = tmp_path / "c" / "_nonresource" / "%2Fversion"
    doc.write_bytes(doc.read_bytes().replace(b"v1.31", b"v1.21"))  # one bit: '3' -> '2'
    assert store.read_nonresource("/version") is None
    assert store.read_nonresource("/version") is None
    assert caplog.text.count("the cached /version is damaged") == 1
    store.write_nonresource("/version", b'{"gitVersion": "v1.32.0"}')  # the cloud's again
    assert store.read_nonresource("/version") == b'{"gitVersion": "v1.32.0"}'
    doc.write_bytes(b'{"gitVersion": "v1.29.0"}')  # as an earlier version wrote it
    assert store.read_nonresource("/version") == b'{"gitVersion": "v1.29.0"}'
    store.close()


def test_stats_count_objects_and_bytes(tmp_path):
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        txn.put("default", "a", b"{}", {})
        txn.put("default", "b", b'{"x": 1}', {})
        txn.commit()
    with store.transaction(NODES) as txn:
        txn.put("", "n", b"[1]", {})
        txn.commit()
    st = store.stats()
    assert (st.objects, st.bytes, st.commits, st.write_errors) == (3, 2 + 8 + 3, 2, 0)
    assert st.collections[PODS].objects == 2 and st.collections[NODES].bytes == 3
    store.close()


def test_one_process_owns_the_root(tmp_path):
    store = open_store(tmp_path / "c")
    other = DiskStore(str(tmp_path / "c"), lock_timeout=0.1)
    with pytest.raises(StorageError, match="in use"):
        other.open()
    store.close()
    other.open()
    other.close()
    other.close()


def test_closed_store_refuses_reads_and_writes(tmp_path):
    store = open_store(tmp_path / "c")
    store.close()
    with pytest.raises(StorageError):
        store.read(PODS, "default", "a")
    with pytest.raises(StorageError):
        store.transaction(PODS)


def test_root_is_created_0700_with_missing_parents(tmp_path):
    root = tmp_path / "var" / "lib" / "yurthub" / "cache"
    with DiskStore(str(root)) as store:
        assert store.collections() == []
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


@pytest.mark.parametrize("made", ["empty, by hand", "restored with loose modes"])
def test_a_root_open_to_other_users_is_made_private(tmp_path, made, caplog):
    """``mkdir -p`` under umask 022 before the first start, or a backup restored with
    loose modes: other users must not read the cached objects (Secrets among them)."""
    root = tmp_path / "c"
    if made == "restored with loose modes":
        store = open_store(root)
        with store.transaction(PODS) as txn:
            txn.put("default", "a", body("a", "default"), {})
            txn.commit()
        store.close()
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    else:
        root.mkdir(mode=0o755)
        root.chmod(0o755)
    open_store(root).close()
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert "open to other users: set to 0700" in caplog.text
    caplog.clear()
    open_store(root).close()
    assert "open to other users" not in caplog.text  # said once, when it was so


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        DiskStore("/tmp/x", durability="none")
    with pytest.raises(ValueError):
        DiskStore("/tmp/x", history_limit=0)


def test_readers_see_whole_snapshots_while_the_writer_commits(tmp_path):
    store = open_store(tmp_path / "c")
    names = [f"pod-{i}" for i in range(40)]
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            state = store.state(PODS)
            snap = store.entries(PODS)
            txs = {e.meta["tx"] for e in snap.values()}
            if len(txs) > 1:
                problems.append(f"mixed snapshot {txs}")
            for (ns, name), entry in snap.items():
                raw = store.read(PODS, ns, name)
                reads[0] += 1
                if raw is None:
                    continue  # deleted since the snapshot was taken
                tx = json.loads(raw)["tx"]  # never a torn body
                if tx < entry.meta["tx"]:
                    problems.append(f"{name}: body of tx {tx} older than its entry")
            if state and state["tx"] > min(txs, default=0):
                problems.append("a state newer than the objects read after it")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for tx in range(1, 40):
            with store.transaction(PODS) as txn:
                for i, name in enumerate(names):
                    if (i + tx) % 4:
                        txn.put("default", name, body(name, tx=tx), {"tx": tx})
                    else:
                        txn.delete("default", name)
                txn.set_state({"tx": tx})
                txn.commit()
    finally:
        stop.set()
        for t in threads:
            t.join()
    store.close()
    assert problems == []
    assert reads[0] > 0


def test_bookkeeping_documents_round_trip_privately_and_survive_recovery(tmp_path):
    store = open_store(tmp_path / "c")
    assert store.read_bookkeeping("access") is None
    store.write_bookkeeping("access", {"a": [1, 2]})
    store.write_bookkeeping("access", {"a": [3]})
    assert store.read_bookkeeping("access") == {"a": [3]}
    path = tmp_path / "c" / "_access"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.close()
    store, _ = reopen(tmp_path / "c")
    assert store.read_bookkeeping("access") == {"a": [3]}
    path.write_bytes(path.read_bytes()[:-2])          # torn
    with pytest.raises(ValueError, match="torn or damaged"):
        store.read_bookkeeping("access")
    with pytest.raises(ValueError):
        store.write_bookkeeping("../x", {})


def test_a_component_of_another_user_is_a_collection_like_any(tmp_path):
    store = open_store(tmp_path / "c")
    ck = CollectionKey("kubelet@1000", "", "v1", "pods", True)
    with store.transaction(ck) as txn:
        txn.put("default", "p", body("p", "default"), {})
        txn.commit()
    store.close()
    store, _ = reopen(tmp_path / "c")
    assert ck in store.collections()
    assert (tmp_path / "c" / "kubelet@1000" / "pods.v1.core" / "default" / "p").is_file()


@pytest.mark.parametrize("rows", [0, 1, 255, 256, 257, 1000])
def test_a_framed_document_with_rows_reads_back_as_it_was(rows):
    from yurthub.storage import files

    doc = {"v": 1, "stage": ".stage.7", "puts": [["ns", f"n-{i}", f"p{i}", {"é": i / 3}]
                                                  for i in range(rows)], "state": None}
    data = files.frame("yurthub-test", doc, rows="puts")
    assert files.unframe("yurthub-test", data) == doc
    # written in pieces: no one buffer (or call) of a big document's size
    pieces = files.frame_pieces("yurthub-test", doc, rows="puts")
    assert b"".join(pieces) == data
    if rows > 2 * files.ROWS_PER_CALL:
        assert max(map(len, pieces)) < len(data) // 2
    assert files.unframe("yurthub-test", files.frame("yurthub-test", doc)) == doc
    torn = data[:-1]
    with pytest.raises(ValueError):
        files.unframe("yurthub-test", torn)
