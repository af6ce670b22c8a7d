"""Responses teed into the cache and read back as the apiserver would answer them.

Everything is real here but the network: real tees and pipes, the writer thread, the
DiskStore on tmp_path, the offline reader.
"""

from __future__ import annotations

import json
import os
import stat
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
from yurthub.cache.views import parse_selectors
from yurthub.errors import Gone, NotFound, ServiceUnavailable
from yurthub.storage import CollectionKey


def test_list_is_cached_whole_with_type_meta(manager, feed):
    pods = [pod("a", rv=5), pod("b", rv=6), pod("c", node="node-b", rv=7)]
    assert feed.respond("/api/v1/pods", list_body(pods, 9))
    assert stored(manager) == {("default", "a"): 5, ("default", "b"): 6, ("default", "c"): 7}
    body = manager.store.read(PODS, "default", "a")
    obj = json.loads(body)
    assert obj["kind"] == "Pod" and obj["apiVersion"] == "v1"
    expected = {k: v for k, v in pods[0].items() if k not in ("kind", "apiVersion")}
    assert {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} == expected
    page, items = listed(manager, fields="spec.nodeName=node-a")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert page.kind == "PodList" and page.resource_version == 9


def test_files_and_directories_are_private(manager, feed, tmp_path):
    feed.respond("/api/v1/pods", list_body([pod("a")], 3))
    root = tmp_path / "c"
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode) == 0o700
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) == 0o600, f


def test_relist_removes_what_is_gone_and_keeps_what_is_newer(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=6)], 9))
    # A watch event (rv 12) lands before a relist snapshot taken at rv 11: the relist was
    # asked for before the event arrived, its answer came after it.
    asked = time.monotonic()
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("MODIFIED", pod("a", rv=12, phase="Failed")))
    feed.respond("/api/v1/pods", list_body([pod("a", rv=8)], 11), asked_at=asked)
    assert stored(manager) == {("default", "a"): 12}
    assert json.loads(manager.store.read(PODS, "default", "a"))["status"]["phase"] == "Failed"


def test_an_empty_list_is_an_empty_collection_not_a_missing_one(manager, feed):
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([], 4))
    page, items = listed(manager, fields="spec.nodeName=node-a")
    assert items == [] and page.resource_version == 4
    with pytest.raises(ServiceUnavailable):  # a wider question was never answered
        listed(manager)


def test_lists_with_different_selectors_do_not_corrupt_each_other(manager, feed):
    a = [pod("a1", labels={"app": "a"}), pod("a2", labels={"app": "a"}, node="node-b")]
    b = [pod("b1", labels={"app": "b"})]
    feed.respond("/api/v1/pods?labelSelector=app%3Da", list_body(a, 20))
    feed.respond("/api/v1/pods?labelSelector=app%3Db", list_body(b, 21))
    _, got_a = listed(manager, labels="app=a")
    _, got_b = listed(manager, labels="app=b")
    assert [i["metadata"]["name"] for i in got_a] == ["a1", "a2"]
    assert [i["metadata"]["name"] for i in got_b] == ["b1"]
    # A narrower question is answered from the wider view, with the exact selectors.
    _, narrow = listed(manager, labels="app=a", fields="spec.nodeName=node-b")
    assert [i["metadata"]["name"] for i in narrow] == ["a2"]
    # A relist of app=a that lost a2 removes a2 but leaves app=b alone.
    feed.respond("/api/v1/pods?labelSelector=app%3Da", list_body(a[:1], 22))
    assert {n for _, n in stored(manager)} == {"a1", "b1"}
    with pytest.raises(ServiceUnavailable):
        listed(manager, labels="app=c")


def test_paged_list_is_committed_only_after_the_last_page(manager, feed):
    pods = [pod(f"p{i}", rv=i + 1) for i in range(5)]
    feed.respond("/api/v1/pods?limit=2", list_body(pods[:2], 30, cont="t1"))
    assert stored(manager) == {}  # nothing of a list is visible before its end
    feed.respond("/api/v1/pods?limit=2&continue=t1", list_body(pods[2:4], 30, cont="t2"))
    feed.respond("/api/v1/pods?limit=2&continue=t2", list_body(pods[4:], 30))
    assert sorted(n for _, n in stored(manager)) == ["p0", "p1", "p2", "p3", "p4"]
    page, items = listed(manager, limit=2)
    assert len(items) == 2 and page.continue_token and page.remaining == 3
    _, rest = listed(manager, limit=10, cont=page.continue_token)
    assert [i["metadata"]["name"] for i in rest] == ["p2", "p3", "p4"]


