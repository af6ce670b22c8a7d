"""The cache writer against what goes wrong: misshapen answers, bugs on one entry, big
lists and the collector, pagers that stop, odd leases and kinds.

Everything is real here but the network, as in test_cache_flow.py.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.unit.cache.conftest import (
    NODE_SEL,
    POD_RT,
    PODS,
    event_line,
    list_body,
    listed,
    pod,
    stored,
)
from yurthub.cache import handlers, list_handler
from yurthub.cache.views import parse_selectors
from yurthub.kube.requestinfo import parse_request_info
from yurthub.storage import CollectionKey


@pytest.mark.parametrize("breakage", [
    {"metadata": "a-string"}, {"metadata": {"name": "x", "labels": ["a"]}},
    {"status": 7}, {"spec": []},
])
def test_a_misshapen_item_drops_its_list_and_the_writer_goes_on(manager, feed, breakage):
    feed.respond("/api/v1/pods", list_body([pod("old")], 50))
    odd = pod("odd")
    odd.update(breakage)
    feed.respond("/api/v1/pods", list_body([pod("new"), odd], 51))
    want = {"old"}  # bad metadata: the list is not cached at all
    if "status" in breakage or "spec" in breakage:
        want = {"new", "odd"}  # an odd status or spec: cached, its fields select as empty
    assert {n for _, n in stored(manager)} == want
    feed.respond("/api/v1/pods", list_body([pod("later")], 52))  # the writer is alive
    assert {n for _, n in stored(manager)} == {"later"}


def test_odd_bookmarks_are_ignored_and_the_watch_goes_on(manager, feed):
    """A bookmark whose metadata or resourceVersion makes no sense advances nothing, and
    never takes the writer (and with it the hub) down."""
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    stream = (event_line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": "x"})
              + event_line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": "abc"}})
              + event_line("MODIFIED", pod("a", rv=11)))
    feed.respond("/api/v1/pods?watch=1&resourceVersion=9&" + NODE_SEL, stream)
    assert stored(manager) == {("default", "a"): 11}
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    assert manager.reader.watch_start(PODS, POD_RT, want, "9").resource_version == 11


def test_odd_discovery_documents_and_kinds_never_stop_the_writer(manager, feed):
    odd = [
        {"kind": "APIResourceList", "groupVersion": "x.io/v1", "resources": ["a", 3, None]},
        {"kind": "APIResourceList", "groupVersion": "x.io/v1", "resources": {"name": "w"}},
        {"kind": "APIResourceList", "groupVersion": "x.io/v1",
         "resources": [{"name": 5, "kind": []}, {"name": "widgets", "kind": 7}]},
        {"kind": "APIGroupDiscoveryList", "items": [{"metadata": "m"}, 1,
                                                    {"metadata": {"name": "y.io"},
                                                     "versions": [{"resources": [
                                                         {"resource": "gadgets",
                                                          "responseKind": "x"}]}]}]},
    ]
    for doc in odd:
        feed.respond("/apis/x.io/v1", json.dumps(doc).encode())
    feed.respond("/apis/x.io/v1", json.dumps({
        "kind": "APIResourceList", "groupVersion": "x.io/v1",
        "resources": [{"name": "things", "kind": "Thing", "namespaced": False}]}).encode())
    assert manager.resource_type("x.io", "v1", "things").namespaced is False
    assert manager.resource_type("x.io", "v1", "widgets").namespaced is False
    # An object whose kind is not a string is still stored; its type is not learned from it.
    weird = pod("k", rv=3)
    weird["kind"] = 12
    feed.respond("/api/v1/namespaces/default/pods/k", json.dumps(weird).encode())
    feed.respond("/api/v1/pods", list_body([pod("after", rv=4)], 60))  # the writer is alive
    assert ("default", "after") in stored(manager)


def test_a_bug_on_one_entry_drops_that_entry_not_the_hub(manager, feed, monkeypatch, caplog):
    """A response that trips a bug must not crash-loop the hub (every relist would bring it
    back): the entry is dropped, its collection reloaded from disk, the writer goes on."""

    real = handlers.index_meta

    def buggy(obj, rt):
        if obj["metadata"]["name"] == "boom":
            raise RuntimeError("a bug")
        return real(obj, rt)

    feed.respond("/api/v1/pods", list_body([pod("old", rv=5)], 9))
    monkeypatch.setattr(handlers, "index_meta", buggy)
    errors = manager.metrics.cache_write_errors._value.get()
    feed.respond("/api/v1/pods", list_body([pod("new", rv=10), pod("boom", rv=11)], 12))
    assert stored(manager) == {("default", "old"): 5}  # the previous list, whole
    assert manager.metrics.cache_write_errors._value.get() == errors + 1
    assert "bug while caching" in caplog.text and "a bug" in caplog.text
    # The same bug in a watch event: that watch is dropped; the view is served from what
    # was committed, flagged as possibly incomplete, until its next list.
    feed.respond("/api/v1/pods?watch=1&resourceVersion=9",
                 event_line("ADDED", pod("w", rv=13)) + event_line("MODIFIED", pod("boom", rv=14)))
    page, items = listed(manager)
    assert page.freshness.stale and [i["metadata"]["name"] for i in items] == ["old"]
    monkeypatch.setattr(handlers, "index_meta", real)
    feed.respond("/api/v1/pods", list_body([pod("later", rv=20)], 21))
    assert stored(manager) == {("default", "later"): 20}
    assert not listed(manager)[0].freshness.stale


def test_without_a_pipe_the_answer_is_simply_not_cached(manager, feed, monkeypatch):
    import errno

    from yurthub.cache import tee as teemod

    def no_pipe(flags):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(teemod.os, "pipe2", no_pipe)
    assert not feed.respond("/api/v1/pods", list_body([pod("a")], 3))
    dropped = manager.metrics.cache_entries_dropped.labels("kubelet", "pods", "no-pipe")
    assert dropped._value.get() == 1
    monkeypatch.undo()
    assert feed.respond("/api/v1/pods", list_body([pod("a")], 3))
    assert stored(manager) == {("default", "a"): 10}


def test_a_bug_while_committing_a_batch_reloads_the_collection(manager, feed, monkeypatch):
    from yurthub.cache.collection import CollectionWriter

    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    real = CollectionWriter.flush
    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the commit")
        return real(self)

    monkeypatch.setattr(CollectionWriter, "flush", flaky)
    feed.respond("/api/v1/pods?watch=1&resourceVersion=9&" + NODE_SEL,
                 event_line("MODIFIED", pod("a", rv=11)))
    assert stored(manager) == {("default", "a"): 5}  # the batch was lost...
    page, _ = listed(manager, fields="spec.nodeName=node-a")
    assert page.freshness.stale  # ...and the view says it may be incomplete
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=12)], 13))
    assert stored(manager) == {("default", "a"): 12}
    assert not listed(manager, fields="spec.nodeName=node-a")[0].freshness.stale


def test_a_long_watch_gives_big_events_memory_back_as_the_writer_reads_them(manager, feed):
    """Events of 32 KiB and more are lent to the pipe, not copied: the writer must report
    what it read, or an open watch would hold every big event it ever carried."""
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    info = parse_request_info("GET", "/api/v1/pods", "watch=1&resourceVersion=9&" + NODE_SEL)
    tee = manager.tee_for(info, "kubelet", "application/json", 200,
                          {"Content-Type": "application/json"})
    assert tee is not None
    events = []
    for rv in range(10, 40):
        big = pod("a", rv=rv)
        big["metadata"]["annotations"] = {"blob": "x" * 40_000}
        events.append(event_line("MODIFIED", big))
    baseline = [sys.getrefcount(e) for e in events]
    for e in events:
        tee.write(e)
    del e
    deadline = time.monotonic() + 10
    while stored(manager) != {("default", "a"): 39} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored(manager) == {("default", "a"): 39}  # the watch is still open ...
    assert [sys.getrefcount(e) for e in events] == baseline  # ... and holds none of them
    tee.close(whole=True)
    assert manager.writer.wait_idle(10)


def test_a_big_list_commits_without_a_full_collection_and_restores_the_collector(manager,
                                                                                   feed):
    """A full collection holds the GIL for milliseconds per 10,000 index entries: none may
    start while a big list is committed, and the collector and switch interval must be
    as before afterwards, for a list that committed and for one that broke off."""
    import gc

    from yurthub.cache.mutation import FREEZE_ABOVE

    before = (gc.get_threshold(), sys.getswitchinterval())
    full: list[int] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(info["generation"])

    pods = [pod(f"p-{i}", rv=100 + i, ns=f"ns-{i % 7}") for i in range(FREEZE_ABOVE + 300)]
    body = list_body(pods, 5000)
    gc.freeze()  # as the service does at startup: what lives now is out of the generations
    gc.collect()  # and the next full collection is due as soon as anything survives
    gc.callbacks.append(watch)
    try:
        gc.set_threshold(50, 2, 2)  # without the pause, this list would run many
        assert feed.respond("/api/v1/pods", body)
        assert full == []
        assert gc.get_threshold() == (50, 2, 2)
        assert sys.getswitchinterval() == before[1]
        assert feed.respond("/api/v1/pods", body[:len(body) // 2] + b"}}not json")
        assert full == []
        assert gc.get_threshold() == (50, 2, 2)
        assert sys.getswitchinterval() == before[1]
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*before[0])
        gc.unfreeze()
    assert len(stored(manager)) == len(pods)


def test_a_big_list_leaves_the_collectors_generations_and_reopens_intact(manager, feed,
                                                                         tmp_path):
    """After a list of more than FREEZE_ABOVE objects its index is frozen (no full
    collection walks it), and the index, encoded in pieces, reads back whole."""
    import gc

    from yurthub.cache.mutation import FREEZE_ABOVE
    from yurthub.storage import DiskStore

    pods = [pod(f"p-{i}", rv=100 + i, ns=f"ns-{i % 7}") for i in range(FREEZE_ABOVE + 300)]
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        assert feed.respond("/api/v1/pods", list_body(pods, 5000))
        assert gc.get_freeze_count() > FREEZE_ABOVE
    finally:
        gc.unfreeze()
    want = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["metadata"]["resourceVersion"]
            for p in pods}
    assert stored(manager) == {k: int(v) for k, v in want.items()}
    manager.store.close()
    again = DiskStore(manager.store.root)
    again.open()
    try:
        assert {k: e.meta["rv"] for k, e in again.entries(PODS).items()} == \
            {k: int(v) for k, v in want.items()}
    finally:
        again.close()


def test_a_limit_of_zero_or_less_is_no_limit(manager, feed):
    # kube-apiserver ignores limit <= 0; keys[:-1] dropped the last pod (kubelet kills it).
    assert feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=6)], 9))
    for limit in (0, -1, -4):
        page, items = listed(manager, limit=limit)
        assert [i["metadata"]["name"] for i in items] == ["a", "b"], limit
        assert page.continue_token == ""


def test_a_pager_that_stopped_after_one_page_does_not_hold_back_the_next_list(
        manager, feed, monkeypatch):
    """A client that read one page and went away must not park every later list of the
    collection until the page timeout (a minute: their tees filling the memory limit)."""
    monkeypatch.setattr(list_handler, "PAGE_GAP", 0.0, raising=False)
    pods = [pod(f"p{i}", rv=i + 1) for i in range(5)]
    feed.respond("/api/v1/pods?limit=2", list_body(pods[:2], 30, cont="t1"))  # then nothing
    assert feed.respond("/api/v1/pods", list_body(pods, 31))  # committed, not parked
    assert sorted(n for _, n in stored(manager)) == ["p0", "p1", "p2", "p3", "p4"]
    # The pager's late next page is not cached (its first page was set aside), and waits
    # for nothing.
    assert feed.respond("/api/v1/pods?limit=2&continue=t1", list_body(pods[2:4], 30,
                                                                      cont="t2"))
    assert listed(manager)[0].resource_version == 31


LEASES = CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True)


@pytest.mark.parametrize("body", [
    b"<html>portal</html>",
    b'{"metadata":{"name":"node-a","namespace":"kube-node-lease","labels":"x"}}',
    b'{"metadata":{"name":"node-a","namespace":"kube-node-lease","labels":[1]}}',
], ids=["html", "labels-string", "labels-list"])
def test_a_renewed_lease_that_is_no_object_is_not_cached_and_raises_nothing(manager, body):
    """The health thread hands the cloud's answer to its Lease PUT over as it came; an
    exception there ended the hub (a background thread's crash exits the process)."""
    good = b'{"kind":"Lease","metadata":{"name":"node-a","namespace":"kube-node-lease",' \
           b'"resourceVersion":"3"}}'
    manager.store_object("kubelet", "coordination.k8s.io", "v1", "leases", good)
    manager.store_object("kubelet", "coordination.k8s.io", "v1", "leases", body)
    assert manager.writer.wait_idle(10)
    stored, _ = manager.reader.get(LEASES, "kube-node-lease", "node-a")
    assert json.loads(stored)["metadata"]["resourceVersion"] == "3"


def test_an_object_of_another_kind_is_never_filed_in_a_collection(manager, feed, tmp_path):
    """A watch of pods that delivers an Endpoints (a misbehaving cloud or a proxy that mixed
    two streams): filed under pods it was a file `yurthub cache verify` flags, and one a
    restart quarantines, making the view incomplete.  It is refused; the view is stale."""
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    other = {"kind": "Endpoints", "apiVersion": "v1",
             "metadata": {"name": "b", "namespace": "default", "resourceVersion": "10"}}
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9", event_line("ADDED", other))
    assert stored(manager) == {("default", "a"): 5}
    want = parse_selectors("", "", "", POD_RT)
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
    assert "Endpoints" in page.freshness.stale


def test_a_relist_that_changes_nothing_is_not_a_line_of_the_log(manager, feed, caplog):
    # Every relist (a client's restart, each return of the cloud) was an INFO line per
    # collection; the log keeps one line per change.
    import logging
    caplog.set_level(logging.INFO, logger="yurthub.cache.collection")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno >= logging.INFO and r.getMessage().startswith("cached list")]
    pods = [pod("a", rv=5), pod("b", rv=6)]
    feed.respond("/api/v1/pods", list_body(pods, 9))
    assert len(lines()) == 1                       # new: said
    feed.respond("/api/v1/pods", list_body(pods, 14))
    feed.respond("/api/v1/pods", list_body(pods, 20))
    assert len(lines()) == 1                       # the same objects again: not said
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 21))
    assert lines()[-1].endswith("1 objects at resourceVersion 21 (1 removed)")
    feed.respond("/api/v1/pods", list_body([pod("a", rv=22, phase="Failed")], 23))
    assert len(lines()) == 3                       # changed: said
