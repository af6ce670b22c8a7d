"""DiskStore's spare inodes: replaced files kept a while, rewritten by the next big commit,
removed by the janitor at the lowest CPU priority; staging directories spread over the disk."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time

from storage_support import (
    PODS,
    body,
    leftovers,
    open_store,
    reopen,
    spares,
)

from yurthub.storage import shared as shared_mod


def _replace_all(store, gen: int, n: int = 300) -> None:
    with store.transaction(PODS) as txn:
        for i in range(n):
            txn.put("ns", f"pod-{i}", body(f"pod-{i}", tx=gen), {"tx": gen})
        txn.commit()


def _inodes(coll) -> dict[str, int]:
    return {n: os.stat(coll / "ns" / n).st_ino for n in os.listdir(coll / "ns")}


def _wait(predicate, what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _spare_sizes(coll) -> dict[str, int]:
    return {f"{d}/{n}": os.stat(coll / d / n).st_size
            for d in os.listdir(coll) if d.startswith(".spare.")
            for n in os.listdir(coll / d)}


def test_replaced_files_are_kept_as_spares_and_older_ones_removed(tmp_path):
    """The newest big commits' replaced files stay (for the next big commit to reuse);
    older ones are removed in the background by tidy()."""
    store = open_store(tmp_path / "c")
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"

    def staged() -> list[str]:
        return [n for n in os.listdir(coll) if n.startswith(".")]

    _replace_all(store, 1)
    assert staged() == []  # a first fill replaced nothing: nothing is kept
    for gen in (2, 3, 4):
        _replace_all(store, gen)
    assert len(staged()) == 3
    store.tidy()
    _wait(lambda: len(staged()) == 2, "the oldest spares to go")
    assert store.read(PODS, "ns", "pod-7") == body("pod-7", tx=4)
    store.close()


def test_spares_kept_long_are_emptied_not_removed_and_still_reused(tmp_path, monkeypatch):
    """Spares that waited SPARE_SECONDS lose their bytes but keep their inodes: removing
    them would make the next big commit create every file next to thousands of freshly
    freed inodes (slow on ext4 without a journal).  The next big commit rewrites them."""
    store = open_store(tmp_path / "c")
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    _replace_all(store, 1)
    first = set(_inodes(coll).values())
    _replace_all(store, 2)              # gen 1's files are now spares, with their bytes
    assert all(_spare_sizes(coll).values()) and len(_spare_sizes(coll)) >= 300
    monkeypatch.setattr(shared_mod, "SPARE_SECONDS", 0.0)
    store.tidy()
    _wait(lambda: not any(_spare_sizes(coll).values()), "the spares to be emptied")
    assert len(_spare_sizes(coll)) >= 300  # every spare is still there, holding nothing
    assert store.read(PODS, "ns", "pod-7") == body("pod-7", tx=2)
    store.tidy()                        # emptied ones are not taken again
    store.flush()
    assert len(_spare_sizes(coll)) >= 300
    _replace_all(store, 3)
    assert len(set(_inodes(coll).values()) & first) >= 300 - shared_mod.REUSE_AFTER - 1
    for i in range(300):
        assert store.read(PODS, "ns", f"pod-{i}") == body(f"pod-{i}", tx=3)
    store.close()


def test_spares_a_reader_may_hold_are_not_emptied(tmp_path, monkeypatch):
    """A reader that looked a name up before a commit may still read the replaced file:
    its bytes stay until no reader older than that commit is left."""
    store = open_store(tmp_path / "c")
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    _replace_all(store, 1)
    reader = store._shared.pin()        # a read that began before gen 2's commit
    _replace_all(store, 2)
    monkeypatch.setattr(shared_mod, "SPARE_SECONDS", 0.0)
    store.tidy()
    store.flush()                       # waits for the janitor
    assert len(_spare_sizes(coll)) >= 300 and all(_spare_sizes(coll).values())
    store._shared.unpin(reader)
    store.tidy()
    _wait(lambda: not any(_spare_sizes(coll).values()), "the spares to be emptied")
    store.close()


def test_a_big_commit_rewrites_the_inodes_the_one_before_replaced(tmp_path):
    """Freeing 10,000 inodes costs the janitor a second, and on ext4 without a journal
    slows every file created near them for a minute: the next big commit takes them."""
    store = open_store(tmp_path / "c")
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    _replace_all(store, 1)
    first = set(_inodes(coll).values())
    _replace_all(store, 2)   # gen 1's files are now spares
    _replace_all(store, 3)
    third = set(_inodes(coll).values())
    assert len(third & first) >= 300 - shared_mod.REUSE_AFTER - 1
    for i in range(300):
        assert store.read(PODS, "ns", f"pod-{i}") == body(f"pod-{i}", tx=3)
    assert {m["tx"] for m in (e.meta for e in store.entries(PODS).values())} == {3}
    for p in (coll / "ns").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.stat().st_nlink == 1
    store.close()
    store, report = reopen(tmp_path / "c")
    assert report.reindexed == 0 and report.quarantined == 0
    assert store.read(PODS, "ns", "pod-299") == body("pod-299", tx=3)
    store.close()


def test_spares_outlive_a_restart(tmp_path):
    """A hub restart must not free the spares (that would be the mass delete they avoid):
    close() leaves them in ``.spare.<id>`` and the next open() hands them to the next big
    commit."""
    store = open_store(tmp_path / "c")
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    _replace_all(store, 1)
    first = set(_inodes(coll).values())
    _replace_all(store, 2)
    store.close()
    assert [os.path.basename(p) for p in spares(tmp_path / "c")] != []
    assert leftovers(tmp_path / "c") == []
    store, report = reopen(tmp_path / "c")
    assert report.reindexed == 0
    _replace_all(store, 3)
    assert len(set(_inodes(coll).values()) & first) >= 300 - shared_mod.REUSE_AFTER - 1
    assert store.read(PODS, "ns", "pod-5") == body("pod-5", tx=3)
    store.close()


def test_no_spare_is_rewritten_while_a_reader_may_hold_it(tmp_path):
    """A reader that looked a name up before a commit may still read the replaced file:
    while any reader older than that commit is reading, its files are not reused."""
    store = open_store(tmp_path / "c")
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    _replace_all(store, 1)
    first = set(_inodes(coll).values())
    reader = store._shared.pin()       # a read that began before gen 2's commit
    _replace_all(store, 2)
    second = set(_inodes(coll).values())
    _replace_all(store, 3)
    assert not set(_inodes(coll).values()) & (first | second)
    store._shared.unpin(reader)
    _replace_all(store, 4)              # what gens 2 and 3 replaced is free now
    assert len(set(_inodes(coll).values()) & (first | second)) >= 300 - shared_mod.REUSE_AFTER - 1
    store.close()


def test_readers_never_see_a_rewritten_spare(tmp_path, monkeypatch):
    """Readers hammering objects while big commits replace them and reuse the inodes:
    every body read is one whole version of the object asked for.  Each reader dawdles
    40 ms between opening a file and reading it, so a reused inode would be caught."""
    real_fstat = os.fstat

    def dawdling_fstat(fd):
        result = real_fstat(fd)
        if threading.current_thread().name.startswith("reader"):
            time.sleep(0.04)
        return result

    monkeypatch.setattr(os, "fstat", dawdling_fstat)
    store = open_store(tmp_path / "c")
    _replace_all(store, 0, 200)
    stop = threading.Event()
    bad: list[bytes] = []
    reads = [0]

    def read_loop(seed: int) -> None:
        i = seed
        while not stop.is_set():
            i = (i * 7 + 3) % 200
            raw = store.read(PODS, "ns", f"pod-{i}")
            reads[0] += 1
            try:
                obj = json.loads(raw or b"")
                ok = obj["metadata"]["name"] == f"pod-{i}" and raw == body(f"pod-{i}",
                                                                        tx=obj["tx"])
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                bad.append(raw or b"")

    threads = [threading.Thread(target=read_loop, args=(s,), name=f"reader-{s}")
               for s in range(8)]
    for t in threads:
        t.start()
    try:
        gen = 1
        while reads[0] < 200 and gen < 400:
            _replace_all(store, gen, 200)
            gen += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    store.close()
    assert reads[0] >= 200 and gen > 3
    assert bad == []


def _nice(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[16])


def test_the_janitor_removes_replaced_files_at_the_lowest_cpu_priority(tmp_path, monkeypatch):
    """Unlinking thousands of replaced files must not take a core from clients being
    served: the background janitor runs niced to 19; the thread calling tidy() is not."""
    store = open_store(tmp_path / "c")
    for gen in range(2):
        with store.transaction(PODS) as txn:
            for i in range(200):
                txn.put("default", f"p{i}", body(f"p{i}", v=str(gen)), {})
            txn.commit()
    seen: list[int] = []
    gate = threading.Event()
    real = store._remove_trash

    def held(drop) -> None:
        seen.append(_nice(threading.get_native_id()))
        gate.wait(10)
        real(drop)

    monkeypatch.setattr(store, "_remove_trash", held)
    monkeypatch.setattr(shared_mod, "SPARE_SECONDS", 0.0)
    mine = _nice(threading.get_native_id())
    store.tidy()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    store.flush()
    assert seen[0] == 19
    assert seen[1:] == [mine] * (len(seen) - 1)  # flush() empties the trash in its caller
    assert _nice(threading.get_native_id()) == mine
    assert leftovers(tmp_path / "c") == []
    assert [json.loads(store.read(PODS, "default", "p7"))] == [json.loads(body("p7", v="1"))]
    store.close()


def _takes_topdir(parent) -> bool:
    """Whether the file system under ``parent`` takes ``chattr +T`` (ext4 does, tmpfs not)."""
    probe = os.path.join(str(parent), "probe")
    os.mkdir(probe)
    try:
        return subprocess.run(["chattr", "+T", probe], capture_output=True).returncode == 0
    finally:
        os.rmdir(probe)


def _attrs(path) -> str:
    r = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True)
    return r.stdout.split()[0] if r.returncode == 0 else ""


def test_collections_ask_for_their_staging_dirs_to_be_spread(tmp_path):
    """ext4 without a journal scans past every inode freed in the last minute or more when
    it allocates one: staging 10,000 objects next to the files the last commit freed took
    1-2 s instead of 0.15 s.  Each collection directory carries ext4's "top of a directory
    hierarchy" flag (lsattr shows T), so every staging dir starts in a block group of its
    own; a cache made before the flag existed gets it when it is opened."""
    store = open_store(tmp_path / "c")
    with store.transaction(PODS) as txn:
        txn.put("ns", "p", body("p", "ns"), {})
        txn.commit()
    coll = tmp_path / "c" / "kubelet" / "pods.v1.core"
    takes = _takes_topdir(tmp_path)
    assert ("T" in _attrs(coll)) is takes
    store.close()
    if takes:
        subprocess.run(["chattr", "-T", str(coll)], check=True)
        assert "T" not in _attrs(coll)
    store = open_store(tmp_path / "c")
    assert ("T" in _attrs(coll)) is takes
    assert store.read(PODS, "ns", "p") == body("p", "ns")
    store.close()


def test_a_cache_where_the_flag_is_refused_works_the_same(tmp_path):
    """tmpfs refuses chattr +T: the cache is made, committed and read all the same."""
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    root = tempfile.mkdtemp(prefix="yurthub-test-", dir=shm)
    try:
        store = open_store(os.path.join(root, "c"))
        with store.transaction(PODS) as txn:
            for i in range(40):
                txn.put("ns", f"p{i}", body(f"p{i}", "ns"), {"tx": i})
            txn.commit()
        coll = os.path.join(root, "c", "kubelet", "pods.v1.core")
        assert ("T" in _attrs(coll)) is _takes_topdir(root)
        assert store.read(PODS, "ns", "p39") == body("p39", "ns")
        assert len(store.entries(PODS)) == 40
        store.close()
        assert leftovers(os.path.join(root, "c")) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
