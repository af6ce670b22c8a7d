"""A watch that follows its list at once, before the writer has committed that list.

A reflector (and the multiplexer's feed) lists, then watches from the list's version at
once: the watch's response can reach the writer while the list's body is still on its way.
Found through a real hub restarted over its cache, under 5 clients: the multiplexer's copy
of EndpointSlices was marked "watch resumed at 373 after 303" (the version of the run before
the restart), and after a later restart without the cloud the shared state came back from
that copy, 150 versions behind what its clients had already seen.
"""

from __future__ import annotations

from tests.unit.cache.conftest import event_line, list_body, pod
from tests.unit.cache.test_cache_flow import listed
from yurthub.kube.requestinfo import parse_request_info


def _tee(manager, path: str):
    p, _, q = path.partition("?")
    tee = manager.tee_for(parse_request_info("GET", p, q), "kubelet", "application/json",
                          200, {"Content-Type": "application/json"})
    assert tee is not None
    return tee


def test_a_watch_from_the_version_of_a_list_still_being_read_keeps_the_view_fresh(
        manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))  # the run before
    relist = _tee(manager, "/api/v1/pods")
    relist.write(list_body([pod("a", rv=5), pod("b", rv=20)], 30))
    watch = _tee(manager, "/api/v1/pods?watch=true&resourceVersion=30")
    watch.write(event_line("ADDED", pod("c", rv=31)))
    relist.close(True)
    watch.close(True)
    assert manager.writer.wait_idle(10)
    page, items = listed(manager)
    assert page.freshness.stale == ""
    assert page.resource_version == 31
    assert [i["metadata"]["name"] for i in items] == ["a", "b", "c"]


def test_a_watch_past_the_list_being_read_still_marks_the_gap(manager, feed):
    feed.respond("/api/v1/pods", list_body([pod("a", rv=5)], 9))
    relist = _tee(manager, "/api/v1/pods")
    relist.write(list_body([pod("a", rv=5)], 30))
    watch = _tee(manager, "/api/v1/pods?watch=true&resourceVersion=40")
    watch.write(event_line("ADDED", pod("c", rv=41)))
    relist.close(True)
    watch.close(True)
    assert manager.writer.wait_idle(10)
    page, _ = listed(manager)
    assert "watch resumed at 40 after 30" in page.freshness.stale
