"""What the local proxy does with writes and watches while the cloud is away."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from kubesandbox import protobuf
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, read_watch_events
from yurthub.kube import protowire

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
NODE = "node-0000"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"


def call(hub, method: str, path: str, body=None, ctype: str = "application/json",
         ua: str = KUBELET):
    data = json.dumps(body).encode() if body is not None else None
    status, headers, raw = http(hub.url + path, method=method, body=data,
                                headers={"User-Agent": ua, "Content-Type": ctype})
    return status, headers, (json.loads(raw) if raw else None)


@pytest.fixture
def edge(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, node=NODE, extra=["--watch-bookmark-interval", "1"])
    # What kubelet does at start: its pods, its node, its lease.
    assert hub.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")[0] == 200
    assert hub.get(f"/api/v1/nodes?fieldSelector=metadata.name%3D{NODE}")[0] == 200
    assert hub.get(f"/api/v1/nodes/{NODE}")[0] == 200
    assert hub.get(LEASE)[0] == 200
    wait_for(lambda: (hub.cache_dir / "kubelet/leases.v1.coordination.k8s.io/kube-node-lease"
                      / NODE).exists(), what="the lease in the cache")
    # The sandbox records a request after its answer went out: a test clearing the record
    # before that would find this GET of kubelet's lease among its own requests.
    wait_for(lambda: any(r.user_agent.startswith("kubelet") and r.path.endswith(LEASE)
                         for r in sandbox.requests()), what="the sandbox to record the GET")
    return hub


def my_pods(sandbox) -> list[dict]:
    return [p for p in sandbox.list_objects("pods") if p["spec"].get("nodeName") == NODE]


def offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice")


def test_kubelets_lease_is_answered_locally_and_renewed_upstream(sandbox, edge):
    sandbox.clear_requests()
    status, _, lease = call(edge, "GET", LEASE)
    assert status == 200
    lease["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
    status, headers, got = call(edge, "PUT", LEASE, lease)
    assert status == 200 and got["spec"]["renewTime"] == "2030-01-01T00:00:00.000000Z"
    # kubelet's own lease requests never reached the cloud; the hub's renewals did.
    wait_for(lambda: any(r.method == "PUT" and "leases" in r.path
                         for r in sandbox.requests()), what="the hub renewing the lease")
    assert not any(r.user_agent.startswith("kubelet") and "leases" in r.path
                   for r in sandbox.requests())


def test_offline_status_patches_of_this_nodes_pods_follow_the_node(sandbox, edge):
    pod = my_pods(sandbox)[0]
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    offline(sandbox, edge)
    patch = {"status": {"$setElementOrder/conditions": [{"type": "Ready"}],
                        "conditions": [{"type": "Ready", "status": "False", "reason": "Gone"}],
                        "phase": "Failed"}}
    status, headers, got = call(edge, "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                                patch, "application/strategic-merge-patch+json")
    assert status == 200, got
    assert got["status"]["phase"] == "Failed"
    assert {"type": "Ready", "status": "False", "reason": "Gone"} in [
        {k: c.get(k) for k in ("type", "status", "reason")} for c in got["status"]["conditions"]]
    assert got["spec"] == pod["spec"]  # a status patch touches only the status
    assert "not sent to the cloud" in headers["Warning"]
    status, _, again = call(edge, "GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert again["status"]["phase"] == "Failed"
    listed = call(edge, "GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")[2]
    assert {p["metadata"]["name"]: p["status"]["phase"] for p in listed["items"]}[name] == \
        "Failed"
    # JSON patch and merge patch on the node's own status.
    status, _, node = call(edge, "PATCH", f"/api/v1/nodes/{NODE}/status",
                           [{"op": "add", "path": "/metadata/labels/offline", "value": "yes"},
                            {"op": "add", "path": "/status/phase", "value": "Running"}],
                           "application/json-patch+json")
    assert status == 200 and node["status"]["phase"] == "Running"
    assert "offline" not in node["metadata"].get("labels", {})  # status only
    status, _, node = call(edge, "PATCH", f"/api/v1/nodes/{NODE}",
                           {"metadata": {"labels": {"offline": "yes"}}},
                           "application/merge-patch+json")
    assert status == 200 and node["metadata"]["labels"]["offline"] == "yes"
    # Once the cloud is back the cloud's truth wins again.
    sandbox.online()
    wait_for(lambda: edge.metric("node_yurthub_server_healthy_status") == 1, timeout=15,
             what="the cloud back")
    status, _, fresh = call(edge, "GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert fresh["status"]["phase"] == sandbox.get("pods", name, ns)["status"]["phase"]


@pytest.mark.parametrize("method, path, body, ctype, code, reason", [
    ("PATCH", "/api/v1/nodes/node-0001/status", {"status": {}},
     "application/merge-patch+json", 503, "ServiceUnavailable"),
    ("DELETE", "/api/v1/namespaces/default/pods/whatever", None, "application/json", 403,
     "Forbidden"),
    ("POST", "/api/v1/namespaces/default/configmaps",
     {"metadata": {"name": "x"}, "data": {}}, "application/json", 503, "ServiceUnavailable"),
    ("PATCH", f"/api/v1/nodes/{NODE}/status", {"status": {}}, "text/plain", 415,
     "UnsupportedMediaType"),
])
def test_offline_writes_that_are_not_the_nodes_truth(sandbox, edge, method, path, body, ctype,
                                                     code, reason):
    offline(sandbox, edge)
    status, _, doc = call(edge, method, path, body, ctype)
    assert status == code and doc["kind"] == "Status" and doc["reason"] == reason, doc


def test_offline_subresources_the_cache_does_not_hold_are_refused(sandbox, edge):
    """A pod's log or a node's proxy is no cached object: offline it is a 503, never the Pod
    or the Node itself (kubectl logs printed the Pod's JSON as the container's log)."""
    pod = my_pods(sandbox)[0]
    path = f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"
    offline(sandbox, edge)
    for sub in ("log", "log?follow=true&container=c"):
        status, _, raw = http(edge.url + f"{path}/{sub}", headers={"User-Agent": KUBELET})
        doc = json.loads(raw)
        assert status == 503 and doc["kind"] == "Status", (sub, raw[:200])
        assert "pods/log" in doc["message"]
    status, _, doc = call(edge, "GET", f"/api/v1/nodes/{NODE}/proxy/metrics")
    assert status == 503 and doc["kind"] == "Status", doc
    # The status subresource is the object itself, and cached: still served.
    status, _, got = call(edge, "GET", f"{path}/status")
    assert status == 200 and got["kind"] == "Pod"


def test_offline_a_status_the_resource_does_not_have_is_404_as_online(sandbox, edge):
    """A ConfigMap (or a Secret, a Lease) has no status subresource: kube-apiserver answers
    its /status 404 (no such path), and offline the cache answered the object itself."""
    cm = "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
    assert call(edge, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    online = call(edge, "GET", cm + "/status")
    assert online[0] == 404
    wait_for((edge.cache_dir / "kubelet/configmaps.v1.core/default/kube-root-ca.crt").exists,
             what="the configmap in the cache")
    offline(sandbox, edge)
    status, _, doc = call(edge, "GET", cm + "/status")
    assert (status, doc["reason"], doc["message"]) == (404, "NotFound",
                                                       online[2]["message"]), doc
    assert call(edge, "GET", cm)[0] == 200   # the object itself still is


def test_offline_events_are_accepted(sandbox, edge):
    offline(sandbox, edge)
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "e1.abc", "namespace": "default"}, "reason": "Started"}
    status, headers, got = call(edge, "POST", "/api/v1/namespaces/default/events", event)
    assert status == 201 and got["metadata"]["name"] == "e1.abc"


def open_watch(hub, query: str) -> tuple[socket.socket, list, threading.Thread]:
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    sock.sendall(f"GET /api/v1/pods?watch=true&{query} HTTP/1.1\r\nHost: x\r\n"
                 f"User-Agent: {KUBELET}\r\n\r\n".encode())
    events: list = []
    t = threading.Thread(target=read_watch_events, args=(sock, events), daemon=True)
    t.start()
    return sock, events, t


def test_offline_watches_keep_time_send_bookmarks_and_end_when_the_cloud_returns(sandbox, edge):
    rv = call(edge, "GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")[2][
        "metadata"]["resourceVersion"]
    offline(sandbox, edge)
    query = f"fieldSelector=spec.nodeName%3D{NODE}&resourceVersion={rv}"
    started = time.monotonic()
    sock, events, t = open_watch(edge, query + "&timeoutSeconds=2")
    t.join(10)
    assert not t.is_alive() and 1.5 < time.monotonic() - started < 5
    sock.close()
    sock, events, t = open_watch(edge, query + "&allowWatchBookmarks=true&timeoutSeconds=60")
    wait_for(lambda: any(e["type"] == "BOOKMARK" for _, e in events), timeout=5,
             what="a BOOKMARK from the cache")
    bookmark = next(e for _, e in events if e["type"] == "BOOKMARK")
    assert bookmark["object"]["kind"] == "Pod"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(rv)
    sandbox.online()
    wait_for(lambda: edge.metric("node_yurthub_server_healthy_status") == 1, timeout=15,
             what="the cloud healthy again")
    healthy_at = time.monotonic()
    t.join(10)
    assert not t.is_alive()
    assert time.monotonic() - healthy_at < 2.5  # clients re-watch upstream promptly
    sock.close()


def test_the_nodes_writes_that_find_the_cloud_gone_are_applied_at_once(sandbox, hub_factory):
    """Between the cloud going away and the health checker seeing it, a write whose
    connection was refused never reached the cloud: the node's own status is applied locally
    (what the next moment would do) instead of failing; other writes still get a 503."""
    hub = hub_factory(sandbox.url, node=NODE, extra=["--heartbeat-interval-seconds", "60"])
    assert hub.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")[0] == 200
    pod = my_pods(sandbox)[0]
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    wait_for(lambda: (hub.cache_dir / "kubelet/pods.v1.core" / ns / name).exists(),
             what="the pod in the cache")
    sandbox.offline()
    status, headers, got = call(hub, "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                                {"status": {"phase": "Failed"}},
                                "application/merge-patch+json")
    assert status == 200, got
    assert got["status"]["phase"] == "Failed" and "not sent to the cloud" in headers["Warning"]
    status, _, got = call(hub, "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}",
                          {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json")
    assert status == 503 and got["kind"] == "Status"


def test_a_dry_run_of_kubelets_lease_goes_to_the_cloud(sandbox, edge):
    """kubelet's Lease is answered locally, but a dry run (which must change nothing, and
    which only the cloud can answer) was applied to the cached Lease."""
    lease = call(edge, "GET", LEASE)[2]
    lease["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
    sandbox.clear_requests()
    status, _, doc = call(edge, "PUT", f"{LEASE}?dryRun=All", lease)
    assert (status, doc["spec"]["renewTime"]) == (200, "2030-01-01T00:00:00.000000Z")

    def sent() -> list[str]:  # (the sandbox records a request once its answer is written)
        return [r.query for r in sandbox.requests(f"PUT {LEASE}")
                if r.user_agent.startswith("kubelet")]

    wait_for(sent, 5, "the sandbox to record the dry run")
    assert sent() == ["dryRun=All"]
    assert call(edge, "GET", LEASE)[2]["spec"]["renewTime"] != "2030-01-01T00:00:00.000000Z"


@pytest.mark.parametrize("dry_run", ["All", ""])
def test_offline_a_dry_run_never_changes_the_cache(sandbox, edge, dry_run):
    """kube-apiserver persists nothing of a dryRun=All write (and refuses any other value,
    "" too); offline the hub applied it to the cached Node as a real patch."""
    offline(sandbox, edge)
    status, _, doc = call(edge, "PATCH", f"/api/v1/nodes/{NODE}?dryRun={dry_run}",
                          {"metadata": {"labels": {"dry": "run"}}}, "application/merge-patch+json")
    assert (status, doc["reason"]) == (503, "ServiceUnavailable"), doc
    assert "dry run" in doc["message"]
    assert "dry" not in call(edge, "GET", f"/api/v1/nodes/{NODE}")[2]["metadata"]["labels"]


def pb_call(hub, method: str, path: str, obj: dict):
    """As kubelet writes (client-go's default): a protobuf body, protobuf or JSON accepted."""
    return http(hub.url + path, method=method, body=protobuf.encode(obj),
                headers={"User-Agent": KUBELET, "Content-Type": protobuf.PROTOBUF,
                         "Accept": "application/vnd.kubernetes.protobuf, application/json"})


@pytest.mark.parametrize("cloud", ["online", "offline"])
def test_kubelets_protobuf_lease_renewal_is_answered(sandbox, edge, cloud):
    """kubelet renews its Lease with a protobuf PUT: the hub, which answers it itself, read
    the body as JSON and answered 400, online and offline, at every renewal."""
    lease = call(edge, "GET", LEASE)[2]
    if cloud == "offline":
        offline(sandbox, edge)
    lease["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
    status, headers, raw = pb_call(edge, "PUT", LEASE, lease)
    assert status == 200, raw
    assert headers["Content-Type"] == "application/json"
    assert json.loads(raw)["spec"]["renewTime"] == "2030-01-01T00:00:00.000000Z"
    assert call(edge, "GET", LEASE)[2]["spec"]["renewTime"] == "2030-01-01T00:00:00.000000Z"


def test_offline_a_protobuf_event_is_answered_as_protobuf(sandbox, edge):
    """The accepted event is echoed; a protobuf one was labelled application/json, which
    client-go fails to decode (and retries the event)."""
    offline(sandbox, edge)
    event = {"apiVersion": "v1", "kind": "Event", "reason": "Started",
             "metadata": {"name": "e2.abc", "namespace": "default"}}
    status, headers, raw = pb_call(edge, "POST", "/api/v1/namespaces/default/events", event)
    assert status == 201
    assert headers["Content-Type"] == protobuf.PROTOBUF
    assert protobuf.decode_object(raw)["metadata"]["name"] == "e2.abc"


def _pb_field(number: int, wire: int, payload: bytes) -> bytes:
    return bytes([number << 3 | wire]) + payload


def _pb_bytes(number: int, data: bytes) -> bytes:
    return _pb_field(number, 2, bytes([len(data)]) + data)


def _pb_lease(metadata_field: bytes) -> bytes:
    """A Lease envelope whose metadata holds one field (every length here is below 128)."""
    type_meta = _pb_bytes(1, b"coordination.k8s.io/v1") + _pb_bytes(2, b"Lease")
    return protowire.MAGIC + _pb_bytes(1, type_meta) + _pb_bytes(
        2, _pb_bytes(1, metadata_field))


@pytest.mark.parametrize("metadata_field", [
    _pb_bytes(7, b"ab"),                                    # generation as bytes
    _pb_bytes(8, _pb_field(1, 0, b"\xff" * 8 + b"\x3f")),   # creationTimestamp in year 10^11
    _pb_field(1, 0, b"\x80\x80\x80\x80\x80\x80\x01"),      # the name as a 2^42 varint
], ids=["bytes-for-an-int", "time-out-of-range", "varint-for-a-string"])
def test_a_malformed_protobuf_lease_is_a_400_not_a_500(sandbox, edge, metadata_field):
    """A protobuf body whose fields have the wrong wire type or an impossible time: the
    hub's reader raised TypeError, OSError or MemoryError (a 2^42-byte name was allocated
    for a varint), a 500 InternalError; kube-apiserver answers 400 for a body that does
    not decode."""
    status, _, raw = http(edge.url + LEASE, method="PUT", body=_pb_lease(metadata_field),
                          headers={"User-Agent": KUBELET, "Content-Type": protobuf.PROTOBUF})
    doc = json.loads(raw)
    assert (status, doc["reason"]) == (400, "BadRequest"), doc
    assert "does not decode" in doc["message"]
