"""The store's side of damaged files: what read_object trusts, what suspects() flags without
reading, what quarantine_object moves, and the objects recovery reports lost."""

from __future__ import annotations

import os

import pytest
from storage_support import NODES, PODS, body, open_store, reopen

from yurthub.errors import DamagedObject


def fill(store, names=("a", "b", "c"), ck=PODS):
    ns = "default" if ck.namespaced else ""
    with store.transaction(ck) as txn:
        for n in names:
            txn.put(ns, n, body(n, ns), {"labels": {"app": n}})
        txn.commit()


def path(root, name, ck=PODS):
    base = root / ck.component / ck.dirname
    return base / "default" / name if ck.namespaced else base / name


def test_a_file_the_store_wrote_is_trusted_and_a_changed_one_is_not(tmp_path):
    store = open_store(tmp_path)
    fill(store)
    got, trusted = store.read_object(PODS, "default", "a")
    assert got == body("a", "default") and trusted
    assert store.read_object(PODS, "default", "zzz") == (None, True)  # not cached at all
    path(tmp_path, "b").write_bytes(body("b", "default") + b" ")  # same object, touched
    got, trusted = store.read_object(PODS, "default", "b")
    assert got is not None and not trusted  # the caller checks the content
    assert store.suspects(PODS, [("default", n) for n in "abc"]) == {("default", "b"): "changed"}
    store.close()


@pytest.mark.parametrize("damage, why", [
    ("missing", "missing"), ("directory", "not a regular file"), ("fifo", "not a regular file"),
])
def test_a_file_that_is_gone_or_not_a_file_is_damaged_not_absent(tmp_path, damage, why):
    store = open_store(tmp_path)
    fill(store)
    p = path(tmp_path, "b")
    p.unlink()
    if damage == "directory":
        p.mkdir()
    elif damage == "fifo":
        os.mkfifo(p)  # read without blocking: O_NONBLOCK, then refused as not a file
    with pytest.raises(DamagedObject, match=r"pods\.v1\.core/default/b"):
        store.read_object(PODS, "default", "b")
    assert store.suspects(PODS, [("default", n) for n in "abc"]) == {("default", "b"): why}
    store.close()


def test_quarantine_object_moves_whatever_is_there_and_forgets_the_entry(tmp_path):
    store = open_store(tmp_path)
    fill(store, ck=NODES)
    p = path(tmp_path, "b", NODES)
    p.unlink()
    p.mkdir()
    (p / "inside").write_text("x")
    moved = store.quarantine_object(NODES, "", "b")
    assert moved == "_quarantine/kubelet/nodes.v1.core/b"
    assert (tmp_path / moved / "inside").read_text() == "x"
    assert ("", "b") not in store.entries(NODES) and not p.exists()
    assert store.read_object(NODES, "", "b") == (None, True)
    assert store.quarantine_object(NODES, "", "b") is None  # nothing left to move
    assert store.stats().quarantined == 1
    store.close()


def test_recovery_reports_the_objects_it_set_aside_with_what_the_index_knew(tmp_path):
    store = open_store(tmp_path)
    fill(store)
    store.close()  # the index is persisted: recovery knows each object's labels
    path(tmp_path, "a").write_bytes(b'{"metad')
    p = path(tmp_path, "c")
    p.unlink()
    os.mkfifo(p)
    store, report = reopen(tmp_path)
    lost = {(o.namespace, o.name): o for o in report.lost}
    assert set(lost) == {("default", "a"), ("default", "c")}
    assert lost[("default", "a")].meta == {"labels": {"app": "a"}}
    assert lost[("default", "a")].key == PODS and "not a valid object" in lost[("default", "a")].why
    assert "FIFO" in lost[("default", "c")].why
    assert set(store.entries(PODS)) == {("default", "b")}
    store.close()


def test_recovery_reports_an_indexed_object_whose_file_is_missing_as_lost(tmp_path):
    store = open_store(tmp_path)
    fill(store)
    store.close()  # the saved index lists a, b and c
    path(tmp_path, "b").unlink()
    store, report = reopen(tmp_path)
    lost = {(o.namespace, o.name): o for o in report.lost}
    assert set(lost) == {("default", "b")}
    assert lost[("default", "b")].meta == {"labels": {"app": "b"}}
    assert "missing" in lost[("default", "b")].why
    assert set(store.entries(PODS)) == {("default", "a"), ("default", "c")}
    store.close()
    store, report = reopen(tmp_path)  # reported once: the rebuilt index no longer lists it
    assert report.lost == []
    store.close()


@pytest.mark.parametrize("replacement", ["file", "symlink"])
def test_recovery_reports_the_objects_of_a_namespace_dir_set_aside_as_lost(tmp_path,
                                                                           replacement):
    store = open_store(tmp_path)
    fill(store)
    with store.transaction(PODS) as txn:
        txn.put("other", "d", body("d", "other"), {"labels": {"app": "d"}})
        txn.commit()
    store.close()
    ns_dir = tmp_path / "kubelet" / "pods.v1.core" / "default"
    moved = tmp_path.parent / f"moved-{replacement}"
    ns_dir.rename(moved)
    if replacement == "file":
        ns_dir.write_text("x")
    else:
        ns_dir.symlink_to(moved)
    store, report = reopen(tmp_path)
    lost = {(o.namespace, o.name): o for o in report.lost}
    assert set(lost) == {("default", n) for n in "abc"}
    assert lost[("default", "a")].meta == {"labels": {"app": "a"}}
    assert "namespace directory" in lost[("default", "a")].why
    assert replacement in lost[("default", "a")].why
    assert set(store.entries(PODS)) == {("other", "d")}
    assert (tmp_path / "_quarantine" / "kubelet" / "pods.v1.core" / "default").is_symlink() \
        == (replacement == "symlink")
    store.close()


