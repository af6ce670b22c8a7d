"""Tables (kubectl's ``Accept: ...;as=Table``) for clients the response filters apply to: the
rows are those of the objects the client's JSON list holds, online and offline, lists and
watches, through the multiplexer's resources (services, endpointslices) and the others.

A real hub on node-0001 of a four-node sandbox (node-0000/0001 in pool-a, node-0002/0003 in
pool-b): kube-proxy gets servicetopology (web-pool's endpoints of pool-a only) and
discardcloudservice (web-lb, a cloud load balancer, is dropped; web-lb-kept is not).
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import read_watch_events
from tests.integration.kubeproxylike import flip_discards
from tests.integration.test_tables import cells, go_offline

NODE = "node-0001"
KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
KUBECTL = "kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd"
# kubectl get's Accept
TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
         "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
SERVICES = "/api/v1/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
ENDPOINTS = "/api/v1/endpoints"
CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
POOL_A = "10.128.0.206,10.128.4.206"
MUX = "yurthub-multiplexer"


@pytest.fixture
def hub(sandbox4, hub_factory):
    return hub_factory(sandbox4.url, node=NODE, extra=["--cache-agents", "kubectl"])


def table(hub, path: str, ua: str) -> dict[str, Any]:
    status, _, body = hub.get(path, ua=ua, Accept=TABLE)
    assert status == 200, body
    doc = json.loads(body)  # a whole body: a cut one raises (IncompleteRead) in hub.get
    assert doc["kind"] == "Table", doc
    return doc


def listed(hub, path: str, ua: str) -> dict[str, Any]:
    status, _, body = hub.get(path, ua=ua)
    assert status == 200, body
    return json.loads(body)


def rows(doc: dict[str, Any]) -> dict[str, list[Any]]:
    """A Table's rows by name (namespace-scoped names are unique in these namespaces)."""
    return {r["cells"][0]: r["cells"] for r in doc["rows"]}


def names(doc: dict[str, Any]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in doc["items"])


def endpoints_cell(slice_: dict[str, Any]) -> str:
    """The Endpoints column kube-apiserver prints for a slice (up to three addresses)."""
    addrs = [a for ep in slice_.get("endpoints") or [] for a in ep["addresses"]]
    text = ",".join(addrs[:3])
    return f"{text} + {len(addrs) - 3} more..." if len(addrs) > 3 else text or "<unset>"


def shared_copy_cached(hub, collection: str, path: str) -> None:
    """Wait until the multiplexer's copy of ``collection`` is in the cache (it answers offline
    Tables of pool-scoped resources), before the cloud goes."""
    everything = len(listed(hub, path, "edge-x/1.0")["items"])  # no filter for edge-x
    wait_for(lambda: hub.metric("yurthub_cache_objects", component=MUX,
                                resource=collection) == everything,
             what=f"the shared {collection} in the cache")


def assert_table_is_the_filtered_list(hub, path: str, ua: str) -> dict[str, Any]:
    doc = table(hub, path, ua)
    assert sorted(rows(doc)) == names(listed(hub, path, ua)), path
    return doc


def test_kube_proxy_tables_hold_its_filtered_objects_online_and_offline(sandbox4, hub):
    for phase in ("online", "offline"):
        if phase == "offline":
            shared_copy_cached(hub, "services.v1.core", SERVICES)
            shared_copy_cached(hub, "endpointslices.v1.discovery.k8s.io", SLICES)
            kubelets = len(listed(hub, CONFIGMAPS, KUBELET)["items"])
            wait_for(lambda n=kubelets: hub.metric(
                "yurthub_cache_objects", component="kubelet", resource="configmaps.v1.core") == n,
                what="kubelet's configmaps in the cache")
            go_offline(sandbox4, hub)
        svc = assert_table_is_the_filtered_list(hub, SERVICES, KUBE_PROXY)
        assert "web-lb" not in rows(svc) and "web-lb-kept" in rows(svc), phase
        slices = assert_table_is_the_filtered_list(hub, SLICES, KUBE_PROXY)
        assert [c["name"] for c in slices["columnDefinitions"]] == [
            "Name", "AddressType", "Ports", "Endpoints", "Age"]
        # The Endpoints column is that of the filtered slices, slice by slice.
        by_name = {i["metadata"]["name"]: i for i in listed(hub, SLICES, KUBE_PROXY)["items"]}
        assert {n: r[3] for n, r in rows(slices).items()} == {
            n: endpoints_cell(s) for n, s in by_name.items()}, phase
        assert rows(slices)["web-pool-sbx01"][3] == POOL_A, phase
        eps = assert_table_is_the_filtered_list(hub, ENDPOINTS, KUBE_PROXY)
        assert rows(eps)["web-pool"][1] == "10.128.0.206:8080,10.128.4.206:8080", phase
        # inclusterconfig (kubelet, configmaps): the rows are printed, none cut off.
        assert_table_is_the_filtered_list(hub, CONFIGMAPS, KUBELET)
        # includeObject=Object embeds the filtered object, typed as kube-apiserver types it.
        full = table(hub, SLICES + "?includeObject=Object", KUBE_PROXY)
        obj = next(r["object"] for r in full["rows"] if r["cells"][0] == "web-pool-sbx01")
        assert (obj["kind"], obj["apiVersion"]) == ("EndpointSlice", "discovery.k8s.io/v1")
        assert endpoints_cell(obj) == POOL_A, phase
        assert full["metadata"]["resourceVersion"], phase


