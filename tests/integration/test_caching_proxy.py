"""The caching proxy end to end: transparent for clients, and the cache holds what they saw."""

from __future__ import annotations

import gzip
import json
import os
import socket
import stat
import threading
import time

from kubesandbox.server import Sandbox
from tests.fixtures.hub import Hub
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, read_watch_events

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


def cached_names(hub: Hub, component: str, gvr_dir: str) -> set[str]:
    base = hub.cache_dir / component / gvr_dir
    if not base.is_dir():
        return set()
    out = set()
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            if not f.startswith(("_", ".")):
                out.add(os.path.relpath(os.path.join(dirpath, f), base))
    return out


def direct(sandbox: Sandbox, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return http(sandbox.url + path, headers={"User-Agent": KUBELET, **headers})


def test_get_and_list_bodies_are_byte_identical_to_direct(sandbox, hub):
    for path in ("/api/v1/nodes", "/api/v1/nodes/node-0000", "/api/v1/pods",
                 "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000",
                 "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
                 "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                 "/version", "/api", "/apis", "/api/v1"):
        s1, h1, b1 = hub.get(path)
        s2, h2, b2 = direct(sandbox, path)
        assert (s1, b1) == (s2, b2), path
        assert h1.get("Content-Type") == h2.get("Content-Type"), path


def test_gzip_passes_through_untouched_and_is_cached(sandbox, hub):
    # Enough pods that the list passes kube-apiserver's 128 KiB gzip threshold.
    for i in range(40):
        sandbox.put(_pod(f"bulk-{i}", "node-0000", size=4000))
    path = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000"
    s1, h1, b1 = hub.get(path, **{"Accept-Encoding": "gzip"})
    s2, h2, b2 = direct(sandbox, path, **{"Accept-Encoding": "gzip"})
    assert h1.get("Content-Encoding") == "gzip" == h2.get("Content-Encoding")
    assert gzip.decompress(b1) == gzip.decompress(b2)
    names = {i["metadata"]["name"] for i in json.loads(gzip.decompress(b1))["items"]}
    wait_for(lambda: cached_names(hub, "kubelet", "pods.v1.core")
             == {f"default/{n}" for n in names}, what="the gzip list in the cache")


def test_cache_tree_holds_exactly_the_upstream_objects(sandbox, hub):
    status, _, body = hub.get("/api/v1/pods")
    assert status == 200
    items = json.loads(body)["items"]
    expected = {f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in items}
    wait_for(lambda: cached_names(hub, "kubelet", "pods.v1.core") == expected,
             what="the pod list in the cache")
    for item in items:
        md = item["metadata"]
        path = hub.cache_dir / "kubelet" / "pods.v1.core" / md["namespace"] / md["name"]
        on_disk = json.loads(path.read_bytes())
        assert on_disk.pop("kind") == "Pod" and on_disk.pop("apiVersion") == "v1"
        assert on_disk == item
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_watch_streams_events_at_once_and_the_cache_follows(sandbox, hub):
    status, _, body = hub.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    wait_for(lambda: len(cached_names(hub, "kubelet", "pods.v1.core")) == 3,
             what="the initial list")
    events: list[tuple[float, dict]] = []
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    sock.sendall((f"GET /api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=30&"
                  "fieldSelector=spec.nodeName%3Dnode-0000 HTTP/1.1\r\nHost: x\r\n"
                  f"User-Agent: {KUBELET}\r\n\r\n").encode())
    reader = threading.Thread(target=read_watch_events, args=(sock, events), daemon=True)
    reader.start()
    time.sleep(0.3)
    sent = time.monotonic()
    sandbox.put(_pod("fresh", "node-0000"))
    wait_for(lambda: any(e["object"]["metadata"]["name"] == "fresh" for _, e in events),
             timeout=5, what="the ADDED event through the hub")
    arrival = next(t for t, e in events if e["object"]["metadata"]["name"] == "fresh")
    assert arrival - sent < 2.0  # streamed, not buffered until the watch ends
    wait_for(lambda: "default/fresh" in cached_names(hub, "kubelet", "pods.v1.core"),
             timeout=1.5, what="the event in the cache within a second or so")
    sandbox.patch("pods", "fresh", {"metadata": {"labels": {"tier": "gold"}}},
                  namespace="default")
    wait_for(lambda: json.loads((hub.cache_dir / "kubelet/pods.v1.core/default/fresh")
                                .read_bytes())["metadata"]["labels"].get("tier") == "gold",
             timeout=2, what="the MODIFIED event in the cache")
    sandbox.delete("pods", "fresh", namespace="default")
    wait_for(lambda: "default/fresh" not in cached_names(hub, "kubelet", "pods.v1.core"),
             timeout=2, what="the DELETED event removing the file")
    sock.close()


def test_paged_list_is_cached_whole(sandbox, hub):
    first = json.loads(hub.get("/api/v1/pods?limit=2")[2])
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = json.loads(hub.get(f"/api/v1/pods?limit=2&continue={token}")[2])
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
    assert len(names) == 6
    wait_for(lambda: {n.split("/")[1] for n in cached_names(hub, "kubelet", "pods.v1.core")}
             == set(names), what="all pages in the cache")


def test_requests_of_other_components_pass_but_are_not_cached(sandbox, hub):
    status, _, _ = hub.get("/api/v1/pods", ua="curl/8.1")
    assert status == 200
    status, _, _ = hub.get("/api/v1/nodes")
    assert status == 200
    wait_for(lambda: cached_names(hub, "kubelet", "nodes.v1.core"), what="kubelet's nodes")
    assert not (hub.cache_dir / "curl").exists()


def test_protobuf_accept_is_answered_with_json(sandbox, hub):
    status, headers, body = hub.get(
        "/api/v1/nodes/node-0000", Accept="application/vnd.kubernetes.protobuf")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["metadata"]["name"] == "node-0000"


def test_writes_are_forwarded_with_their_bodies(sandbox, hub):
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "through-hub", "namespace": "default"}, "data": {"k": "v"}}
    status, _, body = http(hub.url + "/api/v1/namespaces/default/configmaps", method="POST",
                           headers={"Content-Type": "application/json", "User-Agent": KUBELET},
                           body=json.dumps(cm).encode())
    assert status == 201, body
    assert sandbox.get("configmaps", "through-hub", "default")["data"] == {"k": "v"}
    status, _, body = http(hub.url + "/api/v1/namespaces/default/configmaps/through-hub",
                           method="PATCH", body=b'{"data":{"k":"w"}}',
                           headers={"Content-Type": "application/merge-patch+json",
                                    "User-Agent": KUBELET})
    assert status == 200
    assert sandbox.get("configmaps", "through-hub", "default")["data"] == {"k": "w"}
    path = hub.cache_dir / "kubelet/configmaps.v1.core/default/through-hub"
    wait_for(lambda: path.exists() and json.loads(path.read_bytes())["data"] == {"k": "w"},
             what="the patched object in the cache")
    status, _, _ = http(hub.url + "/api/v1/namespaces/default/configmaps/through-hub",
                        method="DELETE", headers={"User-Agent": KUBELET})
    assert status == 200
    assert sandbox.get("configmaps", "through-hub", "default") is None


def test_errors_from_upstream_pass_through_as_status(sandbox, hub):
    status, _, body = hub.get("/api/v1/namespaces/default/pods/does-not-exist")
    assert status == 404
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["reason"] == "NotFound"


def _pod(name: str, node: str, size: int = 0) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}}
    if size:
        pod["metadata"]["annotations"] = {"padding": "x" * size}
    return pod
