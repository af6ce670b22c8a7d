"""Watch streams: initial events, resumption, 410, bookmarks, selectors, timeouts, endings."""

from __future__ import annotations

import json
import queue
import threading

import pytest
from sandbox_api_helpers import Client, make_api

from kubesandbox import rest
from kubesandbox.wire import Request
from yurthub.errors import BadRequest, Invalid

CMS = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"


class Watcher:
    """Iterates a watch stream in a thread; events arrive on a queue."""

    def __init__(self, call, path, closed=None, **query):
        self.closed = closed or threading.Event()
        req_query = {"watch": "1", **query}
        resp = call.api.handle(Request("GET", path, {k: [str(v)] for k, v in req_query.items()},
                                       {}), self.closed.is_set)
        self.status = resp.status
        self.events: queue.Queue = queue.Queue()
        self.done = threading.Event()

        def run():
            try:
                for line in resp.stream:
                    assert line.endswith(b"\n") and line.count(b"\n") == 1
                    self.events.put(json.loads(line))
            finally:
                self.done.set()
        threading.Thread(target=run, daemon=True).start()

    def next(self, timeout=5.0):
        return self.events.get(timeout=timeout)

    def take(self, n, timeout=5.0):
        return [self.next(timeout) for _ in range(n)]

    def kinds(self, n):
        return [(e["type"], e["object"]["metadata"].get("name")) for e in self.take(n)]


def cm(name, **labels):
    return {"metadata": {"name": name, "labels": labels}, "data": {}}


