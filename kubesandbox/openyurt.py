"""What a cluster with OpenYurt installed holds for YurtHub's filters, as seed data.

The NodePool CRD (``apps.openyurt.io/v1beta2``, cluster-scoped, with ``status.nodes``), the
``kube-system/yurt-hub-cfg`` and ``kube-system/kube-proxy`` ConfigMaps always; with nodes,
two pools (the first half of the nodes in ``pool-a``/``zone-a``, the rest in
``pool-b``/``zone-b``), their NodePools, and in ``default`` one Service per kind of
filtering (topology by hostname, pool and zone; NodePort isolation; LoadBalancers with and
without ``svc.openyurt.io/discard``; a plain one; an ExternalName) with an EndpointSlice
and Endpoints naming one endpoint on every node.  Objects are built as kube-apiserver
returns them (field order, defaults) so that filters and clients see realistic shapes.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from yurthub.kube.resources import ResourceType, from_crd

POOL_LABEL = "apps.openyurt.io/nodepool"
ZONE_LABEL = "topology.kubernetes.io/zone"
POOLS = ("pool-a", "pool-b")
ZONES = {"pool-a": "zone-a", "pool-b": "zone-b"}
_ENDPOINT_BASE = int(ipaddress.IPv4Address("10.128.0.0"))
_SERVICE_BASE = int(ipaddress.IPv4Address("10.96.100.0"))

NODEPOOL_CRD: dict[str, Any] = {
    "kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1",
    "metadata": {"name": "nodepools.apps.openyurt.io",
                 "annotations": {"controller-gen.kubebuilder.io/version": "v0.16.5"}},
    "spec": {
        "group": "apps.openyurt.io",
        "names": {"kind": "NodePool", "listKind": "NodePoolList", "plural": "nodepools",
                  "shortNames": ["np"], "singular": "nodepool"},
        "scope": "Cluster",
        "versions": [{
            "name": "v1beta2", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}},
            "subresources": {"status": {}},
        }],
        "conversion": {"strategy": "None"},
    },
    "status": {
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted"}],
        "acceptedNames": {"kind": "NodePool", "listKind": "NodePoolList",
                          "plural": "nodepools", "shortNames": ["np"], "singular": "nodepool"},
        "storedVersions": ["v1beta2"],
    },
}

KUBE_PROXY_CONFIG = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
kind: KubeProxyConfiguration
mode: iptables
"""

# (name, type, annotations) of the Services seeded in "default" when there are nodes.
SERVICES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("web-external", "ExternalName", {}),
    ("web-hostname", "ClusterIP", {"openyurt.io/topologyKeys": "kubernetes.io/hostname"}),
    ("web-lb", "LoadBalancer", {"svc.openyurt.io/discard": "true"}),
    ("web-lb-kept", "LoadBalancer", {}),
    ("web-nodeport", "NodePort", {"nodeport.openyurt.io/listen": "pool-a"}),
    ("web-plain", "ClusterIP", {}),
    ("web-pool", "ClusterIP", {"openyurt.io/topologyKeys": "openyurt.io/nodepool"}),
    ("web-zone", "ClusterIP", {"openyurt.io/topologyKeys": "kubernetes.io/zone"}),
)


def nodepool_crd() -> dict[str, Any]:
    """A fresh copy of the NodePool CRD (seeding sets its metadata)."""
    return copy.deepcopy(NODEPOOL_CRD)


def nodepool_type() -> ResourceType:
    return from_crd(NODEPOOL_CRD)[0]


def pool_of(i: int, nodes: int) -> str:
    """The pool of node ``i`` of ``nodes``: the first half (rounded up) is in pool-a."""
    return POOLS[0] if i < (nodes + 1) // 2 else POOLS[1]


def node_labels(i: int, nodes: int) -> dict[str, str]:
    pool = pool_of(i, nodes)
    return {POOL_LABEL: pool, ZONE_LABEL: ZONES[pool]}


