"""The multiplexer's feed against a scripted cloud (a WSGI app in its place)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from tests.fixtures.waiting import wait_for
from yurthub.kube.resources import builtin
from yurthub.proxy.muxfeed import Feed
from yurthub.proxy.muxstate import SharedState

RT = builtin("", "v1", "services")
assert RT is not None


def service_list(rv: int, *names: str) -> bytes:
    items = [{"metadata": {"name": n, "namespace": "default", "resourceVersion": str(rv)}}
             for n in names]
    return json.dumps({"kind": "ServiceList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": str(rv)}, "items": items}).encode()


class Cloud:
    """Answers the feed's lists from a script; its watches wait until ended."""

    def __init__(self, lists: list[tuple[str, bytes]]) -> None:
        self.lists = lists
        self.requests: list[str] = []
        self.end_watch = threading.Event()
        self.closed = threading.Event()

    def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
        query = env.get("QUERY_STRING", "")
        self.requests.append(query)
        if "watch=true" in query:
            start_response("200 OK", [("Content-Type", "application/json")])
            return self._watch()
        status, body = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    def _watch(self) -> Iterator[bytes]:
        while not (self.end_watch.is_set() or self.closed.is_set()):
            self.end_watch.wait(0.05)
        self.end_watch.clear()
        yield b""


FAILED = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "code": 503, "message": "etcd is starting"}).encode()


def test_a_relist_after_the_cloud_went_back_is_tried_again_when_it_fails():
    cloud = Cloud([("200 OK", service_list(30, "lost", "kept")),
                   ("503 Service Unavailable", FAILED),
                   ("200 OK", service_list(12, "kept"))])
    state = SharedState(RT, 100)
    feed = Feed(cloud, state, "/api/v1/services", "node-1")
    feed.start()
    try:
        wait_for(lambda: len(cloud.requests) == 2, what="the first list and watch")
        assert feed.went_back()       # the probe saw the cloud's version below 30...
        assert not feed.went_back()   # ...and again, before the relist: said once
        cloud.end_watch.set()         # (the caller ends the feed's watch)
        # The relist is answered 503 (the restored cloud starting): the feed lists again
        # instead of watching from 30, a version the cloud lost, which would stay silent.
        wait_for(lambda: len(cloud.requests) >= 4, what="the feed's next requests")
        assert "watch=true" not in cloud.requests[3]
        wait_for(lambda: state.rv == 12, what="the state at the restored cloud's list")
        assert feed.went_back()       # a later restore is told again
    finally:
        cloud.closed.set()
        feed.stop()


def test_a_copy_the_cache_keeps_dropping_is_not_listed_again_at_every_watch():
    # The cache drops every list of the shared Services (one past max_list_bytes): the
    # feed listed the whole collection again before each of its watches, every few
    # minutes for ever - the cloud traffic the multiplexer exists to save.
    cloud = Cloud([("200 OK", service_list(30, "a", "b"))])
    state = SharedState(RT, 100)
    feed = Feed(cloud, state, "/api/v1/services", "node-1",
                copy_problem=lambda mark: ("its cached copy holds no complete list", 0))
    feed.start()
    try:
        for n in (2, 4, 5, 6):  # watches, one after the other
            wait_for(lambda n=n: len(cloud.requests) == n, what=f"request {n}")
            cloud.end_watch.set()
        wait_for(lambda: len(cloud.requests) == 7, what="the feed's next watch")
        lists = ["watch=true" not in q for q in cloud.requests]
        # the first list, then one for the copy's sake; after that only watches for now
        assert lists == [True, False, True, False, False, False, False], cloud.requests
    finally:
        cloud.closed.set()
        feed.stop()
