"""The cache's bounds seen from its front door: the quota stops and resumes caching, a full
disk (ENOSPC injected at the process edge) does too, views and learned scopes are LRU."""

from __future__ import annotations

import errno
import json
import os

import pytest

from tests.unit.cache.conftest import (
    PODS,
    Feeder,
    event_line,
    list_body,
    pod,
    running_manager,
)
from yurthub.cache import space as space_mod
from yurthub.cache.manager import CacheManager
from yurthub.cache.views import MAX_NAMED_VIEWS, MAX_VIEWS, parse_selectors
from yurthub.kube.resources import builtin
from yurthub.metrics import EXTRA_COMPONENTS, OTHER, BoundedLabel, Metrics
from yurthub.storage import CollectionKey, Quota, files

MI = 1 << 20


def _only_collections(n: int) -> Quota:
    """A quota that bounds only the number of collections."""
    return Quota(total=1 << 30, per_component=1 << 30, max_collections=n)


@pytest.fixture
def small(tmp_path):
    with running_manager(tmp_path, Quota(total=MI, per_component=MI, max_collections=100),
                         cache_agents="kubectl") as m:
        m.writer.space.clock = lambda: float("inf")  # every check() looks at once
        yield m


def big_pods(n: int, pad: int) -> list[dict]:
    pods = []
    for i in range(n):
        p = pod(f"p{i}", rv=10 + i)
        p["metadata"]["annotations"] = {"pad": "x" * pad}
        pods.append(p)
    return pods


def sample(m: CacheManager, name: str, **labels: str) -> float:
    for metric in m.metrics.registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_a_list_over_the_quota_stops_caching_until_one_fits(small):
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body(big_pods(10, 1000), 50))  # ~330 KB
    feed.respond("/api/v1/pods", list_body(big_pods(20, 1000), 50), ua="kubectl/1")  # ~660 KB
    assert len(small.store.entries(PODS)) == 10 and small.not_ready() is None
    # The other collection was used a moment ago: nothing may be evicted for this one.
    feed.respond("/api/v1/pods", list_body(big_pods(20, 1000), 60))
    assert small.store.entries(PODS)[("default", "p0")].meta["rv"] == 10  # the old list stays
    assert len(small.store.entries(PODS)) == 10
    reason = small.not_ready()
    assert reason is not None and "caching stopped (quota)" in reason
    assert sample(small, "yurthub_cache_stopped", reason="quota") == 1
    # Still over: a look changes nothing.
    small.writer.space.check()
    assert small.not_ready() is not None
    # The cloud's list shrinks (objects deleted): it fits, caching goes on by itself.
    feed.respond("/api/v1/pods", list_body(big_pods(5, 1000), 70))
    assert small.not_ready() is None and len(small.store.entries(PODS)) == 5
    assert sample(small, "yurthub_cache_stopped", reason="quota") == 0


def test_a_list_larger_than_the_quota_is_not_even_spooled(small):
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body(big_pods(40, 1000), 60))  # 1.3 MB > 1 MiB
    assert small.store.entries(PODS) == {}
    assert sample(small, "yurthub_cache_entries_dropped_total", reason="too-large") == 1
    assert not [p for p in os.listdir(small.store.root) if p.startswith(".spool")]
    assert "larger than the cache quota" in (small.not_ready() or "")
    feed.respond("/api/v1/pods", list_body(big_pods(3, 1000), 70))
    assert small.not_ready() is None and len(small.store.entries(PODS)) == 3


def fill_the_disk(monkeypatch) -> dict[str, int]:
    """Every new file fails with ENOSPC and the free space reads 0 bytes (raise
    ``free["bytes"]`` for room, and put ``files.write_new`` back)."""
    free = {"bytes": 0}

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_new", full)
    monkeypatch.setattr(space_mod.SpaceGuard, "_free_bytes", lambda self: free["bytes"])
    return free


def test_a_full_disk_stops_caching_and_room_resumes_it(small, monkeypatch):
    feed = Feeder(small)
    real = files.write_new
    free = fill_the_disk(monkeypatch)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert small.store.entries(PODS) == {}
    assert "caching stopped (no-space)" in (small.not_ready() or "")
    assert sample(small, "yurthub_cache_stopped", reason="no-space") == 1
    # While the disk is full no entry is even opened: the response passes untouched.
    assert not feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    monkeypatch.setattr(files, "write_new", real)
    small.writer.space.check()
    assert small.not_ready() is not None  # the disk is still full
    free["bytes"] = 100 * MI
    small.writer.space.check()
    assert small.not_ready() is None
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert ("default", "a") in small.store.entries(PODS)


