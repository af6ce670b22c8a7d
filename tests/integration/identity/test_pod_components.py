"""Pods on 10268 file what they read under ``<agent>@pod``: a pod whose User-Agent says
``kubelet/...`` does not write into kubelet's cache (nor spend its quota), in-cluster
kube-proxy still gets its filters, and what a hub before this filed under the bare name is
still served offline to the token the cloud allowed it."""

from __future__ import annotations

import http.client
import json
import ssl

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http as web_get

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
CM = "/api/v1/namespaces/default/configmaps"


def _pod_get(hub, cluster: Sandbox, path: str, token: str, ua: str) -> tuple[int, bytes]:
    """GET over 10268 as a pod: its ServiceAccount token, no client certificate."""
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    conn = http.client.HTTPSConnection("127.0.0.1", hub.secure_port, context=ctx, timeout=20)
    try:
        conn.request("GET", path, headers={
            "User-Agent": ua, "Authorization": f"Bearer {token}", "Accept": "application/json",
            "Host": "kubernetes.default.svc"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _configmap(cluster: Sandbox) -> None:
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "settings", "namespace": "default"},
                 "data": {"k": "v"}})


def test_a_pod_saying_kubelet_does_not_write_into_kubelets_cache(cluster, joining_hub):
    hub = joining_hub(secure=True)
    _configmap(cluster)
    token = cluster.service_account_token("default", "default")
    status, body = _pod_get(hub, cluster, CM, token, KUBELET)
    assert status == 200, body
    pods = hub.cache_dir / "kubelet@pod" / "configmaps.v1.core" / "default" / "settings"
    kubelets = hub.cache_dir / "kubelet" / "configmaps.v1.core" / "default" / "settings"
    wait_for(lambda: pods.exists() or kubelets.exists(), 20, "the pod's list cached")
    assert not kubelets.exists(), "a pod's answer was filed in kubelet's cache"
    assert pods.exists()

    cluster.offline()   # the pod is answered from its own copy
    status, body = _pod_get(hub, cluster, CM, token, KUBELET)
    assert status == 200, body
    assert "settings" in [o["metadata"]["name"] for o in json.loads(body)["items"]]


def test_in_cluster_kube_proxy_keeps_its_filters(cluster, joining_hub):
    hub = joining_hub(secure=True, extra=["--pool-scope-resources", ""])
    token = cluster.service_account_token("default", "default")
    path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    status, body = _pod_get(hub, cluster, path, token, KUBE_PROXY)
    assert status == 200, body
    kubernetes = next(i for i in json.loads(body)["items"]
                      if i["metadata"]["name"] == "kubernetes")
    # forwardkubesvctraffic (kube-proxy's): the kubernetes Service's endpoint is the hub
    assert [p["port"] for p in kubernetes["ports"]] == [hub.secure_port]


def test_a_pods_cache_from_before_the_upgrade_is_still_served_offline(cluster, joining_hub):
    # A hub before "@pod" filed a pod's reads under its bare User-Agent name, with its
    # token's grants: the same state a root process reading with that token leaves.
    hub = joining_hub(secure=True)
    _configmap(cluster)
    token = cluster.service_account_token("default", "default")
    status, _, body = hub.get(CM, KUBE_PROXY, Authorization=f"Bearer {token}")
    assert status == 200, body
    wait_for((hub.cache_dir / "kube-proxy" / "configmaps.v1.core" / "default" /
              "settings").exists, 20, "the list cached under the bare name")
    cluster.offline()
    status, body = _pod_get(hub, cluster, CM, token, KUBE_PROXY)
    assert status == 200, body
    assert "settings" in [o["metadata"]["name"] for o in json.loads(body)["items"]]
    other = cluster.service_account_token("kube-system", "default")
    status, body = _pod_get(hub, cluster, CM, other, KUBE_PROXY)
    assert status == 401, body   # (a token never seen: nothing of the old cache)


def test_in_cluster_kube_proxys_cache_counts_for_the_autonomy_condition(cluster, joining_hub):
    hub = joining_hub(secure=True, extra=["--pool-scope-resources", ""])
    token = cluster.service_account_token("default", "default")
    status, body = _pod_get(hub, cluster, "/api/v1/services", token, KUBE_PROXY)
    assert status == 200, body   # (its endpointslices never listed: not all it needs)

    def verdict() -> dict | None:
        doc = json.loads(web_get(hub.hub_url + "/v1/status")[2]).get("autonomy") or {}
        return doc if any("kube-proxy@pod" in m for m in doc.get("missing", [])) else None
    doc = wait_for(verdict, 20, "the Autonomy verdict to judge in-cluster kube-proxy's cache")
    assert doc["status"] == "False"
    assert "kube-proxy@pod: endpointslices.discovery.k8s.io not cached" in doc["missing"]
