"""The cloud's resourceVersions going backwards (etcd restored from a backup): a list or a
get asked for after the cache saw its newest version is the cloud's whole truth, as a
reflector's Replace takes it, whatever the versions say."""

from __future__ import annotations

import json
import time

import pytest

from tests.unit.cache.conftest import PODS, event_line, list_body, pod
from yurthub.cache.views import parse_selectors
from yurthub.errors import Gone
from yurthub.kube.resources import builtin

POD_RT = builtin("", "v1", "pods")
NODE_SEL = "fieldSelector=spec.nodeName%3Dnode-a"


def offline(manager, ns="", labels="", fields=""):
    """What an offline list answers: (its resourceVersion, stale reason, {name: phase})."""
    want = parse_selectors(ns, labels, fields, POD_RT)
    page = manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
    items = [json.loads(b) for b in manager.reader.bodies(PODS, page.keys)]
    return (page.resource_version, page.freshness.stale,
            {i["metadata"]["name"]: i["status"]["phase"] for i in items})


def test_a_list_after_a_restore_replaces_what_the_cache_holds(manager, feed):
    feed.respond("/api/v1/pods", list_body(
        [pod("a", rv=900), pod("b", rv=950), pod("c", rv=990)], 1000))
    # etcd restored from a backup taken at 500: b and c never existed there, a is older,
    # d is new.  A client-go reflector relists (its watch from 1000 is "too large").
    feed.respond("/api/v1/pods", list_body(
        [pod("a", rv=400, phase="Pending"), pod("d", rv=450)], 500))
    rv, stale, items = offline(manager)
    assert items == {"a": "Pending", "d": "Running"}
    assert (rv, stale) == (500, "")


def test_a_restore_with_bumped_revisions_replaces_what_the_cache_holds(manager, feed):
    # etcdutl snapshot restore --bump-revision: the cloud's versions go on upwards, but
    # the objects carry their versions of the backup, older than the cached ones.
    feed.respond("/api/v1/pods", list_body(
        [pod("a", rv=900, phase="Failed"), pod("b", rv=950)], 1000))
    feed.respond("/api/v1/pods", list_body([pod("a", rv=400, phase="Pending")], 1_000_500))
    rv, stale, items = offline(manager)
    assert items == {"a": "Pending"} and (rv, stale) == (1_000_500, "")


def test_a_restore_leaves_other_views_stale_and_restarts_the_history(manager, feed):
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=900)], 1000))
    feed.respond("/api/v1/pods?labelSelector=app%3Ddb",
                 list_body([pod("z", node="node-b", rv=800, labels={"app": "db"})], 1000))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=1000&" + NODE_SEL,
                 event_line("MODIFIED", pod("a", rv=1001, phase="Failed")))
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=400)], 500))
    rv, stale, items = offline(manager, fields="spec.nodeName=node-a")
    assert items == {"a": "Running"} and (rv, stale) == (500, "")
    # The other view holds a past the cloud may no longer have: it says so offline.
    _, stale, _ = offline(manager, labels="app=db")
    assert "went back from 1001 to 500" in stale
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    # The old timeline's events are not replayed to a watch of the new one...
    assert manager.reader.watch_start(PODS, POD_RT, want, "500").events == []
    with pytest.raises(Gone):  # ...and a resume from before the list cannot be served
        manager.reader.watch_start(PODS, POD_RT, want, "450")


def test_a_get_after_a_restore_replaces_the_newer_cached_object(manager, feed):
    feed.respond("/api/v1/namespaces/default/pods/a", json.dumps(pod("a", rv=900)).encode())
    feed.respond("/api/v1/namespaces/default/pods/a",
                 json.dumps(pod("a", rv=400, phase="Pending")).encode())
    body, _ = manager.reader.get(PODS, "default", "a")
    assert json.loads(body)["metadata"]["resourceVersion"] == "400"
    assert json.loads(body)["status"]["phase"] == "Pending"


def test_answers_asked_for_before_a_newer_version_arrived_never_go_back(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=6)], 9))
    asked = time.monotonic()
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("MODIFIED", pod("a", rv=12, phase="Failed"))
                 + event_line("ADDED", pod("c", rv=13)))
    # A get and a list sent before the events arrived, answered after them.
    feed.respond("/api/v1/namespaces/default/pods/a", json.dumps(pod("a", rv=8)).encode(),
                 asked_at=asked)
    feed.respond("/api/v1/pods", list_body([pod("a", rv=8), pod("b", rv=6)], 11),
                 asked_at=asked)
    rv, stale, items = offline(manager)
    assert items == {"a": "Failed", "b": "Running", "c": "Running"} and stale == ""