def test_a_disk_out_of_inodes_stays_stopped_while_it_has_bytes(small, monkeypatch):
    """tmpfs ``nr_inodes`` or an ext4 full of small files: every new file is ENOSPC with
    megabytes free.  Caching must stay stopped (and readyz say so) until inodes are back,
    not resume a second later and fail again at every list."""
    feed = Feeder(small)
    real_write, real_statvfs = files.write_new, os.statvfs
    inodes = {"free": 0}

    def no_inode(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    def statvfs(path):
        st = real_statvfs(path)
        return os.statvfs_result((st.f_bsize, st.f_frsize, 1 << 30, 1 << 30, 1 << 30,
                                  100_000, inodes["free"], inodes["free"], st.f_flag,
                                  st.f_namemax))

    monkeypatch.setattr(files, "write_new", no_inode)
    monkeypatch.setattr(space_mod.os, "statvfs", statvfs)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert small.store.entries(PODS) == {}
    monkeypatch.setattr(files, "write_new", real_write)
    small.writer.space.check()  # gigabytes free, no inode: still stopped
    reason = small.not_ready() or ""
    assert "caching stopped (no-space)" in reason and "out of inodes" in reason
    assert sample(small, "yurthub_cache_stopped", reason="no-space") == 1
    inodes["free"] = 50_000
    small.writer.space.check()
    assert small.not_ready() is None
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert ("default", "a") in small.store.entries(PODS)


def test_idle_collections_make_room_for_new_ones(tmp_path):
    with running_manager(tmp_path, _only_collections(2), cache_agents="kubectl") as m:
        feed = Feeder(m)
        now = [1_000_000.0]
        m.store.clock = m.store.monotonic = lambda: now[0]
        feed.respond("/api/v1/namespaces/default/configmaps", b'{"kind":"ConfigMapList",'
                     b'"apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[]}',
                     ua="kubectl/1")
        now[0] += 1
        feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
        now[0] += 100
        feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9), ua="kubectl/1")
        assert {ck.component + "/" + ck.resource for ck in m.store.collections()} == {
            "kubelet/pods", "kubectl/pods"}
        assert sample(m, "yurthub_cache_evictions_total", what="collection",
                      reason="collections") == 1


def test_views_of_a_collection_are_bounded_least_recently_used_first(tmp_path):
    with running_manager(tmp_path, cache_agents="kubectl") as m:
        feed = Feeder(m)
        for i in range(MAX_VIEWS + 5):
            feed.respond(f"/api/v1/pods?labelSelector=app%3Dv{i}", list_body([], 10 + i))
        views = json.loads(json.dumps(m.store.state(PODS)))["views"]
        assert len(views) == MAX_VIEWS
        kept = {v["key"]["labels"] for v in views}
        assert "app=v0" not in kept and f"app=v{MAX_VIEWS + 4}" in kept
        assert sample(m, "yurthub_cache_evictions_total", what="view", reason="lru") == 5


def _configmap_list(ns: str, name: str, rv: int) -> bytes:
    item = {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv),
                         "uid": f"uid-{ns}-{name}"}, "data": {"k": "v"}}
    return json.dumps({"kind": "ConfigMapList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": str(rv)}, "items": [item]}).encode()


def test_kubelets_per_object_views_of_a_full_node_all_resume_offline(tmp_path):
    """kubelet's ConfigMap manager lists and watches each referenced object by name: 110
    pods with 2 ConfigMaps each and kube-root-ca.crt in each of their 10 namespaces make
    230 views of one collection.  Each must still be there offline, or its watch (a
    resume from the list's version) is refused with 503 and kubelet lists again."""
    with running_manager(tmp_path) as m:
        feed = Feeder(m)
        names = [(f"ns-{p % 10}", f"cm-{p}-{k}") for p in range(110) for k in "ab"]
        names += [(f"ns-{n}", "kube-root-ca.crt") for n in range(10)]
        for rv, (ns, name) in enumerate(names, start=100):
            assert feed.respond(f"/api/v1/namespaces/{ns}/configmaps?fieldSelector="
                                f"metadata.name%3D{name}&limit=500&resourceVersion=0",
                                _configmap_list(ns, name, rv))
        # A list with a label selector does not push one of them out either.
        feed.respond("/api/v1/namespaces/ns-0/configmaps?labelSelector=app%3Dx",
                     list_body([], 999))
        ck = CollectionKey("kubelet", "", "v1", "configmaps", True)
        rt = builtin("", "v1", "configmaps")
        assert rt is not None
        for rv, (ns, name) in enumerate(names, start=100):
            want = parse_selectors(ns, "", f"metadata.name={name}", rt)
            start = m.reader.watch_start(ck, rt, want, str(rv))  # 503 once forgotten
            assert start.resource_version == rv and list(start.events) == []
        assert sample(m, "yurthub_cache_evictions_total", what="view", reason="lru") == 0