def configmaps(server: str) -> list[dict[str, Any]]:
    """yurt-hub-cfg (no extra clients yet) and kubeadm's kube-proxy ConfigMap."""
    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
                  "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/"
                  f"ca.crt\n    server: https://{server}\n  name: default\ncontexts:\n"
                  "- context:\n    cluster: default\n    namespace: default\n"
                  "    user: default\n  name: default\ncurrent-context: default\nusers:\n"
                  "- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/"
                  "serviceaccount/token\n")
    return [
        {"kind": "ConfigMap", "apiVersion": "v1",
         "metadata": {"name": "kube-proxy", "namespace": "kube-system",
                      "labels": {"app": "kube-proxy"}},
         "data": {"config.conf": KUBE_PROXY_CONFIG, "kubeconfig.conf": kubeconfig}},
        {"kind": "ConfigMap", "apiVersion": "v1",
         "metadata": {"name": "yurt-hub-cfg", "namespace": "kube-system",
                      "labels": {"app.kubernetes.io/name": "yurthub"}},
         "data": {"cache_agents": ""}},
    ]


def nodepools(node_names: list[str]) -> list[dict[str, Any]]:
    n = len(node_names)
    out = []
    for pool in POOLS:
        members = [name for i, name in enumerate(node_names) if pool_of(i, n) == pool]
        out.append({
            "kind": "NodePool", "apiVersion": "apps.openyurt.io/v1beta2",
            "metadata": {"name": pool, "labels": {ZONE_LABEL: ZONES[pool]}},
            "spec": {"type": "Edge", "hostNetwork": False, "interConnectivity": False},
            "status": {"nodes": members, "readyNodeNum": len(members), "unreadyNodeNum": 0},
        })
    return out


def endpoint_ip(service_index: int, node_index: int) -> str:
    return str(ipaddress.IPv4Address(_ENDPOINT_BASE + node_index * 1024 + 200 + service_index))


def services(node_names: list[str]) -> list[dict[str, Any]]:
    """Services of every type, each with its EndpointSlice and Endpoints (one endpoint per
    node, on that node)."""
    n = len(node_names)
    out: list[dict[str, Any]] = []
    port = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    for k, (name, kind, annotated) in enumerate(SERVICES):
        meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": {"app": name}}
        if annotated:
            meta["annotations"] = dict(annotated)
        if kind == "ExternalName":
            spec: dict[str, Any] = {"type": "ExternalName", "externalName": "example.com",
                                    "sessionAffinity": "None"}
        else:
            ip = str(ipaddress.IPv4Address(_SERVICE_BASE + k))
            p = dict(port)
            if kind in ("NodePort", "LoadBalancer"):
                p["nodePort"] = 30080 + k
            spec = {"ports": [p], "selector": {"app": name}, "clusterIP": ip,
                    "clusterIPs": [ip], "type": kind, "sessionAffinity": "None",
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster"}
            if kind in ("NodePort", "LoadBalancer"):
                spec["externalTrafficPolicy"] = "Cluster"
        status: dict[str, Any] = {"loadBalancer": {}}
        if kind == "LoadBalancer":
            status = {"loadBalancer": {"ingress": [{"ip": f"203.0.113.{10 + k}",
                                                    "ipMode": "VIP"}]}}
        out.append({"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": spec,
                    "status": status})
        if kind == "ExternalName":
            continue
        endpoints = []
        addresses = []
        for i, node in enumerate(node_names):
            ip = endpoint_ip(k, i)
            endpoints.append({"addresses": [ip], "conditions": {
                "ready": True, "serving": True, "terminating": False},
                "nodeName": node, "zone": ZONES[pool_of(i, n)]})
            addresses.append({"ip": ip, "nodeName": node})
        out.append({
            "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": f"{name}-sbx01", "generateName": f"{name}-",
                         "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/managed-by":
                                    "endpointslice-controller.k8s.io",
                                    "kubernetes.io/service-name": name},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                              "name": name, "uid": "", "controller": True,
                                              "blockOwnerDeletion": True}]},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]})
        out.append({
            "kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "subsets": [{"addresses": addresses,
                         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
    return out