def flip_keeping_stat(p, old: bytes, new: bytes) -> None:
    """Bit rot: bytes change, the inode, size and mtime do not."""
    st = p.stat()
    data = p.read_bytes()
    assert len(old) == len(new) and old in data
    p.write_bytes(data.replace(old, new, 1))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) == (
        st.st_ino, st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("old, new", [(b'"b"', b'"c"'), (b'{"', b'{#'), (b"}", b"\x00")])
def test_a_file_changed_under_an_unchanged_stat_is_damaged_when_read(tmp_path, old, new):
    store = open_store(tmp_path)
    fill(store)
    flip_keeping_stat(path(tmp_path, "b"), old, new)
    with pytest.raises(DamagedObject, match=r"default/b: .*bit rot"):
        store.read_object(PODS, "default", "b")
    assert store.read_object(PODS, "default", "a") == (body("a", "default"), True)
    store.close()


def test_a_file_changed_under_an_unchanged_stat_is_lost_at_startup(tmp_path):
    store = open_store(tmp_path)
    fill(store)
    store.close()  # the index (with each file's checksum) is persisted
    flip_keeping_stat(path(tmp_path, "b"), b'"Pod"', b'"Pox"')  # still valid JSON
    store, report = reopen(tmp_path)
    lost = {(o.namespace, o.name): o for o in report.lost}
    assert set(lost) == {("default", "b")} and "bit rot" in lost[("default", "b")].why
    assert lost[("default", "b")].meta == {"labels": {"app": "b"}}
    assert set(store.entries(PODS)) == {("default", "a"), ("default", "c")}
    assert (tmp_path / "_quarantine" / "kubelet" / "pods.v1.core" / "default" / "b").exists()
    store.close()


def test_an_index_without_checksums_is_upgraded_by_reading_each_file_once(tmp_path):
    import json

    from yurthub.storage import files
    store = open_store(tmp_path)
    fill(store)
    store.close()
    idx = tmp_path / "kubelet" / "pods.v1.core" / "_index"
    doc = files.unframe("yurthub-index", idx.read_bytes())
    assert doc["v"] == 2
    v1 = {"v": 1, "entries": [row[:6] for row in doc["entries"]]}  # as the last release
    idx.write_bytes(files.frame("yurthub-index", v1))
    path(tmp_path, "c").write_bytes(b'{"torn')  # found while upgrading
    flip_keeping_stat(path(tmp_path, "a"), b'"metadata"', b'"metadatx"')  # so is this one
    store, report = reopen(tmp_path)
    assert {(o.namespace, o.name) for o in report.lost} == {("default", "a"), ("default", "c")}
    assert store.read_object(PODS, "default", "b") == (body("b", "default"), True)
    store.close()
    doc = json.loads(idx.read_bytes().partition(b"\n")[2])
    assert doc["v"] == 2 and [row[1] for row in doc["entries"]] == ["b"]
    store, report = reopen(tmp_path)
    assert report.lost == [] and report.reindexed == 0
    store.close()


def test_the_quarantine_count_never_follows_a_symlink_out_of_the_root(tmp_path):
    """``_quarantine`` a symlink to a directory outside the root (planted while the hub runs,
    or in a stopped hub's tree): ``yurthub cache verify`` counted that directory's files as
    set aside, and each /metrics scrape walked it.  Only what is in the root counts."""
    import subprocess
    import sys

    from yurthub.status import quarantined_files
    from yurthub.storage.treereader import TreeReader
    c = tmp_path / "c"
    store = open_store(c)
    fill(store)
    store.close()
    path(c, "a").write_bytes(b"{")  # torn: the next start sets it aside
    store, _ = reopen(c)
    store.close()
    assert quarantined_files(str(c)) == 1
    outside = tmp_path / "elsewhere"
    (outside / "deep").mkdir(parents=True)
    for n in ("x", "y", "deep/z"):
        (outside / n).write_text("not the hub's")
    os.rename(c / "_quarantine", tmp_path / "q")
    os.symlink(outside, c / "_quarantine")
    assert quarantined_files(str(c)) == 0
    with TreeReader(str(c)) as tree:
        assert tree.quarantined() == []
    r = subprocess.run([sys.executable, "-m", "yurthub", "cache", "--disk-cache-path", str(c),
                        "verify"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "YURTHUB_CONFIG": os.devnull})
    assert "_quarantine: not a directory" in r.stdout and "in _quarantine/" not in r.stdout
    # A symlink set aside inside the quarantine is counted, and not followed either.
    os.unlink(c / "_quarantine")
    os.rename(tmp_path / "q", c / "_quarantine")
    os.symlink(outside, c / "_quarantine" / "kubelet" / "moved")
    with TreeReader(str(c)) as tree:
        assert tree.quarantined() == ["_quarantine/kubelet/moved",
                                      "_quarantine/kubelet/pods.v1.core/default/a"]
    assert quarantined_files(str(c)) == 2