def test_views_of_one_object_by_name_are_bounded_too(tmp_path):
    with running_manager(tmp_path, cache_agents="kubectl") as m:
        feed = Feeder(m)
        feed.respond("/api/v1/pods?labelSelector=app%3Dv", list_body([], 9))
        for i in range(MAX_NAMED_VIEWS + 3):
            feed.respond(f"/api/v1/pods?fieldSelector=metadata.name%3Dp{i}",
                         list_body([], 10 + i))
        views = json.loads(json.dumps(m.store.state(PODS)))["views"]
        fields = {v["key"]["fields"] for v in views}
        assert len(views) == MAX_NAMED_VIEWS + 1 and "metadata.name=p0" not in fields
        assert {v["key"]["labels"] for v in views} == {"", "app=v"}  # the other one stays
        assert sample(m, "yurthub_cache_evictions_total", what="view", reason="lru") == 3


def test_learned_scopes_are_bounded_and_only_what_the_cloud_answered(tmp_path, monkeypatch):
    with running_manager(tmp_path, cache_agents="kubectl") as m:
        # A request the cloud did not answer teaches nothing.
        assert m.read_target(
            *_info("/apis/made.up/v1/namespaces/x/things"), "kubectl", "") is not None
        assert len(m.scopes) == 0
        small = type(m.scopes)(m.metrics, maxsize=3)
        monkeypatch.setattr(m, "scopes", small)
        for i in range(5):
            assert m.resource_type("x.io", "v1", f"r{i}", True, learn=True) is not None
        assert len(m.scopes) == 3
        assert m.resource_type("x.io", "v1", "r0") is None  # forgotten (least recently used)
        assert m.resource_type("x.io", "v1", "r4").namespaced is True
        assert sample(m, "yurthub_cache_evictions_total", what="scope", reason="lru") == 2


def _info(path: str) -> tuple:
    from yurthub.kube.requestinfo import parse_request_info
    return (parse_request_info("GET", path, ""),)


def test_a_bounded_label_keeps_known_values_a_few_more_then_other():
    folded = []
    label = BoundedLabel("component", {"kubelet"}, 2, folded.append)
    assert [label(v) for v in ["kubelet", "a", "b", "c", "a", "kubelet", "Bad Value",
                               "x" * 64]] == ["kubelet", "a", "b", OTHER, "a", "kubelet",
                                              OTHER, OTHER]
    assert folded == ["component"] * 3
    assert label.values == {"kubelet", "a", "b"}


def test_a_value_bounded_twice_takes_no_slot_and_every_caller_is_bounded():
    m = Metrics()
    assert m.component(OTHER) == OTHER and m.component.values == {"unknown"}
    for i in range(100):  # a proxy path that passes the User-Agent's component unbounded
        m.requests.labels(f"agent-{i}", "list", "shared", "200").inc()
        m.traffic.labels(f"agent-{i}", "frob", f"res{i}", "sub{i}").inc(10)
    text = m.exposition().decode()
    assert text.count("yurthub_requests_total{") == EXTRA_COMPONENTS + 1
    assert 'verb="other"' in text
    assert text.count("node_yurthub_proxy_traffic_collector_total{") == EXTRA_COMPONENTS + 1


def test_a_pods_component_is_a_label_of_its_own_a_local_users_is_folded():
    label = BoundedLabel("component", {"coredns"}, 2)
    assert [label(v) for v in ["coredns@pod", "kubelet@1000", "coredns@pods"]] == [
        "coredns@pod", OTHER, OTHER]


