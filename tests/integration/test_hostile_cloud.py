"""A cloud that answers with what kube-apiserver never would (``tests/fixtures/hostile.py``):
what the hub passes on, what it keeps, what it shows its clients."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fixtures.hostile import Hostile, chunk, chunked_head, response
from tests.fixtures.waiting import wait_for

KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.close()


def _pod(name: str, rv: int, typed: bool = False) -> dict:
    p = {"metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)},
         "spec": {"nodeName": "node-0000", "containers": [{"name": "c", "image": "i"}]}}
    return {"kind": "Pod", "apiVersion": "v1", **p} if typed else p


@pytest.mark.parametrize("body", [
    {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "100"},
     "items": [_pod("not-a-service", 90)]},
    {"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "100"},
     "items": [_pod("not-a-service", 90, typed=True)]},
], ids=["list-kind", "item-kind"])
def test_the_multiplexer_never_shows_other_objects_as_services(hostile, hub_factory, body):
    # The shared list+watch of services retyped whatever it was given: kube-proxy and
    # coredns got a ServiceList holding the cloud's pods as Services.
    raw = json.dumps(body).encode()
    hostile.routes["/api/v1/services"] = response(raw)

    def watch(_head: str) -> Iterator[bytes]:
        yield chunked_head()  # a watch that stays open, silent
        hostile.released.wait(60)

    hostile.routes["/api/v1/services?watch"] = watch
    hub = hub_factory(hostile.url, extra=["--enable-resource-filter", "false"])

    def feed_tried() -> bool:
        hub.get("/api/v1/services", ua=KUBE_PROXY)
        return "shared services: unusable list" in hub.log() \
            or "shared services: listed" in hub.log()

    wait_for(feed_tried, timeout=20, what="the shared list tried")
    for _ in range(3):
        status, _, got = hub.get("/api/v1/services", ua=KUBE_PROXY)
        assert status == 200 and got == raw  # what the cloud said, as a proxy passes it on
    assert "Traceback" not in hub.log()


def _service(name: str, rv: int) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}}


def _event(etype: str, obj: object) -> bytes:
    return chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")


@pytest.mark.parametrize("metadata", ["x", [1]])
def test_a_bookmark_whose_metadata_is_no_object_crashes_nothing(hostile, hub_factory,
                                                                metadata):
    # The shared services feed read the bookmark's metadata as a dict: its thread crashed
    # and took the worker (every client's connections and watches) with it, again at every
    # such bookmark.
    hostile.routes["/api/v1/services"] = response(
        {"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "100"},
         "items": [_service("listed", 90)]})

    def watch(_head: str) -> Iterator[bytes]:
        yield chunked_head()
        yield _event("BOOKMARK", {"kind": "Service", "apiVersion": "v1", "metadata": metadata})
        yield _event("ADDED", _service("after-the-bookmark", 101))
        hostile.released.wait(60)

    hostile.routes["/api/v1/services?watch"] = watch
    hub = hub_factory(hostile.url, extra=["--enable-resource-filter", "false"])

    def names() -> set[str]:
        # at resourceVersion 0, as kube-proxy's reflector lists: the shared state as it is
        # (a consistent read would probe this fake cloud, whose list stays at 100 after it
        # sent 101: a cloud gone back, which the multiplexer answers from the cloud itself)
        status, _, body = hub.get("/api/v1/services?resourceVersion=0", ua=KUBE_PROXY)
        assert status == 200, body
        return {i["metadata"]["name"] for i in json.loads(body)["items"]}

    wait_for(lambda: "after-the-bookmark" in names() or "exited with code" in hub.log(),
             timeout=20, what="the event after the bookmark")
    log = hub.log()
    assert "exited with code" not in log and "Traceback" not in log
    assert names() == {"listed", "after-the-bookmark"}
