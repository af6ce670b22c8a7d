"""The disk quota: what is evicted (least recently used idle collections), what never is, and
the commit that is refused when nothing can make room."""

from __future__ import annotations

import os

import pytest
from storage_support import body, open_store, reopen, tree

from yurthub.storage import CollectionKey, Quota, QuotaExceeded
from yurthub.storage import quota as q
from yurthub.storage.quota import Use

KB = 1024


def key(component: str, resource: str = "configmaps") -> CollectionKey:
    return CollectionKey(component, "", "v1", resource, True)


A, B, C, D = key("a"), key("b"), key("c"), key("a", "secrets")


def use(**sizes_and_ages: tuple[int, float]) -> dict[CollectionKey, Use]:
    keys = {"a": A, "b": B, "c": C, "d": D}
    return {keys[k]: Use(n, t) for k, (n, t) in sizes_and_ages.items()}


def test_nothing_is_evicted_while_the_commit_fits():
    quota = Quota(total=100, per_component=60, max_collections=10)
    assert q.plan(quota, use(a=(30, 1), b=(30, 2)), A, 20, lambda ck: True) == []
    assert q.plan(quota, use(a=(30, 1)), A, -500, lambda ck: True) == []


def test_the_least_recently_used_idle_collections_go_first():
    quota = Quota(total=100, per_component=100, max_collections=10)
    u = use(a=(10, 5), b=(40, 1), c=(40, 2))
    assert q.plan(quota, u, A, 30, lambda ck: True) == [B]
    assert q.plan(quota, u, A, 60, lambda ck: True) == [B, C]
    assert q.plan(quota, u, A, 30, lambda ck: ck != B) == [C]  # B is busy


def test_a_components_quota_is_made_room_for_within_the_component():
    quota = Quota(total=1000, per_component=50, max_collections=10)
    u = use(a=(30, 5), d=(15, 9), b=(500, 1))
    assert q.plan(quota, u, A, 10, lambda ck: True) == [D]  # not b: another component


def test_when_nothing_makes_room_nothing_is_evicted():
    quota = Quota(total=100, per_component=1000, max_collections=10)
    u = use(a=(10, 5), b=(40, 1), c=(40, 2))
    with pytest.raises(QuotaExceeded) as e:
        q.plan(quota, u, A, 200, lambda ck: True)
    assert (e.value.scope, e.value.component, e.value.growth) == ("total", "a", 200)
    with pytest.raises(QuotaExceeded) as e:
        q.plan(Quota(1000, 40, 10), use(a=(10, 5), d=(20, 1)), A, 60, lambda ck: True)
    assert e.value.scope == "component" and e.value.needed == 30  # 30 + 60 - 40 - 20


def test_the_number_of_collections_is_bounded():
    quota = Quota(total=1000, per_component=1000, max_collections=3)
    u = use(a=(1, 5), b=(1, 1), c=(1, 2))
    assert q.plan_new_collection(quota, u, lambda ck: True) == [B]
    with pytest.raises(QuotaExceeded) as e:
        q.plan_new_collection(quota, u, lambda ck: False)
    assert e.value.scope == "collections"


# -- the store --------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def fill(store, ck: CollectionKey, n: int, size: int = KB) -> None:
    txn = store.transaction(ck)
    for i in range(n):
        txn.put("default", f"o{i}", body(f"o{i}", "default", pad="x" * size), {})
    txn.commit()


def test_a_store_over_its_quota_evicts_idle_collections_least_recently_used_first(tmp_path):
    clock = Clock()
    store = open_store(tmp_path, quota=Quota(40 * KB, 40 * KB, 100), clock=clock, monotonic=clock)
    fill(store, A, 10)
    clock.now += 100
    fill(store, B, 10)
    clock.now += 100
    fill(store, C, 10)
    clock.now += 100
    assert store.read(A, "default", "o1") is not None  # A is used again: B is now the oldest
    clock.now += 100
    evicted = []
    store.set_eviction_hooks(lambda ck: False, lambda ck, why: evicted.append((ck, why)))
    fill(store, D, 12)
    assert evicted == [(B, "quota")]
    assert B not in store.collections() and store.entries(B) == {}
    assert store.read(B, "default", "o1") is None
    assert sum(u.bytes for u in store.usage().values()) <= 40 * KB
    store.flush()  # the janitor removed the evicted directory
    assert not any(p.startswith("b/") for p in tree(tmp_path))
    # Evicted is gone for good: a restart does not bring it back.
    store.close()
    again, _ = reopen(tmp_path)
    assert B not in again.collections() and A in again.collections()
    again.close()