def test_a_watch_that_would_need_a_collection_past_the_bound_is_dropped_not_a_bug(
        tmp_path, caplog):
    with running_manager(tmp_path, _only_collections(1), cache_agents="kubectl") as m:
        feed = Feeder(m)
        feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
        from tests.unit.cache.conftest import event_line
        feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                     event_line("ADDED", pod("b", rv=11)), ua="kubectl/1")
        assert len(m.store.collections()) == 1
        assert "caching stopped (collections)" in (m.not_ready() or "")
        assert "bug while caching" not in caplog.text
        assert sample(m, "yurthub_cache_entries_dropped_total", reason="storage") == 1


def test_events_held_back_by_a_list_the_quota_refuses_are_still_applied(small):
    from tests.unit.cache.conftest import event_line
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body(big_pods(12, 1000), 40), ua="kubectl/1")  # ~400 KB
    feed.respond("/api/v1/pods?limit=2", list_body(big_pods(2, 1000), 50, cont="tok"))
    assert small.writer.collection(_entry()).assembly is not None  # the next page is awaited
    late = pod("late", rv=55)
    feed.respond("/api/v1/pods?watch=true&resourceVersion=50", event_line("ADDED", late))
    # ~900 KB more: under the quota as a list, over it with the other collection.
    feed.respond("/api/v1/pods?limit=2&continue=tok", list_body(big_pods(27, 1000), 50))
    assert "caching stopped (quota)" in (small.not_ready() or "")
    assert ("default", "late") in small.store.entries(PODS)  # the event was not lost


def _entry():
    from yurthub.cache.handlers import Entry
    from yurthub.kube.resources import builtin
    rt = builtin("", "v1", "pods")
    assert rt is not None
    return Entry(kind="list", ck=PODS, rt=rt)


def test_views_a_full_disk_kept_from_following_the_cloud_are_stale(small, monkeypatch):
    from tests.fixtures.waiting import wait_for
    from yurthub.cache.views import parse_selectors
    from yurthub.kube.resources import builtin
    rt = builtin("", "v1", "pods")
    assert rt is not None
    want = parse_selectors("", "", "", rt)
    feed = Feeder(small)
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=6)], 9))
    assert not small.reader.list(PODS, rt, want, limit=None, continue_token="").freshness.stale
    real = files.write_new
    free = fill_the_disk(monkeypatch)
    feed.respond("/api/v1/configmaps", b'{"kind":"ConfigMapList","apiVersion":"v1",'
                 b'"metadata":{"resourceVersion":"9"},"items":[]}')
    assert "caching stopped (no-space)" in (small.not_ready() or "")
    # The cloud deleted b; the relist passes uncached: the view no longer follows the cloud.
    assert not feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 12))
    assert PODS in small.writer.stale.unsynced  # the disk cannot take the mark: memory holds it
    page = small.reader.list(PODS, rt, want, limit=None, continue_token="")
    assert "caching stopped (no-space)" in page.freshness.stale
    # Room again: the stale mark reaches the disk (memory forgets it), until a list heals it.
    monkeypatch.setattr(files, "write_new", real)
    free["bytes"] = 100 * MI
    small.writer.space.check()
    small.writer.wake()
    wait_for(lambda: not small.writer.stale.unsynced, what="the stale mark on disk")
    page = small.reader.list(PODS, rt, want, limit=None, continue_token="")
    assert "caching stopped (no-space)" in page.freshness.stale
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 12))
    wait_for(lambda: not small.reader.list(PODS, rt, want, limit=None,
                                           continue_token="").freshness.stale,
             what="the view healed by a list")


def test_a_watch_event_that_finds_the_disk_full_is_no_write_error(small, monkeypatch, caplog):
    """A watch event staged into a full disk: caching stops for no-space and the view is
    stale because of the full disk -- not an ERROR about a finished transaction counted as
    a write error, which is what the batch's commit used to find after the failed put."""
    from tests.unit.cache.conftest import event_line
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    fill_the_disk(monkeypatch)
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("ADDED", pod("b", rv=11)))
    assert "caching stopped (no-space)" in (small.not_ready() or "")
    assert sample(small, "yurthub_cache_write_errors_total") == 0
    assert "is finished" not in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    stale = [r.getMessage() for r in caplog.records if "is stale" in r.getMessage()]
    assert stale and all("No space left on device" in m for m in stale), stale


def _erofs(*args, **kw):
    raise OSError(errno.EROFS, "Read-only file system")


