"""client-go's watch-list (``sendInitialEvents``) and the list options of kube-apiserver's
watch cache, answered by the multiplexer: each compared with the sandbox's own answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.hub import Hub
from tests.integration.test_mux import HUB_ARGS, SVC, direct, service, watch_lines


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    """A sandbox whose watches get bookmarks at kube-apiserver's cadence (about once a
    minute), so the shared state of a quiet collection stays behind the cluster's version."""
    sb = Sandbox(nodes=1, pods_per_node=1, bookmark_interval=60.0, control_port=0).start()
    yield sb
    sb.stop()


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
