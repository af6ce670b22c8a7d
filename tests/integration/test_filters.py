"""YurtHub's filters end to end: a real hub (gunicorn) on node-0001 of a four-node sandbox
(node-0000/0001 in pool-a, node-0002/0003 in pool-b), real clients.

Endpoint addresses follow the sandbox's layout: web-pool's endpoint on node-000N is
10.128.(4N).206, web-hostname's 10.128.(4N).201 (kubesandbox.openyurt).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading

import pytest
from kubernetes import client

from tests.fixtures.hub import Hub
from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, read_watch_events
from tests.integration.kubeproxylike import EndpointSliceInformer, api_client, flip_discards

NODE = "node-0001"
KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
ALL_WEB_POOL = ["10.128.0.206", "10.128.4.206", "10.128.8.206", "10.128.12.206"]
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"


@pytest.fixture
def hub(sandbox4, hub_factory):
    return hub_factory(sandbox4.url, node=NODE, extra=["--cache-agents", "edge-proxy"])


def go_offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")


def expected_kube_proxy_view() -> dict[str, list[str]]:
    return {
        "kubernetes": ["169.254.2.1"],
        "web-hostname-sbx01": ["10.128.4.201"],
        "web-pool-sbx01": ["10.128.0.206", "10.128.4.206"],
        "web-zone-sbx01": ["10.128.0.207", "10.128.4.207"],
        "web-plain-sbx01": ["10.128.0.205", "10.128.4.205", "10.128.8.205", "10.128.12.205"],
        "web-lb-sbx01": ["10.128.0.202", "10.128.4.202", "10.128.8.202", "10.128.12.202"],
        "web-lb-kept-sbx01": ["10.128.0.203", "10.128.4.203", "10.128.8.203",
                              "10.128.12.203"],
        "web-nodeport-sbx01": ["10.128.0.204", "10.128.4.204", "10.128.8.204",
                               "10.128.12.204"],
    }


def test_kube_proxy_sees_topology_online_offline_and_endpoints_moving(sandbox4, hub):
    informer = EndpointSliceInformer(hub.url).start()
    try:
        wait_for(lambda: informer.snapshot() == expected_kube_proxy_view(),
                 what=f"kube-proxy's filtered view (now {informer.snapshot()})")
        assert informer.ports["kubernetes"] == [10268]
        # node-0000's web-pool endpoint moves to node-0003 (pool-b): it goes from the view;
        # node-0002's moves to node-0000 (pool-a): it comes in.
        s = sandbox4.get("endpointslices", "web-pool-sbx01", "default")
        s["endpoints"][0]["nodeName"] = "node-0003"
        sandbox4.put(s)
        wait_for(lambda: informer.snapshot()["web-pool-sbx01"] == ["10.128.4.206"],
                 what="the moved endpoint to leave kube-proxy's view")
        s = sandbox4.get("endpointslices", "web-pool-sbx01", "default")
        s["endpoints"][2]["nodeName"] = "node-0000"
        sandbox4.put(s)
        wait_for(lambda: informer.snapshot()["web-pool-sbx01"] == [
            "10.128.4.206", "10.128.8.206"], what="the moved endpoint to join")
        moves = [e for e in informer.events if e[1] == "web-pool-sbx01"]
        assert moves[-2:] == [("MODIFIED", "web-pool-sbx01", ["10.128.4.206"]),
                              ("MODIFIED", "web-pool-sbx01", ["10.128.4.206", "10.128.8.206"])]
        online = informer.snapshot()
        relists = informer.relists
        go_offline(sandbox4, hub)
        # kube-proxy's watch is the multiplexer's: it goes on through the outage (no relist),
        # and a list answered meanwhile is the same filtered view, from the shared state.
        body = json.loads(hub.get(SLICES, ua=KUBE_PROXY)[2])
        assert {i["metadata"]["name"]: [a for ep in i["endpoints"] for a in ep["addresses"]]
                for i in body["items"]} == online
        assert informer.relists == relists and informer.snapshot() == online
        # A hub restart with the cloud still away: the filters' inputs come from the cache.
        informer.stop()
        hub.stop()
        hub.start()
        body = json.loads(hub.get(SLICES, ua=KUBE_PROXY)[2])
        assert {i["metadata"]["name"]: [a for ep in i["endpoints"] for a in ep["addresses"]]
                for i in body["items"]} == online
    finally:
        informer.stop()


def test_kubectl_is_not_filtered_and_coredns_gets_untouched_bytes(sandbox4, hub, tmp_path):
    kubectl = Kubectl(tmp_path, hub.url)
    r = kubectl("get", "endpointslices", "-A", "-o", "json")
    got = {i["metadata"]["name"]: [a for ep in i["endpoints"] for a in ep["addresses"]]
           for i in json.loads(r.stdout)["items"]}
    assert got["web-pool-sbx01"] == ALL_WEB_POOL
    assert got["kubernetes"] == ["127.0.0.1"]
    # coredns gets servicetopology, which leaves a Service without topology alone: the very
    # bytes kube-apiserver sent.
    path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=" \
           "kubernetes.io%2Fservice-name%3Dweb-plain"
    through = hub.get(path, ua="coredns/1.11")[2]
    direct = http(sandbox4.url + path, headers={"User-Agent": "coredns/1.11"})[2]
    assert through == direct


def test_kubelet_sees_the_hub_as_the_kubernetes_service_configmap_and_pod_env(sandbox4, hub):
    core = client.CoreV1Api(api_client(hub.url, KUBELET))
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == "10.96.0.1"  # a get is not filtered (YurtHub's verbs)
    svcs = {s.metadata.name: s for s in core.list_service_for_all_namespaces().items}
    k = svcs["kubernetes"]
    assert k.spec.cluster_ip == "169.254.2.1"
    assert [(p.name, p.port) for p in k.spec.ports] == [("https", 10268)]
    raw = json.loads(hub.get("/api/v1/services", ua=KUBELET)[2])
    spec = next(i["spec"] for i in raw["items"] if i["metadata"]["name"] == "kubernetes")
    assert spec["clusterIPs"] == ["169.254.2.1"]
    assert svcs["web-lb"].spec.type == "LoadBalancer"  # discardcloudservice is kube-proxy's
    cm = core.read_namespaced_config_map("kube-proxy", "kube-system")
    assert "  #kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n" in cm.data["config.conf"]
    sandbox4.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "flannel-x", "namespace": "kube-system"}, "spec": {
        "nodeName": NODE, "hostNetwork": True, "containers": [{
            "name": "flannel", "image": "flannel", "env": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": "443"},
                {"name": "POD_NAME", "value": "x"}]}]}})
    pod = core.read_namespaced_pod("flannel-x", "kube-system")
    assert [(e.name, e.value) for e in pod.spec.containers[0].env] == [
        ("KUBERNETES_SERVICE_HOST", "169.254.2.1"), ("KUBERNETES_SERVICE_PORT", "10268"),
        ("POD_NAME", "x")]
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE}").items
    flannel = next(p for p in pods if p.metadata.name == "flannel-x")
    assert flannel.spec.containers[0].env[0].value == "169.254.2.1"
    # The cache holds what kubelet saw: the offline answer is the same.
    path = hub.cache_dir / "kubelet/pods.v1.core/kube-system/flannel-x"
    wait_for(path.exists, what="the pod in kubelet's cache")
    # (the ConfigMap read above is written by the cache writer in its own time)
    wait_for((hub.cache_dir / "kubelet/configmaps.v1.core/kube-system/kube-proxy").exists,
             what="the ConfigMap in kubelet's cache")
    assert json.loads(path.read_bytes())["spec"]["containers"][0]["env"][1]["value"] == "10268"
    go_offline(sandbox4, hub)
    offline = core.read_namespaced_pod("flannel-x", "kube-system")
    assert offline.spec.containers[0].env[0].value == "169.254.2.1"
    cm = core.read_namespaced_config_map("kube-proxy", "kube-system")
    assert "  #kubeconfig:" in cm.data["config.conf"]


@pytest.fixture
def hub_without_mux(sandbox4, hub_factory):
    return hub_factory(sandbox4.url, node=NODE, extra=["--cache-agents", "edge-proxy",
                                                       "--pool-scope-resources", ""])


def test_yurt_hub_cfg_adding_a_client_takes_effect_without_a_restart(sandbox4,
                                                                     hub_without_mux):
    # Each component's own cached copy (the multiplexer off; with it, see test_mux_filters):
    # edge-proxy (a cache agent) lists and watches on a raw socket; edge-lb runs an informer.
    hub = hub_without_mux
    listed = json.loads(hub.get(SLICES, ua="edge-proxy/1.0")[2])
    assert len([ep for i in listed["items"] if i["metadata"]["name"] == "web-pool-sbx01"
                for ep in i["endpoints"]]) == 4
    rv = listed["metadata"]["resourceVersion"]
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="edge-proxy") == 8,
             what="edge-proxy's list in the cache")
    assert hub.metric("yurthub_cache_view_stale", component="edge-proxy") == 0
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    sock.sendall(f"GET {SLICES}?watch=true&resourceVersion={rv}&timeoutSeconds=60 HTTP/1.1\r\n"
                 f"Host: x\r\nUser-Agent: edge-proxy/1.0\r\n\r\n".encode())
    sock.settimeout(20)
    informer = EndpointSliceInformer(hub.url, "edge-lb/2.0").start()
    try:
        wait_for(lambda: informer.snapshot().get("web-pool-sbx01") == ALL_WEB_POOL,
                 what="edge-lb's unfiltered view")
        relists = informer.relists
        cfg = sandbox4.get("configmaps", "yurt-hub-cfg", "kube-system")
        cfg["data"]["servicetopology"] = "edge-proxy, edge-lb"
        sandbox4.put(cfg)
        wait_for(lambda: informer.snapshot().get("web-pool-sbx01") == [
            "10.128.0.206", "10.128.4.206"], what="edge-lb's view filtered")
        assert informer.relists > relists, "the open watch was not ended"
        assert not [e for e in informer.errors if "watch" in e], informer.errors
    finally:
        informer.stop()
    # edge-proxy's watch ended cleanly (the terminating chunk), and its cached view, filtered
    # under the old settings, is marked stale until it lists again.
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the watch was cut instead of ended: {data[-200:]!r}"
        data += chunk
    sock.close()
    wait_for(lambda: hub.metric("yurthub_cache_view_stale", component="edge-proxy") == 1,
             what="edge-proxy's cached view marked stale")
    relisted = json.loads(hub.get(SLICES, ua="edge-proxy/1.0")[2])
    assert [a for i in relisted["items"] if i["metadata"]["name"] == "web-pool-sbx01"
            for ep in i["endpoints"] for a in ep["addresses"]] == ["10.128.0.206",
                                                                   "10.128.4.206"]
    wait_for(lambda: hub.metric("yurthub_cache_view_stale", component="edge-proxy") == 0,
             what="the fresh list to replace the stale view")


def test_pool_membership_and_annotations_changing_end_watches_and_refilter(sandbox4, hub):
    informer = EndpointSliceInformer(hub.url).start()
    try:
        wait_for(lambda: informer.snapshot() == expected_kube_proxy_view(),
                 what="kube-proxy's filtered view")
        relists = informer.relists
        pool = sandbox4.get("nodepools", "pool-a")
        pool["status"]["nodes"] = ["node-0001", "node-0002"]
        sandbox4.patch("nodepools", "pool-a", {"status": {"nodes": ["node-0001", "node-0002"]}},
                       patch_type="merge", subresource="status")
        wait_for(lambda: informer.snapshot()["web-pool-sbx01"] == [
            "10.128.4.206", "10.128.8.206"], what="the new pool members' endpoints")
        assert informer.relists > relists
        relists = informer.relists
        sandbox4.patch("services", "web-plain", {"metadata": {"annotations": {
            "openyurt.io/topologyKeys": "kubernetes.io/hostname"}}}, namespace="default")
        wait_for(lambda: informer.snapshot()["web-plain-sbx01"] == ["10.128.4.205"],
                 what="a Service's new topology annotation to apply")
        assert informer.relists > relists
        relists = informer.relists
        node = sandbox4.get("nodes", NODE)
        node["metadata"]["labels"]["apps.openyurt.io/nodepool"] = "pool-b"
        sandbox4.put(node)
        wait_for(lambda: informer.snapshot()["web-pool-sbx01"] == [
            "10.128.8.206", "10.128.12.206"], what="this node's new pool")
        assert informer.relists > relists
    finally:
        informer.stop()


def test_a_dropped_service_is_deleted_only_for_who_had_it(sandbox4, hub):
    status, _, body = hub.get("/api/v1/services", ua=KUBE_PROXY)
    listed = json.loads(body)
    names = {i["metadata"]["name"] for i in listed["items"]}
    assert "web-lb" not in names and "web-lb-kept" in names  # discardcloudservice
    assert "web-nodeport" in names  # listen: pool-a, and node-0001 is in pool-a
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    rv = listed["metadata"]["resourceVersion"]
    sock.sendall(f"GET /api/v1/services?watch=true&resourceVersion={rv}&timeoutSeconds=30 "
                 f"HTTP/1.1\r\nHost: x\r\nUser-Agent: {KUBE_PROXY}\r\n\r\n".encode())
    events: list = []
    threading.Thread(target=read_watch_events, args=(sock, events), daemon=True).start()
    ann = {"svc.openyurt.io/discard": "true", "touched": "1"}
    sandbox4.patch("services", "web-lb", {"metadata": {"annotations": ann}}, namespace="default")
    flip_discards(sandbox4)
    wait_for(lambda: len(events) >= 3, what="three events")
    got = [(e["type"], e["object"]["metadata"]["name"]) for _, e in events]
    # web-lb changed while discarded: nothing; then it passes: ADDED; web-lb-kept becomes
    # discarded: DELETED; web-nodeport changes as usual.
    assert got == [("ADDED", "web-lb"), ("DELETED", "web-lb-kept"),
                   ("MODIFIED", "web-nodeport")]
    sock.close()


def _watch(hub: Hub, path: str, events: list) -> tuple[socket.socket, threading.Thread]:
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {KUBE_PROXY}\r\n\r\n".encode())
    reader = threading.Thread(target=read_watch_events, args=(sock, events), daemon=True)
    reader.start()
    return sock, reader


def test_a_watch_from_before_a_drop_another_watch_saw_gets_its_deleted(sandbox4,
                                                                       hub_factory):
    # Services the usual way (not shared): two kube-proxy watches, the second from a list
    # taken before the first one saw web-lb-kept discarded.  The second client has
    # web-lb-kept; it must get the DELETED too, or it keeps the discarded Service for good.
    h = hub_factory(sandbox4.url, node=NODE, extra=["--pool-scope-resources", ""])
    first = json.loads(h.get("/api/v1/services", ua=KUBE_PROXY)[2])
    seen: list = []
    a, _ = _watch(h, "/api/v1/services?watch=true&resourceVersion="
               f"{first['metadata']['resourceVersion']}&timeoutSeconds=60", seen)
    second = json.loads(h.get("/api/v1/services", ua=KUBE_PROXY)[2])
    assert "web-lb-kept" in {i["metadata"]["name"] for i in second["items"]}
    sandbox4.patch("services", "web-lb-kept", {"metadata": {"annotations": {
        "svc.openyurt.io/discard": "true"}}}, namespace="default")
    wait_for(lambda: seen, what="the first watch's event")
    assert [(e["type"], e["object"]["metadata"]["name"]) for _, e in seen] == [
        ("DELETED", "web-lb-kept")]
    got: list = []
    b, _ = _watch(h, "/api/v1/services?watch=true&resourceVersion="
               f"{second['metadata']['resourceVersion']}&timeoutSeconds=3", got)
    wait_for(lambda: got, what="the second watch's event")
    assert [(e["type"], e["object"]["metadata"]["name"]) for _, e in got] == [
        ("DELETED", "web-lb-kept")]
    a.close()
    b.close()


def test_a_relisting_kube_proxy_is_told_of_a_drop_after_one_it_never_saw(sandbox4,
                                                                         hub_factory):
    # kube-proxy's watch (services the usual way) sees web-lb-kept discarded, then ends
    # (kube-proxy restarts).  web-lb-kept is kept again meanwhile; the new kube-proxy lists
    # it, with kube-proxy's label selectors, and watches.  Discarded again, it must go.
    h = hub_factory(sandbox4.url, node=NODE, extra=["--pool-scope-resources", ""])
    path = "/api/v1/services?labelSelector=%21service.kubernetes.io%2Fheadless"
    first = json.loads(h.get(path, ua=KUBE_PROXY)[2])
    seen: list = []
    a, reader = _watch(h, f"{path}&watch=true&resourceVersion="
                       f"{first['metadata']['resourceVersion']}&timeoutSeconds=2", seen)
    discard = {"metadata": {"annotations": {"svc.openyurt.io/discard": "true"}}}
    sandbox4.patch("services", "web-lb-kept", discard, namespace="default")
    wait_for(lambda: seen, what="the first watch's event")
    wait_for(lambda: not reader.is_alive(), what="the first watch to end")
    a.close()
    sandbox4.patch("services", "web-lb-kept", {"metadata": {"annotations": {
        "svc.openyurt.io/discard": "false"}}}, namespace="default")
    second = json.loads(h.get(path, ua=KUBE_PROXY)[2])
    assert "web-lb-kept" in {i["metadata"]["name"] for i in second["items"]}
    got: list = []
    b, _ = _watch(h, f"{path}&watch=true&resourceVersion="
                  f"{second['metadata']['resourceVersion']}&timeoutSeconds=3", got)
    sandbox4.patch("services", "web-lb-kept", discard, namespace="default")
    wait_for(lambda: got, what="the second watch's event")
    assert [(e["type"], e["object"]["metadata"]["name"]) for _, e in got] == [
        ("DELETED", "web-lb-kept")]
    b.close()


def test_not_ready_until_the_configuration_is_known_then_filtered(sandbox4, tmp_path):
    sandbox4.fail_next(10_000, 503, match="yurt-hub-cfg")
    h = Hub(tmp_path, sandbox4.url, node=NODE).start(wait=False)
    try:
        wait_for(h.started, what="the hub to serve")
        status, body = _readyz(h)
        assert status == 503 and "yurt-hub-cfg" in body
        status, _, raw = h.get(SLICES, ua=KUBE_PROXY)
        doc = json.loads(raw)
        assert status == 503 and doc["kind"] == "Status" and "yurt-hub-cfg" in doc["message"]
        # What no filter touches is served meanwhile.
        assert h.get("/api/v1/namespaces/default/secrets", ua=KUBE_PROXY)[0] == 200
        sandbox4.clear_faults()
        wait_for(lambda: _readyz(h) == (200, "OK"), timeout=30,
                 what="ready once yurt-hub-cfg is read")
        body = json.loads(h.get(SLICES, ua=KUBE_PROXY)[2])
        slices = {i["metadata"]["name"]: i for i in body["items"]}
        assert slices["kubernetes"]["endpoints"][0]["addresses"] == ["169.254.2.1"]
    finally:
        h.kill()


def _readyz(h: Hub) -> tuple[int, str] | None:
    try:
        status, _, body = http(h.hub_url + "/v1/readyz", timeout=2)
    except OSError:
        return None
    return status, body.decode()


def test_gzip_lists_are_filtered_and_compressed_again(sandbox4, hub):
    for i in range(150):
        s = sandbox4.get("endpointslices", "web-pool-sbx01", "default")
        s["metadata"] = {"name": f"web-pool-extra-{i:03d}", "namespace": "default",
                         "labels": s["metadata"]["labels"], "annotations": {"pad": "p" * 800}}
        sandbox4.put(s)
    status, headers, body = hub.get(SLICES, ua=KUBE_PROXY, **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    doc = json.loads(gzip.decompress(body))
    extra = [i for i in doc["items"] if i["metadata"]["name"].startswith("web-pool-extra")]
    assert len(extra) == 150
    assert {a for i in extra for ep in i["endpoints"] for a in ep["addresses"]} == {
        "10.128.0.206", "10.128.4.206"}
    status, headers, body = hub.get(SLICES, ua=KUBE_PROXY)
    assert "Content-Encoding" not in headers and len(json.loads(body)["items"]) == 158


def test_yurt_hub_cfg_cache_agents_are_cached_without_a_restart(sandbox4, hub):
    assert hub.get("/api/v1/namespaces/default/configmaps", ua="edge-x/1.0")[0] == 200
    assert hub.metric("yurthub_cache_objects", component="edge-x") == 0
    cfg = sandbox4.get("configmaps", "yurt-hub-cfg", "kube-system")
    cfg["data"]["cache_agents"] = "edge-x"
    sandbox4.put(cfg)

    def cached() -> bool:
        hub.get("/api/v1/namespaces/default/configmaps", ua="edge-x/1.0")
        return hub.metric("yurthub_cache_objects", component="edge-x") >= 1

    wait_for(cached, what="edge-x's answers in the cache")


def _watch_lines(hub: Hub, path: str, rv: str, ua: str) -> list[dict]:
    """The events of a short watch from ``rv`` (it ends after 2 s unless ended sooner)."""
    status, _, body = hub.get(f"{path}?watch=true&resourceVersion={rv}&timeoutSeconds=2",
                              ua=ua)
    assert status == 200, body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _web_plain(doc: dict, slices: bool) -> list[str]:
    if slices:
        return [a for i in doc["items"] if i["metadata"]["name"] == "web-plain-sbx01"
                for ep in i["endpoints"] for a in ep["addresses"]]
    return [a["ip"] for i in doc["items"] if i["metadata"]["name"] == "web-plain"
            for s in i.get("subsets", []) for a in s.get("addresses", [])]


@pytest.mark.parametrize("path", [SLICES, "/api/v1/endpoints"])
def test_a_watch_from_a_list_filtered_before_a_change_is_told_to_list_again(sandbox4, hub,
                                                                             path):
    # kube-proxy lists; a Service's topology then changes before it watches.  Its list was
    # filtered the old way and nothing in it changes upstream, so a watch from the list's
    # version would never correct it: the hub answers 410 Expired (client-go lists again),
    # then serves the watch from the new list.  EndpointSlices come through the
    # multiplexer, Endpoints from the cloud directly.
    slices = path == SLICES
    listed = json.loads(hub.get(path, ua=KUBE_PROXY)[2])
    assert len(_web_plain(listed, slices)) == 4  # no topology yet
    sandbox4.patch("services", "web-plain", {"metadata": {"annotations": {
        "openyurt.io/topologyKeys": "kubernetes.io/hostname"}}}, namespace="default")
    # coredns gets the same filter: its answer shows when the hub has the change
    wait_for(lambda: _web_plain(json.loads(hub.get(path, ua="coredns/1.11")[2]), slices)
             == ["10.128.4.205"], what="the hub to apply the new topology")
    events = _watch_lines(hub, path, listed["metadata"]["resourceVersion"], KUBE_PROXY)
    assert [(e["type"], e["object"].get("code"), e["object"].get("reason"))
            for e in events] == [("ERROR", 410, "Expired")]
    relisted = json.loads(hub.get(path, ua=KUBE_PROXY)[2])
    assert _web_plain(relisted, slices) == ["10.128.4.205"]
    events = _watch_lines(hub, path, relisted["metadata"]["resourceVersion"], KUBE_PROXY)
    assert [e for e in events if e["type"] == "ERROR"] == []


def _endpoints_of(hub, name: str) -> tuple[list[str], str]:
    """kube-proxy's list of Endpoints: ``name``'s addresses, and the answer's Warning."""
    status, headers, body = hub.get("/api/v1/endpoints", ua=KUBE_PROXY)
    assert status == 200, body[:300]
    item = next(i for i in json.loads(body)["items"] if i["metadata"]["name"] == name)
    return sorted(a["ip"] for s in item.get("subsets") or [] for a in s.get("addresses", [])), \
        headers.get("Warning", "")


