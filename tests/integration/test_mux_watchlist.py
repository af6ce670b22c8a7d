"""client-go's watch-list (``sendInitialEvents``) and the list options of kube-apiserver's
watch cache, answered by the multiplexer: each compared with the sandbox's own answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.hub import Hub
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.test_mux import HUB_ARGS, SVC, direct, service, watch_lines


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    """A sandbox whose watches get bookmarks at kube-apiserver's cadence (about once a
    minute), so the shared state of a quiet collection stays behind the cluster's version."""
    sb = Sandbox(nodes=1, pods_per_node=1, bookmark_interval=60.0, control_port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def mux_hub(sandbox: Sandbox, hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(sandbox.url, extra=HUB_ARGS)


@pytest.fixture
def slow_hub(slow_sandbox: Sandbox, hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(slow_sandbox.url, extra=HUB_ARGS)


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}}


def test_a_watch_list_at_a_version_the_state_has_not_reached_is_answered(
        slow_sandbox, slow_hub):
    sb, hub = slow_sandbox, slow_hub
    # client-go's reflector resumes a watch-list at the last version it saw; a version the
    # cloud gave it (a consistent list it answered) is past the state of a quiet collection
    # when other resources changed.  kube-apiserver answers it (its cache reaches the
    # version); the hub must not end it with a 504 while the cloud is healthy.
    sb.put(service("web-a", app="web"))
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200  # the shared state is loaded
    sb.put(configmap("other"))                       # the cluster moves on
    rv = str(sb.resource_version)
    assert int(direct(sb, SVC)["metadata"]["resourceVersion"]) >= int(rv)
    with watch_lines(hub.url, SVC, "proxy-agent/1", sendInitialEvents="true",
                     allowWatchBookmarks="true", resourceVersionMatch="NotOlderThan",
                     resourceVersion=rv, timeoutSeconds="30",
                     labelSelector="app=web") as lines:
        first = next(lines)
        assert first["type"] == "ADDED", first  # (was: ERROR 504 after 3 s)
        second = next(lines)
    assert first["object"]["metadata"]["name"] == "web-a"
    assert second["type"] == "BOOKMARK", second
    meta = second["object"]["metadata"]
    assert meta["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(meta["resourceVersion"]) >= int(rv)


def test_offline_an_exact_list_is_the_state_at_that_version_or_410(sandbox, mux_hub):
    # resourceVersionMatch=Exact (or a version with a limit, its legacy form) asks for the
    # list as it was at that version.  Online the cloud answers; offline the hub must not
    # answer the current list in its place (issue 15: online and offline answer the same).
    sb, hub = sandbox, mux_hub
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    x = sb.put(service("x", app="web"))["metadata"]["resourceVersion"]
    y = sb.put(service("y", app="web"))["metadata"]["resourceVersion"]
    wait_for(lambda: int(json.loads(hub.get(f"{SVC}?resourceVersion=0", ua="proxy-agent/1")[2])
                         ["metadata"]["resourceVersion"]) >= int(y), 10, what="the state at y")
    queries = {"exact": f"resourceVersion={x}&resourceVersionMatch=Exact&labelSelector=app",
               "legacy": f"resourceVersion={x}&limit=500&labelSelector=app",
               "too old": "resourceVersion=1&resourceVersionMatch=Exact"}
    online = {}
    for what, q in queries.items():
        status, _, body = http(f"{sb.url}{SVC}?{q}", headers={"User-Agent": "test/1"})
        online[what] = status, json.loads(body)
    sb.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 20,
             what="the hub sees the cloud gone")
    for what, q in queries.items():
        status, _, body = hub.get(f"{SVC}?{q}", ua="proxy-agent/1")
        want_status, want = online[what]
        got = json.loads(body)
        assert status == want_status, (what, body)
        if status == 200:
            assert got["metadata"]["resourceVersion"] == x, what
            assert [o["metadata"]["name"] for o in got["items"]] == \
                [o["metadata"]["name"] for o in want["items"]], what
            assert "y" not in [o["metadata"]["name"] for o in got["items"]]
        else:
            assert (got["reason"], got["message"]) == (want["reason"], want["message"])


def test_a_bookmark_comes_right_before_the_watch_ends(sandbox, hub_factory):
    # kube-apiserver sends a watch that allows bookmarks one 2 s before its timeout (besides
    # one a minute), so that the client renews it from the newest version.
    hub = hub_factory(sandbox.url)  # bookmarks once a minute
    sandbox.put(service("a", app="web"))
    _, _, body = hub.get(SVC, ua="proxy-agent/1")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    sandbox.put(configmap("other"))  # (the state's version moves past rv with the bookmark)
    with watch_lines(hub.url, SVC, "proxy-agent/1", resourceVersion=rv,
                     allowWatchBookmarks="true", timeoutSeconds="4") as lines:
        got = list(lines)
    assert [e["type"] for e in got] == ["BOOKMARK"], got
    assert int(got[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)