def test_a_watch_caches_lagging_list_is_no_restore(manager, feed):
    # A pod's status patch answered at 105 (etcd); a list at resourceVersion=0 answered by
    # a watch cache still at 103: the list is the truth as of 103, and no other view of
    # the collection is taken for a past the cloud lost.
    feed.respond("/api/v1/pods?labelSelector=app%3Ddb",
                 list_body([pod("z", node="node-b", rv=90, labels={"app": "db"})], 100))
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=100)], 100))
    feed.respond("/api/v1/namespaces/default/pods/a/status",
                 json.dumps(pod("a", rv=105, phase="Succeeded")).encode(), method="PATCH")
    feed.respond("/api/v1/pods?resourceVersion=0&" + NODE_SEL,
                 list_body([pod("a", rv=101)], 103))
    assert offline(manager, fields="spec.nodeName=node-a") == (103, "", {"a": "Running"})
    assert offline(manager, labels="app=db")[1] == ""


def test_a_lagging_list_never_makes_a_resume_replay_a_change_twice(manager, feed):
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=100)], 100))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=100&" + NODE_SEL,
                 event_line("MODIFIED", pod("a", rv=104, phase="Failed")))
    # A reflector's relist answered by a watch cache at 102; its watch brings 104 again.
    feed.respond("/api/v1/pods?resourceVersion=0&" + NODE_SEL, list_body([pod("a", rv=100)],
                                                                         102))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=102&" + NODE_SEL,
                 event_line("MODIFIED", pod("a", rv=104, phase="Failed")))
    assert offline(manager, fields="spec.nodeName=node-a") == (104, "", {"a": "Failed"})
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    with pytest.raises(Gone):  # not MODIFIED a@104 twice
        manager.reader.watch_start(PODS, POD_RT, want, "102")
    assert manager.reader.watch_start(PODS, POD_RT, want, "104").events == []


def test_after_a_get_showed_the_restore_no_lost_change_is_replayed(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 10))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=10",
                 event_line("MODIFIED", pod("a", rv=12, phase="Failed"))
                 + event_line("ADDED", pod("b", rv=14)))
    # etcd restored at 8: a get shows it first, then a reflector lists and watches again.
    feed.respond("/api/v1/namespaces/default/pods/a", json.dumps(pod("a", rv=5)).encode())
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("c", rv=11)], 11))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=11",
                 event_line("ADDED", pod("d", rv=13)))
    assert offline(manager) == (13, "", {"a": "Running", "c": "Running", "d": "Running"})
    want = parse_selectors("", "", "", POD_RT)
    # Not MODIFIED a@12, a change the restore lost: the history restarted, a resume from
    # before the lost versions is refused (the client lists again), from now on it goes on.
    with pytest.raises(Gone):
        manager.reader.watch_start(PODS, POD_RT, want, "11")
    assert manager.reader.watch_start(PODS, POD_RT, want, "13").events == []


def test_the_node_lease_going_back_is_a_proof_for_every_collection(manager, feed):
    """The hub's Lease renewal answered at 500 after versions above 1000 were seen: the
    cached pods, which no answer of their own showed going back, hold a lost past."""
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=900)], 1000))
    feed.respond("/api/v1/pods?watch=true&resourceVersion=1000&" + NODE_SEL,
                 event_line("MODIFIED", pod("a", rv=1001, phase="Failed")))
    manager.writer.went_back(500, time.monotonic(), "the node Lease renewed at 500",
                             lambda ck: False)
    assert manager.writer.wait_idle(10)
    _, stale, items = offline(manager, fields="spec.nodeName=node-a")
    assert "went back from 1001 to 500" in stale and items == {"a": "Failed"}
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    with pytest.raises(Gone):  # the lost MODIFIED a@1001 is never replayed
        manager.reader.watch_start(PODS, POD_RT, want, "1000")
    # The restored cloud's list makes the view fresh again, and whole: Replace.
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=450)], 520))
    rv, stale, items = offline(manager, fields="spec.nodeName=node-a")
    assert (rv, stale, items) == (520, "", {"a": "Running"})


def test_the_node_lease_leaves_a_collection_newer_than_it_alone(manager, feed):
    feed.respond("/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=400)], 450))
    manager.writer.went_back(500, time.monotonic(), "the node Lease renewed at 500",
                             lambda ck: False)
    assert manager.writer.wait_idle(10)
    assert offline(manager, fields="spec.nodeName=node-a")[:2] == (450, "")