def test_a_broken_list_leaves_the_previous_state_intact(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=6)], 9))
    full = list_body([pod("a", rv=15), pod("c", rv=16)], 19)
    feed.respond("/api/v1/pods", [full[: len(full) // 2]], whole=False)
    assert stored(manager) == {("default", "a"): 5, ("default", "b"): 6}
    page, _ = listed(manager)
    assert page.resource_version == 9


def test_a_torn_body_that_claims_to_be_whole_is_not_committed(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    body = list_body([pod("z", rv=15)], 19)
    feed.respond("/api/v1/pods", body[:-3])  # the stream ended cleanly but the JSON did not
    assert stored(manager) == {("default", "a"): 5}


def test_gzip_bodies_are_decompressed_on_the_cache_side(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("g", rv=4)], 4), gz=True)
    assert stored(manager) == {("default", "g"): 4}


def test_watch_events_update_the_cache_and_its_history(manager, feed):
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    stream = (event_line("ADDED", pod("b", rv=10)) + event_line("MODIFIED", pod("a", rv=11))
              + event_line("DELETED", pod("b", rv=12))
              + event_line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": "14"}}))
    half = len(stream) // 2
    feed.respond("/api/v1/pods?watch=1&resourceVersion=9&" + NODE_SEL,
                 [stream[:half], stream[half:]])
    assert stored(manager) == {("default", "a"): 11}
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    start = manager.reader.watch_start(PODS, POD_RT, want, "9")
    assert [(t, json.loads(o)["metadata"]["resourceVersion"]) for t, o in start.events] == [
        ("ADDED", "10"), ("MODIFIED", "11"), ("DELETED", "12")]
    assert start.resource_version == 14
    assert manager.reader.watch_start(PODS, POD_RT, want, "11").events[0][0] == "DELETED"
    with pytest.raises(Gone):
        manager.reader.watch_start(PODS, POD_RT, want, "8")


def test_replay_follows_objects_in_and_out_of_a_selector(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5, labels={"app": "x"})], 9))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("MODIFIED", pod("a", rv=10, labels={"app": "y"}))
                 + event_line("MODIFIED", pod("a", rv=11, labels={"app": "x"})))
    want = parse_selectors("", "app=x", "", POD_RT)
    start = manager.reader.watch_start(PODS, POD_RT, want, "9")
    assert [t for t, _ in start.events] == ["DELETED", "ADDED"]


def test_a_watch_error_or_torn_frame_marks_the_view_stale(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("ADDED", pod("b", rv=10)) + b'{"type":"ADDED","obj')
    want = parse_selectors("", "", "", POD_RT)
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
    assert "torn" in page.freshness.stale
    assert "may be incomplete" in page.freshness.warning()
    with pytest.raises(Gone):  # history after a gap cannot be trusted
        manager.reader.watch_start(PODS, POD_RT, want, "9")
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=10)], 20))
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
    assert page.freshness.stale == ""


def test_what_must_never_be_cached(manager, feed):
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
    feed.respond("/api/v1/pods", list_body([pod("ok")], 9))
    assert {n for _, n in stored(manager)} == {"ok"}
    feed.respond("/api/v1/namespaces/default/pods/x", json.dumps(status).encode())
    bad = pod("Not_A_Name")
    feed.respond("/api/v1/namespaces/default/pods/Not_A_Name", json.dumps(bad).encode())
    assert {n for _, n in stored(manager)} == {"ok"}
    assert not feed.respond("/api/v1/pods", list_body([pod("other")], 9), ua="curl/8")
    assert not feed.respond("/api/v1/namespaces/default/pods/ok", b"{}", method="DELETE")
    table = "application/json;as=Table;v=v1;g=meta.k8s.io"
    assert not feed.respond("/api/v1/pods", b'{"kind":"Table"}', accept=table,
                            content_type=table)
    # ... but a Table request that the server answered with a plain list is a plain list.
    assert feed.respond("/api/v1/pods", list_body([pod("ok")], 9),
                        accept=table + ",application/json")


