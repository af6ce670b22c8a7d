"""Online, the shared state (the multiplexer) answers a bearer token only while the cloud
still accepts it: a grant older than ``token_recheck_interval`` is confirmed with the cloud
(a ``limit=1`` list with the client's own token) before the shared state answers, and the
cloud's 401/403 reaches the client and drops the grant from the token memory."""

from __future__ import annotations

import json

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for

SVC = "/api/v1/services"


def _sa(cluster: Sandbox, name: str) -> str:
    cluster.put({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": name, "namespace": "default"}})
    return cluster.service_account_token("default", name)


def _checks(cluster: Sandbox, ua: str) -> list:
    return [r for r in cluster.requests()
            if r.path == SVC and r.user_agent == ua and r.query == "limit=1"]


def test_a_deleted_service_accounts_token_stops_reading_the_shared_state(cluster,
                                                                         joining_hub):
    hub = joining_hub(extra=["--token-recheck-interval", "0"])
    token = _sa(cluster, "reader")
    auth = {"Authorization": f"Bearer {token}"}
    ua = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
    status, _, body = hub.get(SVC, ua, **auth)
    assert status == 200, body
    status, _, body = hub.get(SVC, ua, **auth)   # from the shared state, confirmed first
    assert status == 200, body
    assert json.loads(body)["kind"] == "ServiceList"

    cluster.delete("serviceaccounts", "reader", "default")
    status, _, body = hub.get(SVC, ua, **auth)
    assert status == 401, body   # the cloud's own answer, not the shared state's list
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["reason"] == "Unauthorized"
    assert _checks(cluster, ua), "the grant was never confirmed with the cloud"

    # offline the memory no longer honours it either
    cluster.offline()
    status, _, body = hub.get(SVC, ua, **auth)
    assert status == 401, body


def test_a_grant_is_confirmed_once_per_interval_not_per_request(cluster, joining_hub):
    hub = joining_hub(extra=["--token-recheck-interval", "3600"])
    token = _sa(cluster, "steady")
    auth = {"Authorization": f"Bearer {token}"}
    ua = "coredns/1.11"
    for _ in range(5):
        status, _, body = hub.get(SVC, ua, **auth)
        assert status == 200, body
    # the first answer came from the cloud (its 200 is the grant); none needed a check
    assert len(_checks(cluster, ua)) == 0


def test_a_token_the_cloud_refused_online_is_not_honoured_offline(cluster, joining_hub):
    # the ordinary way (no shared state): the cloud's 401 makes the memory forget the token
    hub = joining_hub()
    token = _sa(cluster, "gone")
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = hub.get("/api/v1/nodes", **auth)
    assert status == 200, body
    nodes = len(json.loads(body)["items"])
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet") >= nodes, 20,
             "the node list in the cache")
    cluster.delete("serviceaccounts", "gone", "default")
    status, _, body = hub.get("/api/v1/nodes", **auth)
    assert status == 401, body
    cluster.offline()
    status, _, body = hub.get("/api/v1/nodes", **auth)
    assert status == 401, body   # not the cached node list
    assert json.loads(body)["reason"] == "Unauthorized"