def _mounted(ro: dict[str, bool]):
    """os.statvfs saying the file system is read-only while ``ro["on"]``."""
    real_statvfs = os.statvfs

    def statvfs(path):
        st = real_statvfs(path)
        flag = st.f_flag | os.ST_RDONLY if ro["on"] else st.f_flag & ~os.ST_RDONLY
        return os.statvfs_result((*st[:8], flag, st.f_namemax))
    return statvfs


def test_a_file_system_gone_read_only_stops_caching_until_it_is_writable(small, monkeypatch,
                                                                          caplog):
    """ext4's errors=remount-ro after an I/O error, or an operator's remount: every write is
    EROFS.  It used to be an ERROR and a write error per request, readyz OK, and every
    response teed again; now caching stops (read-only) once, and resumes by itself."""
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    real_write = files.write_new
    ro = {"on": True}
    statvfs = _mounted(ro)
    monkeypatch.setattr(files, "write_new", _erofs)
    monkeypatch.setattr(space_mod.os, "statvfs", statvfs)
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("ADDED", pod("b", rv=11)))
    reason = small.not_ready() or ""
    assert "caching stopped (read-only)" in reason and "Read-only file system" in reason
    assert sample(small, "yurthub_cache_stopped", reason="read-only") == 1
    assert sample(small, "yurthub_cache_write_errors_total") == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # Nothing would land: the next responses pass untouched, no entry is opened.
    assert not feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 12))
    monkeypatch.setattr(files, "write_new", real_write)
    small.writer.space.check()
    assert small.not_ready() is not None  # still mounted read-only
    ro["on"] = False
    small.writer.space.check()
    assert small.not_ready() is None
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=11)], 12))
    assert ("default", "b") in small.store.entries(PODS)


def test_read_only_without_the_mount_flag_stays_stopped_until_writable(small, monkeypatch,
                                                                       caplog):
    """ext4's errors=remount-ro on newer kernels (``emergency_ro``): every write is EROFS
    while statvfs still says read-write.  Caching resumed within a second of each stop,
    readyz said OK, and the next response stopped it again with another WARNING."""
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    ro = {"on": True}
    real_open, real_write = os.open, files.write_new

    def open_(path, flags, *args, **kw):  # the disk, at the process edge
        if ro["on"] and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args, **kw)
    monkeypatch.setattr(files, "write_new", _erofs)
    monkeypatch.setattr(space_mod.os, "open", open_)
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("ADDED", pod("b", rv=11)))
    assert "caching stopped (read-only)" in (small.not_ready() or "")
    for _ in range(3):
        small.writer.space.check()
        assert "caching stopped (read-only)" in (small.not_ready() or "")
    assert not [r for r in caplog.records if "caching resumed" in r.getMessage()]
    ro["on"] = False
    monkeypatch.setattr(files, "write_new", real_write)
    small.writer.space.check()
    assert small.not_ready() is None
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=11)], 12))
    assert ("default", "b") in small.store.entries(PODS)
    assert not [n for n in os.listdir(small.store.root) if n.startswith(".rw-probe")]


def test_read_only_before_a_new_collection_had_its_directory_still_resumes(small,
                                                                            monkeypatch):
    """EROFS making the first directory of a collection: its path never existed, and the
    look at whether the file system is writable again must not fail on it for ever."""
    feed = Feeder(small)
    ro = {"on": True}
    statvfs = _mounted(ro)
    monkeypatch.setattr(files, "open_dir", _erofs)
    monkeypatch.setattr(space_mod.os, "statvfs", statvfs)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert "caching stopped (read-only)" in (small.not_ready() or "")
    monkeypatch.undo()
    monkeypatch.setattr(space_mod.os, "statvfs", statvfs)
    ro["on"] = False
    small.writer.space.check()
    assert small.not_ready() is None
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert ("default", "a") in small.store.entries(PODS)


def test_a_write_error_in_a_watch_batch_is_reported_once(small, monkeypatch, caplog):
    """An I/O error staging a watch event: one failure, one ERROR line, one write error --
    not a second report when the batch's commit meets the same aborted transaction."""
    feed = Feeder(small)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))

    def eio(*args, **kw):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files, "write_new", eio)
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("ADDED", pod("b", rv=11)))
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "Input/output error" in errors[0], errors
    assert sample(small, "yurthub_cache_write_errors_total") == 1