def test_tables_that_kube_apiserver_labels_plain_json_are_never_stored(manager, feed):
    """kube-apiserver answers ``as=Table`` with ``Content-Type: application/json``: the
    body, not the header, says it is a Table, and a Table must not pass for an empty list."""
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
             "metadata": {"resourceVersion": "12"}, "columnDefinitions": [],
             "rows": [{"cells": ["b"], "object": {"kind": "PartialObjectMetadata",
                                                   "apiVersion": "meta.k8s.io/v1",
                                                   "metadata": {"name": "b"}}}]}
    feed.respond("/api/v1/pods", json.dumps(table).encode(), accept=table_accept)
    feed.respond("/api/v1/namespaces/default/pods/b", json.dumps(table).encode(),
                 accept=table_accept)
    page, items = listed(manager)
    assert [i["metadata"]["name"] for i in items] == ["a"] and page.resource_version == 9
    assert stored(manager) == {("default", "a"): 5}
    # A watch asking for Tables sends Tables (its bookmarks too): it is not cached at all.
    bookmark = dict(table, rows=[])
    assert not feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                            event_line("BOOKMARK", bookmark), accept=table_accept)
    assert listed(manager)[0].resource_version == 9


def _table(objs: list[dict], rv: int, cont: str = "") -> bytes:
    """A Table as kube-apiserver encodes it (kind first, rows last), with whole objects."""
    meta = {"resourceVersion": str(rv), **({"continue": cont} if cont else {})}
    return json.dumps({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                       "columnDefinitions": [{"name": "Name", "type": "string"}],
                       "rows": [{"cells": [o["metadata"]["name"]], "object": o}
                                for o in objs]}).encode()


def test_a_tables_whole_objects_are_stored_as_its_list(manager, feed):
    """kubectl's Tables, asked with ``includeObject=Object`` for a cache agent: the rows'
    objects are the list's items, pages and all, so kubectl's columns print offline."""
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    body = _table([pod("a", rv=5), pod("b", rv=6)], 12, cont="next")
    half = len(body) // 2
    assert feed.respond("/api/v1/pods?limit=2&includeObject=Object", [body[:half], body[half:]],
                        accept=table_accept, ua="kubectl/v1.32")
    assert feed.respond("/api/v1/pods?limit=2&continue=next&includeObject=Object",
                        _table([pod("c", rv=7)], 12), accept=table_accept, ua="kubectl/v1.32")
    kubectl = CollectionKey("kubectl", "", "v1", "pods", True)
    want = parse_selectors("", "", "", POD_RT)
    page = manager.reader.list(kubectl, POD_RT, want, limit=None, continue_token="")
    assert page.keys == [("default", "a"), ("default", "b"), ("default", "c")]
    assert page.resource_version == 12
    stored_a = json.loads(manager.store.read(kubectl, "default", "a"))
    assert stored_a == pod("a", rv=5)
    # A get's one-row Table is its object.
    assert feed.respond("/api/v1/namespaces/default/pods/d?includeObject=Object",
                        _table([pod("d", rv=14)], 14), accept=table_accept, ua="kubectl/v1.32")
    assert json.loads(manager.store.read(kubectl, "default", "d"))["metadata"]["name"] == "d"
    # An empty Table is an empty list: the view exists, of no object.
    assert feed.respond("/api/v1/namespaces/empty/pods?includeObject=Object", _table([], 15),
                        accept=table_accept, ua="kubectl/v1.32")
    page = manager.reader.list(kubectl, POD_RT, parse_selectors("empty", "", "", POD_RT),
                               limit=None, continue_token="")
    assert page.keys == []


def test_single_objects_and_their_status_patches(manager, feed):
    feed.respond("/api/v1/namespaces/default/pods/a", json.dumps(pod("a", rv=5)).encode())
    asked = time.monotonic()  # a get sent before the patch's answer, answered after it
    newer = pod("a", rv=7, phase="Succeeded")
    feed.respond("/api/v1/namespaces/default/pods/a/status", json.dumps(newer).encode(),
                 method="PATCH")
    older = pod("a", rv=6, phase="Pending")
    feed.respond("/api/v1/namespaces/default/pods/a", json.dumps(older).encode(),
                 asked_at=asked)
    body, _ = manager.reader.get(PODS, "default", "a")
    assert json.loads(body)["status"]["phase"] == "Succeeded"
    with pytest.raises(NotFound) as e:
        manager.reader.get(PODS, "default", "nope")
    assert e.value.details["name"] == "nope"


def test_pinned_name_list_is_answered_from_a_cached_object(manager, feed):
    feed.respond("/api/v1/namespaces/default/pods/a", json.dumps(pod("a", rv=5)).encode())
    want = parse_selectors("default", "", "metadata.name=a", POD_RT)
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="",
                               pinned_name="a")
    assert page.keys == [("default", "a")]