def test_offline_lists_give_what_was_last_listed_after_a_topology_change(sandbox4,
                                                                        hub_without_mux):
    # kube-proxy's Endpoints are its own cached copy; the topology changes, not the versions.
    hub = hub_without_mux
    assert _endpoints_of(hub, "web-pool")[0] == ["10.128.0.206", "10.128.4.206"]
    sandbox4.patch("services", "web-pool", {"metadata": {"annotations": {
        "openyurt.io/topologyKeys": None}}}, namespace="default", patch_type="merge")

    def relisted() -> bool:  # online, and its view in the cache (written) fresh again
        cached = {"component": "kube-proxy", "resource": "endpoints.v1.core"}
        return _endpoints_of(hub, "web-pool")[0] == sorted(ALL_WEB_POOL) \
            and hub.metric("yurthub_cache_objects", **cached) == 8 \
            and hub.metric("yurthub_cache_view_stale", **cached) == 0
    wait_for(relisted, what="kube-proxy's relist of every endpoint, cached")
    go_offline(sandbox4, hub)
    addresses, warning = _endpoints_of(hub, "web-pool")
    assert addresses == sorted(ALL_WEB_POOL)
    assert "served from the yurthub cache" in warning and "incomplete" not in warning
    hub.stop()
    hub.start()  # still offline
    assert _endpoints_of(hub, "web-pool")[0] == sorted(ALL_WEB_POOL)


