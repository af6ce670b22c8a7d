"""A single object's answer that reaches the writer after the watch saw the object go.

A client that patches an object and then deletes it (kubelet: a pod's last status patch,
then its deletion; any client: create, patch, delete) has two responses in flight to the
writer: the patch's, committed when its body ends, and its watch's DELETED.  Found with
lightkube and @kubernetes/client-node through a real hub: the deleted ConfigMap was back
in the next offline list, at its patched version, for good.
"""

from __future__ import annotations

import json
import time

from tests.unit.cache.conftest import PODS, event_line, list_body, pod
from tests.unit.cache.test_cache_flow import POD_RT, listed, stored
from yurthub.cache.entry import Entry
from yurthub.cache.mutation import Mutation

WATCH = "/api/v1/pods?watch=true&resourceVersion=9"


def patched(name: str, rv: int, **kw: object) -> bytes:
    return json.dumps(pod(name, rv=rv, **kw)).encode()  # type: ignore[arg-type]


def test_a_patch_answered_before_the_delete_does_not_bring_the_object_back(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    sent = time.monotonic()  # the patch goes out before its object's events come in
    feed.respond(WATCH, event_line("ADDED", pod("b", rv=10))
                 + event_line("MODIFIED", pod("b", rv=11))
                 + event_line("DELETED", pod("b", rv=12)))
    feed.respond("/api/v1/namespaces/default/pods/b", patched("b", 11), method="PATCH",
                 asked_at=sent)
    assert stored(manager) == {("default", "a"): 5}
    _, items = listed(manager)
    assert [i["metadata"]["name"] for i in items] == ["a"]


def test_only_a_fresh_view_of_the_objects_selectors_proves_it_gone(manager, feed):
    sent = time.monotonic()  # the patches go out before the list comes in
    feed.respond("/api/v1/pods?labelSelector=app%3Dx", list_body([], 20))
    # A view of other labels, a view older than the answer, or none: nothing proves it gone.
    feed.respond("/api/v1/namespaces/default/pods/b", patched("b", 11), method="PATCH",
                 asked_at=sent)
    feed.respond("/api/v1/namespaces/default/pods/c", patched("c", 30, labels={"app": "x"}),
                 method="PATCH", asked_at=sent)
    assert stored(manager) == {("default", "b"): 11, ("default", "c"): 30}
    # One of the view's labels, older than the view that was complete without it: gone.
    feed.respond("/api/v1/namespaces/default/pods/d", patched("d", 15, labels={"app": "x"}),
                 method="PATCH", asked_at=sent)
    assert ("default", "d") not in stored(manager)


def test_a_get_still_heals_an_object_whose_file_was_set_aside(manager, feed):
    # A quarantined file is missing from a fresh view, not gone from the cloud: the next
    # answer naming the object at the version stored is what brings it back.
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5), pod("b", rv=6)], 9))

    def lose_b() -> None:
        coll = manager.writer.collection(Entry(kind="object", ck=PODS, rt=POD_RT))
        coll.apply(Mutation("lost", namespace="default", name="b",
                            meta=manager.store.entries(PODS)[("default", "b")].meta,
                            why="damaged"))
        coll.flush()
        manager.store.quarantine_object(PODS, "default", "b")  # as damage.py sets it aside

    manager.writer.call(lose_b)
    assert manager.writer.wait_idle(10)
    assert stored(manager) == {("default", "a"): 5}
    feed.respond("/api/v1/namespaces/default/pods/b", patched("b", 6))
    assert stored(manager) == {("default", "a"): 5, ("default", "b"): 6}