def test_kube_proxy_table_watches_are_filtered_online_and_offline(sandbox4, hub):
    listed_table = table(hub, SERVICES, KUBE_PROXY)
    rv = listed_table["metadata"]["resourceVersion"]
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    sock.sendall(f"GET {SERVICES}?watch=true&resourceVersion={rv}&timeoutSeconds=30 HTTP/1.1\r\n"
                 f"Host: x\r\nUser-Agent: {KUBE_PROXY}\r\nAccept: {TABLE}\r\n\r\n".encode())
    events: list = []
    threading.Thread(target=read_watch_events, args=(sock, events), daemon=True).start()
    wait_for(lambda: hub.metric("yurthub_open_watches") >= 1, what="the watch open")
    # web-lb (dropped by the list) starts passing: ADDED; web-lb-kept becomes discarded:
    # DELETED (the client had it); a change to web-nodeport: MODIFIED.
    flip_discards(sandbox4)
    wait_for(lambda: len(events) >= 3, what="three events")
    sock.close()
    got = [(e["type"], [r["cells"][0] for r in e["object"]["rows"]]) for _, e in events]
    assert got[:3] == [("ADDED", ["web-lb"]), ("DELETED", ["web-lb-kept"]),
                       ("MODIFIED", ["web-nodeport"])]
    assert all(e["object"]["kind"] == "Table" for _, e in events)
    assert events[0][1]["object"]["columnDefinitions"][0]["name"] == "Name"
    assert all(e["object"]["columnDefinitions"] is None for _, e in events[1:])

    # Offline, a watch from the start gets one-row Tables of the filtered objects only.
    shared_copy_cached(hub, "services.v1.core", SERVICES)
    go_offline(sandbox4, hub)
    status, _, raw = hub.get(f"{SERVICES}?watch=true&resourceVersion=0&timeoutSeconds=1",
                             ua=KUBE_PROXY, Accept=TABLE)
    assert status == 200, raw
    offline = [json.loads(line) for line in raw.splitlines() if line.strip()]
    shown = sorted(r["cells"][0] for e in offline for r in e["object"]["rows"])
    assert shown == names(listed(hub, SERVICES, KUBE_PROXY))
    assert "web-lb-kept" not in shown and "web-lb" in shown


def test_kubectl_get_for_a_client_yurt_hub_cfg_filters(sandbox4, hub, tmp_path):
    kubectl = Kubectl(tmp_path, hub.url)
    cfg = sandbox4.get("configmaps", "yurt-hub-cfg", "kube-system")
    cfg["data"]["discardcloudservice"] = "kubectl"
    sandbox4.put(cfg)
    wait_for(lambda: "web-lb" not in names(listed(hub, "/api/v1/namespaces/default/services",
                                                  KUBECTL)),
             what="discardcloudservice for kubectl")
    for phase in ("online", "offline"):
        if phase == "offline":
            shared_copy_cached(hub, "services.v1.core", SERVICES)
            go_offline(sandbox4, hub)
        r = kubectl("get", "svc", "-n", "default")
        header, got = cells(r.stdout)
        assert header[:3] == ["NAME", "TYPE", "CLUSTER-IP"], (phase, r.stdout)
        shown = sorted(row[0] for row in got)
        assert shown == names(listed(hub, "/api/v1/namespaces/default/services", KUBECTL))
        assert "web-lb" not in shown and "web-lb-kept" in shown, (phase, r.stdout)
        lb = next(row for row in got if row[0] == "web-lb-kept")
        assert lb[1] == "LoadBalancer", phase
        if phase == "online":
            # What kubectl needs offline (its discovery) is cached meanwhile.
            kubectl("get", "svc", "-n", "default", "-o", "json")
