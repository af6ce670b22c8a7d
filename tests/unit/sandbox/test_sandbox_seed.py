"""Seed data: realistic shapes, the fields selection needs, sizes, and scale."""

from __future__ import annotations

import json

import pytest

from kubesandbox import seed
from kubesandbox.objects import make_entry
from yurthub.kube import fields
from yurthub.kube.resources import builtin

PODS = builtin("", "v1", "pods")


def test_pods_are_about_5kb_and_shaped_like_real_pods():
    entries, last = seed.pod_entries(2, 3, 100, ts="2030-01-02T03:04:05Z")
    assert last == 106 and [e.rv for e in entries] == list(range(101, 107))
    sizes = [len(e.data) for e in entries]
    assert all(4000 <= s <= 6500 for s in sizes), sizes
    pod = json.loads(entries[4].data)
    meta = pod["metadata"]
    assert (pod["kind"], pod["apiVersion"]) == ("Pod", "v1")
    assert meta["resourceVersion"] == str(entries[4].rv)
    assert meta["creationTimestamp"] == "2030-01-02T03:04:05Z"
    assert meta["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert meta["managedFields"] and meta["labels"]["pod-template-hash"]
    c = pod["spec"]["containers"][0]
    assert c["env"] and c["ports"] and c["livenessProbe"] and c["volumeMounts"]
    st = pod["status"]
    assert st["podIP"] == st["podIPs"][0]["ip"] and st["containerStatuses"][0]["ready"]
    assert {x["type"] for x in st["conditions"]} >= {"Ready", "PodScheduled"}
    assert pod["spec"]["nodeName"] == "node-0001"
    # the precomputed selection data equals what the object itself gives
    for e in entries:
        obj = json.loads(e.data)
        assert e.fields == fields.selectable_values(obj, PODS)
        assert e.labels == obj["metadata"]["labels"]
        assert json.loads(b"".join(e.item())) == {k: v for k, v in obj.items()
                                                  if k not in ("kind", "apiVersion")}
        assert e.data == make_entry(obj, PODS, e.rv).data


def test_names_and_ips_are_unique_and_stable():
    a, _ = seed.pod_entries(20, 50, 0)
    b, _ = seed.pod_entries(20, 50, 0)
    assert [e.name for e in a] == [e.name for e in b]
    assert len({e.name for e in a}) == 1000
    assert len({e.fields["status.podIP"] for e in a}) == 1000


def test_seed_has_the_cluster_basics_nodes_and_leases():
    groups, last = seed.seed_entries("127.0.0.1", 6443, 3, 2, 10)
    by = {rt.resource: entries for rt, entries in groups}
    assert {e.name for e in by["namespaces"]} == {"default", "kube-system", "kube-public",
                                                 "kube-node-lease"}
    assert [e.name for e in by["nodes"]] == ["node-0000", "node-0001", "node-0002"]
    assert {e.namespace for e in by["leases"]} == {"kube-node-lease"}
    assert len(by["pods"]) == 6
    node = json.loads(by["nodes"][1].data)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-0001"
    assert {a["type"] for a in node["status"]["addresses"]} == {"InternalIP", "Hostname"}
    assert node["status"]["capacity"]["pods"] == "110"
    slice_ = json.loads(by["endpointslices"][0].data)
    assert slice_["ports"][0]["port"] == 6443
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    svc = json.loads(by["services"][0].data)
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    rvs = sorted(e.rv for entries in by.values() for e in entries)
    assert rvs == list(range(11, last + 1))


def test_ten_thousand_pods():
    entries, _ = seed.pod_entries(100, 100, 0)
    assert len(entries) == 10000
    assert 40_000_000 < sum(len(e.data) for e in entries) < 65_000_000


@pytest.mark.parametrize("nodes, pods", [(-1, 0), (0, -1), (seed.MAX_NODES + 1, 0),
                                         (1, seed.MAX_PODS_PER_NODE + 1)])
def test_limits(nodes, pods):
    with pytest.raises(ValueError):
        seed.seed_entries("127.0.0.1", 1, nodes, pods, 0)


def test_seed_has_what_yurthubs_filters_need():
    groups, _ = seed.seed_entries("127.0.0.1", 6443, 3, 1, 0)
    by = {rt.resource: (rt, entries) for rt, entries in groups}
    crd = json.loads(by["customresourcedefinitions"][1][0].data)
    assert crd["metadata"]["name"] == "nodepools.apps.openyurt.io"
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["versions"][0]["name"] == "v1beta2"
    rt, pools = by["nodepools"]
    assert (rt.group, rt.version, rt.namespaced) == ("apps.openyurt.io", "v1beta2", False)
    assert {e.name: json.loads(e.data)["status"]["nodes"] for e in pools} == {
        "pool-a": ["node-0000", "node-0001"], "pool-b": ["node-0002"]}
    labels = {e.name: json.loads(e.data)["metadata"]["labels"] for e in by["nodes"][1]}
    assert [(lb["apps.openyurt.io/nodepool"], lb["topology.kubernetes.io/zone"])
            for lb in labels.values()] == [("pool-a", "zone-a")] * 2 + [("pool-b", "zone-b")]
    services = {e.name: json.loads(e.data) for e in by["services"][1]}
    assert {s["spec"]["type"] for s in services.values()} == {
        "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}
    assert services["web-lb"]["metadata"]["annotations"] == {"svc.openyurt.io/discard": "true"}
    slices = {e.name: json.loads(e.data) for e in by["endpointslices"][1]}
    pool_slice = slices["web-pool-sbx01"]
    assert [ep["nodeName"] for ep in pool_slice["endpoints"]] == [
        "node-0000", "node-0001", "node-0002"]
    assert pool_slice["metadata"]["ownerReferences"][0]["uid"] == \
        services["web-pool"]["metadata"]["uid"]
    assert {e.name for e in by["endpoints"][1]} >= {"web-pool", "web-hostname"}
    cms = {(e.namespace, e.name): json.loads(e.data) for e in by["configmaps"][1]}
    assert "  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n" in \
        cms[("kube-system", "kube-proxy")]["data"]["config.conf"]
    assert ("kube-system", "yurt-hub-cfg") in cms


def test_without_nodes_there_are_no_pools_or_app_services():
    groups, _ = seed.seed_entries("127.0.0.1", 6443, 0, 0, 0)
    by = {rt.resource: entries for rt, entries in groups}
    assert "nodepools" not in by and [e.name for e in by["services"]] == ["kubernetes"]
    assert [e.name for e in by["customresourcedefinitions"]] == ["nodepools.apps.openyurt.io"]
