"""An informer on a custom resource is cached, though nothing it asks shows the resource's scope.

A cluster-wide list or watch says nothing of whether a resource is namespaced, and informers
never ask discovery: the hub answered an operator's informer on its own resource online, and
offline said 503 "not cached", for ever.  The hub now asks the cloud's discovery of that
group/version itself, once.
"""

from __future__ import annotations

import json

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
POOLS = "/apis/apps.openyurt.io/v1beta2/nodepools"


def pools(hub) -> tuple[int, set[str]]:
    status, _, body = http(hub.url + POOLS, headers={"User-Agent": KUBELET}, timeout=10)
    names = {p["metadata"]["name"] for p in json.loads(body).get("items", [])} \
        if status == 200 else set()
    return status, names


def test_a_custom_resource_listed_cluster_wide_is_served_offline(sandbox4, hub_factory):
    hub = hub_factory(sandbox4.url)
    status, online = pools(hub)
    assert status == 200 and online
    wait_for((hub.cache_dir / "kubelet" / "nodepools.v1beta2.apps.openyurt.io").exists, 15,
             "the NodePool list to be cached")
    sandbox4.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    assert pools(hub) == (200, online)
    # (the hub asked the group/version's discovery itself: the client never did)
    assert sandbox4.requests("GET /apis/apps.openyurt.io/v1beta2?")