def _env_of(hub, pod: str) -> tuple[str, str]:
    """kubelet's list of its pods: ``pod``'s KUBERNETES_SERVICE_HOST, and the Warning."""
    status, headers, body = hub.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")
    assert status == 200, body[:300]
    item = next(i for i in json.loads(body)["items"] if i["metadata"]["name"] == pod)
    return item["spec"]["containers"][0]["env"][0]["value"], headers.get("Warning", "")


def test_a_restart_with_other_filter_settings_rewrites_what_they_touch(sandbox4, hub):
    sandbox4.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "env-x", "namespace": "default"}, "spec": {
        "nodeName": NODE, "containers": [{"name": "a", "image": "busybox", "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"}]}]}})
    assert _env_of(hub, "env-x")[0] == "169.254.2.1"  # serviceenvupdater
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") >= 1, what="kubelet's pods cached")
    hub.stop()
    hub.extra += ["--disabled-resource-filters", "serviceenvupdater"]
    # Started without the cloud: what the cache holds was filtered under other settings,
    # and the offline answer says so.
    sandbox4.offline()
    hub.start()
    value, warning = _env_of(hub, "env-x")
    assert value == "169.254.2.1" and "the response filters changed" in warning
    hub.stop()
    sandbox4.online()
    hub.start()
    online = _env_of(hub, "env-x")
    assert online[0] == "10.96.0.1" and not online[1]
    wait_for(lambda: hub.metric("yurthub_cache_view_stale", component="kubelet",
                                resource="pods.v1.core") == 0, what="kubelet's relist cached")
    go_offline(sandbox4, hub)
    value, warning = _env_of(hub, "env-x")
    assert value == "10.96.0.1" and "incomplete" not in warning