def test_a_collection_in_use_or_just_used_is_never_evicted(tmp_path):
    clock = Clock()
    store = open_store(tmp_path, quota=Quota(25 * KB, 25 * KB, 100), clock=clock, monotonic=clock)
    fill(store, A, 10)
    fill(store, B, 10)
    with pytest.raises(QuotaExceeded):  # both were used a moment ago
        fill(store, C, 10)
    clock.now += 100
    store.set_eviction_hooks(lambda ck: ck == A, lambda ck, why: None)
    open_txn = store.transaction(B)  # B is being written: never evicted mid-commit
    open_txn.put("default", "x", body("x", "default"), {})
    with pytest.raises(QuotaExceeded):
        fill(store, C, 10)
    assert {A, B} <= set(store.collections())
    open_txn.commit()
    clock.now += 100
    fill(store, C, 10)  # now B is idle: it goes
    assert B not in store.collections() and A in store.collections()
    store.close()


def test_a_refused_commit_changes_nothing(tmp_path):
    store = open_store(tmp_path, quota=Quota(8 * KB, 8 * KB, 100))
    fill(store, A, 2)
    before = dict(store.entries(A))
    with pytest.raises(QuotaExceeded) as e:
        fill(store, A, 20)
    assert e.value.growth > 8 * KB
    assert dict(store.entries(A)) == before
    assert not [p for p in tree(tmp_path) if "/." in p]  # no staging left behind
    store.close()


def test_shrinking_commits_always_pass(tmp_path):
    store = open_store(tmp_path, quota=Quota(12 * KB, 12 * KB, 100))
    fill(store, A, 10)
    txn = store.transaction(A)
    for i in range(5):
        txn.delete("default", f"o{i}")
    txn.put("default", "o9", body("o9", "default", pad="y" * 2 * KB), {})
    txn.commit()
    assert len(store.entries(A)) == 5
    store.close()


def test_the_collection_count_is_bounded(tmp_path):
    clock = Clock()
    store = open_store(tmp_path, quota=Quota(1 << 30, 1 << 30, 2), clock=clock, monotonic=clock)
    fill(store, A, 1)
    fill(store, B, 1)
    with pytest.raises(QuotaExceeded) as e:
        fill(store, C, 1)
    assert e.value.scope == "collections" and not store.can_create()
    clock.now += 100
    assert store.can_create()
    fill(store, C, 1)
    assert set(store.collections()) == {B, C} or set(store.collections()) == {A, C}
    store.close()


def test_a_reader_in_an_evicted_collection_keeps_its_descriptor_until_it_is_done(tmp_path):
    clock = Clock()
    store = open_store(tmp_path, quota=Quota(1 << 30, 1 << 30, 100), clock=clock, monotonic=clock)
    fill(store, A, 3)
    coll_fd = store._colls[A.path].fd
    epoch = store._shared.pin()  # a read in progress, as DiskStore.read pins
    store.evict(A, "test")
    store.flush()
    os.fstat(coll_fd)  # still open: the reader may still use it
    assert any(p.startswith("a/.evicted.") for p in tree(tmp_path))
    store._shared.unpin(epoch)
    store.flush()
    with pytest.raises(OSError):
        os.fstat(coll_fd)
    assert not any(p.startswith("a/.evicted.") for p in tree(tmp_path))
    store.close()


def test_a_clock_set_back_neither_stops_eviction_nor_evicts_what_is_used_now(tmp_path,
                                                                            monkeypatch):
    """The node's clock set back a day (NTP correcting a clock that ran ahead): every
    collection looked used "in the future", none idle, so a full quota stopped caching
    for a day; and what was used after the step looked the oldest, evicted first."""
    from yurthub.storage import disk
    monkeypatch.setattr(disk, "EVICT_MIN_IDLE", 0.0)   # (real monotonic time: idle at once)
    clock = Clock()
    store = open_store(tmp_path, quota=Quota(40 * KB, 40 * KB, 100), clock=clock)
    fill(store, A, 10)
    clock.now += 100
    fill(store, B, 10)
    clock.now += 100
    fill(store, C, 10)
    clock.now -= 86400
    assert store.read(A, "default", "o1") is not None  # A is used again: B is the oldest
    evicted = []
    store.set_eviction_hooks(lambda ck: False, lambda ck, why: evicted.append((ck, why)))
    fill(store, D, 12)
    assert evicted == [(B, "quota")]
    assert {A, C, D} <= set(store.collections())
    store.close()
