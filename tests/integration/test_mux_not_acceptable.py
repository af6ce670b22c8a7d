"""An Accept kube-apiserver serves nothing for (406) gets the 406 from the hub too.

The shared state of a pool-scoped resource (proxy/mux.py) answered every Accept with JSON:
``text/html``, or a Table of a version that does not exist, listed and watched Services
200 online and offline, where the cloud says 406; offline, a watch from the cache (of pods)
did the same.  A client that asked for something else than JSON must not be sent JSON it
never said it takes."""

from __future__ import annotations

import json

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.test_mux import HUB_ARGS, SVC, service

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PODS = "/api/v1/pods"
REFUSED = ["text/html", "application/json;as=Table;g=meta.k8s.io;v=v9"]


def ask(base: str, path: str, ua: str, accept: str) -> tuple[int, str, dict | None]:
    status, headers, body = http(base + path, timeout=10,
                                 headers={"User-Agent": ua, "Accept": accept})
    doc = json.loads(body.splitlines()[0]) if body.strip() else None
    return status, headers.get("Content-Type", ""), doc


@pytest.mark.parametrize("accept", REFUSED)
def test_an_accept_the_cloud_refuses_is_406_online_and_offline(sandbox: Sandbox, hub_factory,
                                                               accept):
    sandbox.put(service("web-a", app="web"))
    hub = hub_factory(sandbox.url, extra=HUB_ARGS)
    for ua, path in (("proxy-agent/1", SVC), (KUBELET, PODS)):
        assert ask(hub.url, path, ua, "application/json")[0] == 200
    paths = [("proxy-agent/1", SVC), ("proxy-agent/1", f"{SVC}?watch=true&timeoutSeconds=1"),
             (KUBELET, f"{PODS}?watch=true&timeoutSeconds=1")]
    cloud = ask(sandbox.url, SVC, "test/1", accept)
    assert cloud[0] == 406
    for ua, path in paths[:2]:
        assert ask(hub.url, path, ua, accept)[:2] == cloud[:2], path
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    assert ask(hub.url, SVC, "proxy-agent/1", "application/json")[0] == 200  # still served
    for ua, path in paths:
        status, ctype, doc = ask(hub.url, path, ua, accept)
        assert (status, ctype) == (406, "application/json"), (path, doc)
        assert doc is not None and doc["reason"] == "NotAcceptable", (path, doc)


def test_a_yaml_watch_is_406_online_and_offline(sandbox: Sandbox, hub_factory):
    # kube-apiserver serves YAML only whole (it has no YAML stream serializer): a watch that
    # takes only YAML is its 406.  The shared state and the cache sent a JSON stream instead.
    sandbox.put(service("web-a", app="web"))
    hub = hub_factory(sandbox.url, extra=HUB_ARGS)
    for ua, path in (("proxy-agent/1", SVC), (KUBELET, PODS)):
        assert ask(hub.url, path, ua, "application/json")[0] == 200
    yaml = "application/yaml"
    svc_watch = ("proxy-agent/1", f"{SVC}?watch=true&timeoutSeconds=1")
    pods_watch = (KUBELET, f"{PODS}?watch=true&timeoutSeconds=1")
    assert ask(sandbox.url, svc_watch[1], "test/1", yaml)[0] == 406
    assert ask(hub.url, svc_watch[1], svc_watch[0], yaml)[:2] == (406, "application/json")
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    for ua, path in (svc_watch, pods_watch):
        status, ctype, doc = ask(hub.url, path, ua, yaml)
        assert (status, ctype) == (406, "application/json"), (path, doc)
        assert doc is not None and doc["reason"] == "NotAcceptable", (path, doc)
        # A watch that also takes JSON still gets its JSON stream.
        assert ask(hub.url, path, ua, f"{yaml}, application/json")[0] == 200, path