def test_without_version_sends_current_objects_then_changes(call):
    w = Watcher(call, "/api/v1/namespaces/default/pods", timeoutSeconds=5)
    initial = w.take(6)
    assert {e["type"] for e in initial} == {"ADDED"}
    assert all(e["object"]["kind"] == "Pod" for e in initial)  # events carry kind/apiVersion
    call("POST", "/api/v1/namespaces/default/pods",
         {"metadata": {"name": "later"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    assert w.kinds(1) == [("ADDED", "later")]


def test_resume_from_a_version_gets_exactly_what_came_after(call):
    call("POST", CMS, cm("a"))
    rv = call("GET", CMS).body["metadata"]["resourceVersion"]
    call("PATCH", f"{CMS}/a", {"data": {"x": "1"}}, content_type=MERGE)
    call("POST", CMS, cm("b"))
    call("DELETE", f"{CMS}/a")
    w = Watcher(call, CMS, resourceVersion=rv, timeoutSeconds=5)
    events = w.take(3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert events[0]["object"]["data"] == {"x": "1"}


def test_a_version_ahead_of_the_store_gets_only_the_changes_after_it(call):
    # kube-apiserver sends only changes newer than the version asked, even one it has not
    # reached yet (a client may know it from another apiserver, or from a cache's answer).
    rv = int(call("GET", CMS).body["metadata"]["resourceVersion"])
    w = Watcher(call, CMS, resourceVersion=str(rv + 1), timeoutSeconds=5)
    call("POST", CMS, cm("a"))     # at rv + 1: the client said it knows it
    call("POST", CMS, cm("b"))
    assert w.kinds(1) == [("ADDED", "b")]


def test_too_old_version_is_an_error_event_with_410(api, call):
    rv = call("GET", CMS).body["metadata"]["resourceVersion"]
    call("POST", CMS, cm("a"))
    floor = api.store.compact()
    w = Watcher(call, CMS, resourceVersion=rv)
    ev = w.next()
    assert ev["type"] == "ERROR"
    assert ev["object"] == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure",
                            "message": f"too old resource version: {rv} ({floor})",
                            "reason": "Expired", "code": 410}
    assert w.done.wait(2) and w.events.empty()


def test_bookmarks_when_asked_and_only_then(call):
    rv = call("GET", CMS).body["metadata"]["resourceVersion"]
    w = Watcher(call, CMS, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds=5)
    bm = w.next()
    assert bm == {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
                                                 "metadata": {"resourceVersion": rv}}}
    call("POST", CMS, cm("a"))
    events = [w.next() for _ in range(3)]
    added = [e for e in events if e["type"] == "ADDED"]
    later = [e for e in events if e["type"] == "BOOKMARK"]
    assert added and later
    assert int(later[-1]["object"]["metadata"]["resourceVersion"]) >= \
        int(added[0]["object"]["metadata"]["resourceVersion"])
    quiet = Watcher(call, CMS, resourceVersion=rv, timeoutSeconds=1)
    assert quiet.kinds(1) == [("ADDED", "a")]
    assert quiet.done.wait(3) and quiet.events.empty()


def test_a_negative_timeout_ends_the_watch_at_once():
    # kube-apiserver keeps a negative timeoutSeconds (only 0 is "unset"): its deadline has
    # passed, and the watch ends rather than living for minRequestTimeout (an hour here)
    api = make_api()
    api.watch_timeout = 3600
    w = Watcher(Client(api), CMS, timeoutSeconds=-5)
    assert w.done.wait(20)


@pytest.mark.parametrize("yes", ["true", "1", "True"])
def test_send_initial_events_ends_with_an_annotated_bookmark(call, yes):
    # a boolean option as kube-apiserver converts it: anything but "0" or "false" is true
    w = Watcher(call, "/api/v1/nodes", sendInitialEvents=yes, allowWatchBookmarks=yes,
                resourceVersionMatch="NotOlderThan", timeoutSeconds=5)
    first = w.take(3)
    assert [e["type"] for e in first] == ["ADDED", "ADDED", "BOOKMARK"]
    assert first[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_selectors_turn_leaving_into_deleted_and_entering_into_added(call):
    call("POST", CMS, cm("a", team="x"))
    rv = call("GET", CMS).body["metadata"]["resourceVersion"]
    w = Watcher(call, CMS, resourceVersion=rv, labelSelector="team=x", timeoutSeconds=5)
    call("PATCH", f"{CMS}/a", {"metadata": {"labels": {"team": "y"}}}, content_type=MERGE)
    call("POST", CMS, cm("other", team="z"))
    call("PATCH", f"{CMS}/a", {"metadata": {"labels": {"team": "x"}}}, content_type=MERGE)
    left, entered = w.take(2)
    assert left["type"] == "DELETED" and entered["type"] == "ADDED"
    # the DELETED carries the last state that matched, at the version that made it leave
    assert left["object"]["metadata"]["labels"] == {"team": "x"}
    assert int(left["object"]["metadata"]["resourceVersion"]) > int(rv)
    fw = Watcher(call, "/api/v1/pods", fieldSelector="spec.nodeName=node-0001", timeoutSeconds=5)
    assert len(fw.take(3)) == 3
    with pytest.raises(queue.Empty):
        fw.next(timeout=0.2)


def test_timeout_and_closed_connection_end_the_stream(call):
    w = Watcher(call, CMS, timeoutSeconds=1)
    assert w.done.wait(3)
    closed = threading.Event()
    w2 = Watcher(call, CMS, closed=closed)
    closed.set()
    call.api.store.wake()
    assert w2.done.wait(3)


def test_a_watcher_the_history_left_behind_is_ended():
    call = Client(make_api(history_size=2))
    rv = call("GET", CMS).body["metadata"]["resourceVersion"]
    resp = call.api.handle(Request("GET", CMS, {"watch": ["1"], "resourceVersion": [rv]}, {}))
    call("POST", CMS, cm("first"))
    assert json.loads(next(resp.stream))["type"] == "ADDED"
    # while this watcher does not read, the history moves past it
    for i in range(40):
        call("POST", CMS, cm(f"c{i}"))
    assert list(resp.stream) == []


def test_bad_watch_parameters_fail_before_the_stream(call):
    with pytest.raises(BadRequest):
        call.api.handle(Request("GET", CMS, {"watch": ["1"], "resourceVersion": ["x"]}, {}))
    with pytest.raises(Invalid, match="sendInitialEvents requires setting "
                                      "resourceVersionMatch to NotOlderThan"):
        call.api.handle(Request("GET", CMS, {"watch": ["1"], "sendInitialEvents": ["true"]}, {}))
    with pytest.raises(BadRequest, match="allowWatchBookmarks"):
        call.api.handle(Request("GET", CMS, {"watch": ["1"], "sendInitialEvents": ["true"],
                                             "resourceVersionMatch": ["NotOlderThan"]}, {}))


def test_a_watch_list_waits_for_a_version_then_ends_504_too_large(api, call, monkeypatch):
    # kube-apiserver's cacher waits for a watch-list's version "not older than" it, and
    # ends the watch with an ERROR event when it does not reach it in time; it never sends
    # initial events older than the version asked.
    monkeypatch.setattr(rest, "TOO_LARGE_WAIT", 0.05)
    rv = api.store.rv
    w = Watcher(call, CMS, sendInitialEvents="true", allowWatchBookmarks="true",
                resourceVersionMatch="NotOlderThan", resourceVersion=str(rv + 100))
    ev = w.next()
    assert ev["type"] == "ERROR", ev
    assert ev["object"]["code"] == 504 and ev["object"]["reason"] == "Timeout"
    assert ev["object"]["message"] == (
        f"Timeout: Too large resource version: {rv + 100}, current: {rv}")
    assert ev["object"]["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert w.done.wait(2) and w.events.empty()
    # A version the store reaches meanwhile: the initial events at it.
    monkeypatch.setattr(rest, "TOO_LARGE_WAIT", 5.0)
    w = Watcher(call, CMS, sendInitialEvents="true", allowWatchBookmarks="true",
                resourceVersionMatch="NotOlderThan", resourceVersion=str(rv + 1))
    call("POST", CMS, cm("a"))
    first = [w.next()]
    while first[-1]["type"] == "ADDED":
        first.append(w.next())
    assert first[-1]["type"] == "BOOKMARK"
    assert "a" in [e["object"]["metadata"]["name"] for e in first[:-1]]
    assert int(first[-1]["object"]["metadata"]["resourceVersion"]) >= rv + 1


def test_a_bookmark_comes_right_before_the_watch_ends(api, call):
    # kube-apiserver's cacheWatcher sends one 2 s before the deadline besides one a minute.
    api.bookmark_interval = 60.0
    rv = call("GET", CMS).body["metadata"]["resourceVersion"]
    w = Watcher(call, CMS, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds=3)
    assert w.done.wait(10)
    got = [w.events.get_nowait() for _ in range(w.events.qsize())]
    assert [e["type"] for e in got] == ["BOOKMARK"], got
    assert got[0]["object"]["metadata"]["resourceVersion"] == rv
