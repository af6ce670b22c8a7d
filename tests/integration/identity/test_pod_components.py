"""Pods on 10268 file what they read under ``<agent>@pod``: a pod whose User-Agent says
``kubelet/...`` does not write into kubelet's cache (nor spend its quota), in-cluster
kube-proxy still gets its filters, and what a hub before this filed under the bare name is
still served offline to the token the cloud allowed it."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

import pytest

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


def _web_plain(doc: dict) -> list[str]:
    return [a for i in doc["items"] if i["metadata"]["name"].startswith("web-plain")
            for ep in i["endpoints"] for a in ep["addresses"]]


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


def _pod_watch(hub, cluster: Sandbox, path: str, token: str, ua: str) -> ssl.SSLSocket:
    """A watch over 10268 as a pod, its response read by the caller."""
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", hub.secure_port)),
                           server_hostname="kubernetes.default.svc")
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: kubernetes.default.svc\r\nUser-Agent: {ua}\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize("shared", [True, False])
def test_in_cluster_kube_proxys_watch_ends_when_its_filters_change(cluster, joining_hub,
                                                                   shared):
    # kube-proxy in a pod (InClusterConfig: the hub's 10268, cached as kube-proxy@pod)
    # lists and watches EndpointSlices; web-plain then gets a hostname topology.  Its
    # watch must end (410: it lists again) and its cached view be marked stale, as for
    # kube-proxy on the node: the filters go by the name, and so must their changes.
    # Before, the watch went on and kube-proxy kept web-plain's every endpoint.
    hub = joining_hub(secure=True, extra=[] if shared else ["--pool-scope-resources", ""])
    token = cluster.service_account_token("default", "default")
    slices = "/apis/discovery.k8s.io/v1/endpointslices"
    status, body = _pod_get(hub, cluster, slices, token, KUBE_PROXY)
    assert status == 200, body
    listed = json.loads(body)
    assert len(_web_plain(listed)) == 1  # one node: its one endpoint, no topology yet
    cached = {"component": "kube-proxy@pod", "resource": "endpointslices.v1.discovery.k8s.io"}
    wait_for(lambda: hub.metric("yurthub_cache_objects", **cached) > 0, 20,
             "kube-proxy@pod's list cached")
    assert hub.metric("yurthub_cache_view_stale", **cached) == 0
    rv = listed["metadata"]["resourceVersion"]
    sock = _pod_watch(hub, cluster, f"{slices}?watch=true&resourceVersion={rv}"
                      "&timeoutSeconds=300", token, KUBE_PROXY)
    sock.settimeout(60)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head
    cluster.patch("services", "web-plain", {"metadata": {"annotations": {
        "openyurt.io/topologyKeys": "kubernetes.io/hostname"}}}, namespace="default")
    data = head
    try:
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, f"the watch was cut instead of ended: {data[-300:]!r}"
            data += chunk
    except TimeoutError:
        pytest.fail(f"kube-proxy@pod's watch went on after its filters changed: {data!r}")
    finally:
        sock.close()
    assert b'"code": 410' in data or b'"code":410' in data, data
    wait_for(lambda: hub.metric("yurthub_cache_view_stale", **cached) == 1, 20,
             "kube-proxy@pod's cached view marked stale")
