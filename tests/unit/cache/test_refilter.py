"""The cache holds filtered objects: after a change of a client's response filters, what it
relists (same resourceVersions, other bytes) must replace what was filtered before."""

from __future__ import annotations

import json
import threading
import time

from tests.unit.cache.conftest import PODS, event_line, list_body, pod, running_manager
from yurthub.cache.views import parse_selectors
from yurthub.kube.requestinfo import parse_request_info
from yurthub.kube.resources import builtin

POD_RT = builtin("", "v1", "pods")
KUBELET_PODS = {("kubelet", "", "pods")}
WHY = "the response filters changed (test)"


def filtered(name: str, host: str, rv: int = 5) -> dict:
    """A pod as serviceenvupdater leaves it: the env points at ``host``."""
    p = pod(name, rv=rv)
    p["spec"]["containers"][0]["env"] = [{"name": "KUBERNETES_SERVICE_HOST", "value": host}]
    return p


def host_of(manager, name: str) -> str:
    obj = json.loads(manager.store.read(PODS, "default", name))
    return obj["spec"]["containers"][0]["env"][0]["value"]


def freshness(manager) -> str:
    want = parse_selectors("", "", "", POD_RT)
    return manager.reader.list(PODS, POD_RT, want, limit=None, continue_token="").freshness.stale


def refilter(manager) -> None:
    manager.mark_stale(KUBELET_PODS, WHY)
    assert manager.writer.wait_idle(10)


def test_the_next_list_after_a_filter_change_rewrites_unchanged_versions(manager, feed):
    feed.respond("/api/v1/pods", list_body([filtered("a", "169.254.2.1"),
                                            filtered("b", "169.254.2.1", rv=6)], 9))
    # An ordinary relist of the same versions writes nothing (whatever the bytes).
    commits = manager.store.stats().commits
    feed.respond("/api/v1/pods", list_body([filtered("a", "10.0.0.9"),
                                            filtered("b", "10.0.0.9", rv=6)], 9))
    assert host_of(manager, "a") == "169.254.2.1"
    assert manager.store.stats().commits == commits + 1  # the view's state, no object
    refilter(manager)
    assert WHY in freshness(manager)
    feed.respond("/api/v1/pods", list_body([filtered("a", "10.96.0.1"),
                                            filtered("b", "10.96.0.1", rv=6)], 9))
    assert (host_of(manager, "a"), host_of(manager, "b")) == ("10.96.0.1", "10.96.0.1")
    assert freshness(manager) == ""
    # Done: relists cost no writes again.
    feed.respond("/api/v1/pods", list_body([filtered("a", "10.0.0.9"),
                                            filtered("b", "10.0.0.9", rv=6)], 9))
    assert host_of(manager, "a") == "10.96.0.1"


def test_the_need_to_rewrite_survives_a_restart(tmp_path):
    with running_manager(tmp_path) as manager:
        feed = _feeder(manager)
        feed.respond("/api/v1/pods", list_body([filtered("a", "169.254.2.1")], 9))
        refilter(manager)
    with running_manager(tmp_path) as manager:
        assert WHY in freshness(manager)  # served offline with a warning meanwhile
        _feeder(manager).respond("/api/v1/pods", list_body([filtered("a", "10.96.0.1")], 9))
        assert host_of(manager, "a") == "10.96.0.1" and freshness(manager) == ""
    with running_manager(tmp_path) as manager:
        _feeder(manager).respond("/api/v1/pods", list_body([filtered("a", "10.0.0.9")], 9))
        assert host_of(manager, "a") == "10.96.0.1"  # cleared on disk too


def test_gets_and_watch_events_rewrite_each_object_once_while_it_is_pending(manager, feed):
    feed.respond("/api/v1/pods", list_body([filtered("a", "169.254.2.1"),
                                            filtered("b", "169.254.2.1", rv=6)], 9))
    refilter(manager)
    get = "/api/v1/namespaces/default/pods/a"
    feed.respond(get, json.dumps(filtered("a", "10.96.0.1")).encode())
    assert host_of(manager, "a") == "10.96.0.1"
    commits = manager.store.stats().commits
    feed.respond(get, json.dumps(filtered("a", "10.96.0.1")).encode())  # kubelet, again
    assert manager.store.stats().commits == commits
    feed.respond("/api/v1/pods?watch=true&resourceVersion=9",
                 event_line("MODIFIED", filtered("b", "10.96.0.1", rv=6)))
    assert host_of(manager, "b") == "10.96.0.1"
    # A second change makes what was rewritten under the first one old again.
    refilter(manager)
    feed.respond(get, json.dumps(filtered("a", "10.0.0.1")).encode())
    assert host_of(manager, "a") == "10.0.0.1"


def test_a_view_listed_while_another_waits_is_rewritten_too(manager, feed):
    feed.respond("/api/v1/pods", list_body([filtered("a", "169.254.2.1")], 9))
    refilter(manager)
    # A new view (another selector) holds objects filtered under the old settings as well.
    feed.respond("/api/v1/pods?labelSelector=app%3Dweb",
                 list_body([filtered("a", "10.96.0.1")], 9))
    assert host_of(manager, "a") == "10.96.0.1"
    assert WHY in freshness(manager)  # the unselected view was not listed yet


def _answer_asked_before_the_change(manager, body: bytes) -> None:
    asked = time.monotonic()  # kubelet's list picks its filters ...
    info = parse_request_info("GET", "/api/v1/pods", "")
    tee = manager.tee_for(info, "kubelet", "application/json", 200,
                          {"Content-Type": "application/json"}, asked_at=asked)
    tee.write(body[:20])
    manager.mark_stale(KUBELET_PODS, WHY)  # ... then they change, before its answer is cached
    marked = threading.Event()
    manager.writer.call(marked.set)  # (the writer takes calls in order)
    assert marked.wait(10)
    tee.write(body[20:])
    tee.close(True)
    assert manager.writer.wait_idle(10)


def test_an_answer_filtered_before_the_change_neither_rewrites_nor_freshens(manager, feed):
    feed.respond("/api/v1/pods", list_body([filtered("a", "169.254.2.1")], 9))
    _answer_asked_before_the_change(manager, list_body([filtered("a", "169.254.2.2")], 9))
    assert host_of(manager, "a") == "169.254.2.1" and WHY in freshness(manager)
    feed.respond("/api/v1/pods", list_body([filtered("a", "10.96.0.1")], 9))
    assert host_of(manager, "a") == "10.96.0.1" and freshness(manager) == ""


def test_a_first_list_filtered_before_the_change_is_cached_marked(manager, feed):
    _answer_asked_before_the_change(manager, list_body([filtered("a", "169.254.2.1")], 9))
    assert host_of(manager, "a") == "169.254.2.1" and WHY in freshness(manager)
    feed.respond("/api/v1/pods", list_body([filtered("a", "10.96.0.1")], 9))
    assert host_of(manager, "a") == "10.96.0.1" and freshness(manager) == ""


def _feeder(manager):
    from tests.unit.cache.conftest import Feeder
    return Feeder(manager)