def test_a_watch_that_resumes_after_a_gap_marks_the_view_stale(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("ADDED", pod("b", rv=10)))
    want = parse_selectors("", "", "", POD_RT)
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
    assert page.freshness.stale == "" and page.resource_version == 10
    # The client saw events up to 30 through another path; the cache did not.
    feed.respond("/api/v1/pods?watch=true&resourceVersion=30",
                 event_line("ADDED", pod("c", rv=31)))
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
    assert "watch resumed at 30 after 10" in page.freshness.stale


def test_the_same_version_again_costs_no_commit_unless_changed_offline(manager, feed):
    body = json.dumps(pod("a", rv=5)).encode()
    feed.respond("/api/v1/namespaces/default/pods/a", body)
    commits = manager.store.stats().commits
    for _ in range(3):  # kubelet gets its objects over and over
        feed.respond("/api/v1/namespaces/default/pods/a", body)
    assert manager.store.stats().commits == commits
    # An offline change keeps the resourceVersion but changes the content ...
    from yurthub.cache.entry import Entry
    entry = Entry(kind="object", ck=PODS, rt=POD_RT)
    changed = {**pod("a", rv=5), "status": {"phase": "Failed"}}
    manager.writer.submit_local(entry, "default", "a", json.dumps(changed).encode(),
                                {"rv": 5, "labels": {}, "fields": {}}).result(10)
    assert json.loads(manager.store.read(PODS, "default", "a"))["status"]["phase"] == "Failed"
    # ... so the cloud's copy of that same version replaces it once the cloud answers again.
    feed.respond("/api/v1/namespaces/default/pods/a", body)
    assert json.loads(manager.store.read(PODS, "default", "a"))["status"]["phase"] == "Running"
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    assert manager.store.entries(PODS)[("default", "a")].meta.get("local") is None


def test_offline_field_selectors_see_every_selectable_field_of_list_items(manager, feed):
    """Lists are indexed from a partial decode where msgspec is there: each selectable
    field must still answer as kube-apiserver would, item shapes odd or not."""
    a = pod("a", phase="Pending")
    a["spec"]["hostNetwork"] = True
    a["spec"]["restartPolicy"] = "Never"
    a["status"]["podIPs"] = [{"ip": "10.0.0.7"}]
    b = pod("b", node="node-b", phase="Running")
    b["spec"].pop("hostNetwork", None)
    b["status"] = None
    c = pod("c")  # waiting for the scheduler: listed online, so offline too
    c["spec"] = {"containers": c["spec"]["containers"], "nodeName": ""}
    c["status"] = {"phase": "Pending"}
    feed.respond("/api/v1/pods", list_body([a, b, c], 40))
    assert set(stored(manager)) == {("default", "a"), ("default", "b"), ("default", "c")}
    for selector, names in [
        ("spec.hostNetwork=true", ["a"]), ("spec.hostNetwork=false", ["b", "c"]),
        ("status.podIP=10.0.0.7", ["a"]), ("status.phase=Pending", ["a", "c"]),
        ("status.phase=", ["b"]), ("spec.restartPolicy=Never", ["a"]),
        ("spec.nodeName=node-b", ["b"]), ("metadata.name=b", ["b"]),
        ("spec.nodeName=", ["c"]),
    ]:
        _, items = listed(manager, fields=selector)
        assert [i["metadata"]["name"] for i in items] == names, selector
    # The files hold the whole objects, not the parts the index needed.
    assert json.loads(manager.store.read(PODS, "default", "a"))["spec"] == a["spec"]


def test_a_bookmark_advancing_kubelets_pods_view_is_on_disk_at_once(manager, feed):
    """A crash right after a bookmark must not leave kubelet's pods view behind the version
    kubelet resumes from: online, that gap is one the hub cannot tell from a real one, and
    the view stayed stale (the Autonomy condition False) until a relist, which a healthy
    reflector never does."""
    assert feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "40"}}
    assert feed.respond("/api/v1/pods?watch=1&resourceVersion=9&allowWatchBookmarks=true&"
                        + NODE_SEL, event_line("BOOKMARK", bookmark))
    views = {v["key"]["fields"]: v["rv"] for v in manager.store.state(PODS)["views"]}
    assert views == {"spec.nodeName=node-a": 40}
