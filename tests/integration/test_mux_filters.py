"""YurtHub's filters on the multiplexer's answers: each component gets its own view of the
one shared state, which no filter changes (it is cached unfiltered, once).

A real hub on node-0001 of a four-node sandbox (node-0000/0001 in pool-a, node-0002/0003 in
pool-b): kube-proxy gets servicetopology (web-pool's endpoints of its own pool only), a
component no filter applies to gets every endpoint.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.fixtures.waiting import wait_for
from tests.integration.test_mux import MUX, watch_lines

NODE = "node-0001"
KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
OTHER = "edge-x/1.0"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
ALL_WEB_POOL = ["10.128.0.206", "10.128.4.206", "10.128.8.206", "10.128.12.206"]
POOL_A = ["10.128.0.206", "10.128.4.206"]


@pytest.fixture
def hub(sandbox4, hub_factory):
    return hub_factory(sandbox4.url, node=NODE, extra=["--watch-bookmark-interval", "1"])


def web_pool(doc: dict[str, Any]) -> list[str]:
    return [a for i in doc["items"] if i["metadata"]["name"] == "web-pool-sbx01"
            for ep in i["endpoints"] for a in ep["addresses"]]


def addresses(obj: dict[str, Any]) -> list[str]:
    return [a for ep in obj.get("endpoints") or [] for a in ep["addresses"]]


def test_each_client_gets_its_filters_the_shared_state_none(sandbox4, hub, tmp_path):
    proxy = json.loads(hub.get(SLICES, ua=KUBE_PROXY)[2])
    other = json.loads(hub.get(SLICES, ua=OTHER)[2])
    assert web_pool(proxy) == POOL_A and web_pool(other) == ALL_WEB_POOL
    # One copy on disk, unfiltered, under the multiplexer; none for the clients.
    shared = (tmp_path / "cache" / MUX / "endpointslices.v1.discovery.k8s.io" / "default" /
              "web-pool-sbx01")
    wait_for(shared.exists, what="the shared list in the cache")
    assert addresses(json.loads(shared.read_bytes())) == ALL_WEB_POOL
    assert not (tmp_path / "cache" / "kube-proxy" /
                "endpointslices.v1.discovery.k8s.io").exists()

    # Watches from the lists' version: node-0000's endpoint moves to node-0003 (pool-b).
    got: dict[str, list[tuple[str, list[str]]]] = {KUBE_PROXY: [], OTHER: []}

    def follow(ua: str, rv: str) -> None:
        with watch_lines(hub.url, SLICES, ua, resourceVersion=rv,
                         timeoutSeconds="20") as lines:
            for ev in lines:
                if ev["object"]["metadata"]["name"] == "web-pool-sbx01":
                    got[ua].append((ev["type"], addresses(ev["object"])))
                    return
    threads = [threading.Thread(target=follow, args=(ua, doc["metadata"]["resourceVersion"]),
                                daemon=True) for ua, doc in ((KUBE_PROXY, proxy), (OTHER, other))]
    for t in threads:
        t.start()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="shared") == 2,
             what="both watches open")
    s = sandbox4.get("endpointslices", "web-pool-sbx01", "default")
    s["endpoints"][0]["nodeName"] = "node-0003"
    sandbox4.put(s)
    for t in threads:
        t.join(20)
    assert got[KUBE_PROXY] == [("MODIFIED", ["10.128.4.206"])]
    assert got[OTHER] == [("MODIFIED", ALL_WEB_POOL)]


def test_a_client_given_filters_live_relists_into_its_filtered_view(sandbox4, hub):
    listed = json.loads(hub.get(SLICES, ua=OTHER)[2])
    assert web_pool(listed) == ALL_WEB_POOL
    ended = threading.Event()

    def follow() -> None:
        with watch_lines(hub.url, SLICES, OTHER, resourceVersion=listed["metadata"][
                "resourceVersion"], timeoutSeconds="60") as lines:
            for _ in lines:
                pass
        ended.set()  # the stream ended cleanly (a cut would have raised)
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="shared") == 1,
             what="the watch open")
    cfg = sandbox4.get("configmaps", "yurt-hub-cfg", "kube-system")
    cfg["data"]["servicetopology"] = "edge-x"
    sandbox4.put(cfg)
    wait_for(ended.is_set, 20, what="the shared watch ended for its new filters")
    wait_for(lambda: web_pool(json.loads(hub.get(SLICES, ua=OTHER)[2])) == POOL_A, 10,
             what="the relist filtered")
