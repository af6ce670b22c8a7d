"""Seed data: what a small real cluster holds, and N nodes with M realistic pods each.

Pods are rendered from one JSON template (about 5 KB each, shaped like a Deployment's pod as
kube-apiserver returns it: owner reference, managedFields, probes, a projected token volume,
conditions, container statuses) by string substitution, so 10,000 of them take well under a
second; nodes and leases are built as objects, since there are few of them.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
import zlib
from typing import Any

from kubesandbox import openyurt
from kubesandbox.discovery import Registry
from kubesandbox.objects import Entry, make_entry
from kubesandbox.store import Store
from yurthub.kube.resources import ResourceType, builtin

_APPS = ("web", "api", "cache", "worker")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_POD_BASE = int(ipaddress.IPv4Address("10.128.0.0"))
_NODE_BASE = int(ipaddress.IPv4Address("192.168.0.0"))
MAX_PODS_PER_NODE = 1000
MAX_NODES = 8000
_TS = "2025-01-01T00:00:00Z"


def _suffix(n: int, width: int = 5) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def node_name(i: int) -> str:
    return f"node-{i:04d}"


def _uid(kind: str, key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox/{kind}/{key}"))


def node_object(i: int, ts: str = _TS, nodes: int = 0) -> dict[str, Any]:
    """Node ``i``; of ``nodes`` (when given), with the pool and zone labels of its half."""
    name = node_name(i)
    ip = str(ipaddress.IPv4Address(_NODE_BASE + 10 + i))
    cidr = f"{ipaddress.IPv4Address(_POD_BASE + i * 1024)}/22"
    conditions = [
        {"type": t, "status": "False", "lastHeartbeatTime": ts, "lastTransitionTime": ts,
         "reason": f"KubeletHas{r}", "message": m}
        for t, r, m in (
            ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": "True", "lastHeartbeatTime": ts,
                       "lastTransitionTime": ts, "reason": "KubeletReady",
                       "message": "kubelet is posting ready status"})
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {
            "name": name, "uid": _uid("node", name), "creationTimestamp": ts,
            "labels": {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
                       "kubernetes.io/os": "linux", "openyurt.io/is-edge-worker": "true",
                       **(openyurt.node_labels(i, nodes) if nodes else {})},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "61202244Ki", "hugepages-2Mi": "0",
                         "memory": "8039788Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "ephemeral-storage": "56403987978",
                            "hugepages-2Mi": "0", "memory": "7937388Ki", "pods": "110"},
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                         "systemUUID": _uid("system", name), "bootID": _uid("boot", name),
                         "kernelVersion": "6.1.0-18-amd64", "osImage": "Debian GNU/Linux 12",
                         "containerRuntimeVersion": "containerd://1.7.24",
                         "kubeletVersion": "v1.32.4", "kubeProxyVersion": "v1.32.4",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368},
                       {"names": ["docker.io/library/nginx:1.27"], "sizeBytes": 72955450}],
        },
    }


def lease_object(i: int, ts: str = _TS) -> dict[str, Any]:
    name = node_name(i)
    return {
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": name, "namespace": "kube-node-lease", "uid": _uid("lease", name),
            "creationTimestamp": ts,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                 "uid": _uid("node", name)}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                 "renewTime": ts.replace("Z", ".000000Z")},
    }


def _pod_template(ts: str) -> str:
    """The pod JSON with ``%(...)s`` placeholders, kind and apiVersion first."""
    mount = {"name": "kube-api-access", "readOnly": True,
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    probe = {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
             "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
             "successThreshold": 1, "failureThreshold": 3}
    pod = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": "@name@", "generateName": "@app@-@hash@-", "namespace": "@ns@",
            "uid": "@uid@", "resourceVersion": "@rv@", "creationTimestamp": ts,
            "labels": {"app": "@app@", "pod-template-hash": "@hash@"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": ts},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "@app@-@hash@", "uid": "@rsuid@", "controller": True,
                                 "blockOwnerDeletion": True}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update",
                 "apiVersion": "v1", "time": ts, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {
                     ".": {}, "f:app": {}, "f:pod-template-hash": {}}, "f:ownerReferences": {
                     ".": {}, 'k:{"uid":"@rsuid@"}': {}}}, "f:spec": {
                     'f:containers': {'k:{"name":"app"}': {
                         ".": {}, "f:env": {}, "f:image": {}, "f:imagePullPolicy": {},
                         "f:livenessProbe": {}, "f:name": {}, "f:ports": {},
                         "f:readinessProbe": {}, "f:resources": {}}},
                     "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                     "f:schedulerName": {}, "f:securityContext": {},
                     "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": ts,
                 "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {},
                                           "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {},
                                           "f:podIP": {}, "f:podIPs": {}, "f:startTime": {}}}},
            ],
        },
        "spec": {
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
                "defaultMode": 420}}],
            "containers": [{
                "name": "app", "image": "docker.io/library/@app@:1.27",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "APP_NAME", "value": "@app@"},
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {
                            "apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {
                            "apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                              "requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": [mount],
                "livenessProbe": probe, "readinessProbe": probe,
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "serviceAccount": "default", "nodeName": "@node@", "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": f"node.kubernetes.io/{t}", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}
                            for t in ("not-ready", "unreachable")],
            "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": ts}
                           for t in ("PodReadyToStartContainers", "Initialized", "Ready",
                                     "ContainersReady", "PodScheduled")],
            "hostIP": "@hostip@", "hostIPs": [{"ip": "@hostip@"}],
            "podIP": "@podip@", "podIPs": [{"ip": "@podip@"}], "startTime": ts,
            "containerStatuses": [{
                "name": "app", "state": {"running": {"startedAt": ts}}, "lastState": {},
                "ready": True, "restartCount": 0, "image": "docker.io/library/@app@:1.27",
                "imageID": "docker.io/library/@app@@sha256:"
                           "4b0b06a6b1e2f6e6b8a4f3d1a2c9c1f0e6b5d4c3b2a1908f7e6d5c4b3a291807",
                "containerID": "containerd://@cid@", "started": True,
                "volumeMounts": [{"name": "kube-api-access",
                                  "mountPath": mount["mountPath"], "readOnly": True,
                                  "recursiveReadOnly": "Disabled"}],
            }],
            "qosClass": "Burstable",
        },
    }
    text = json.dumps(pod, separators=(",", ":")).replace("%", "%%")
    for key in ("name", "app", "hash", "ns", "uid", "rv", "rsuid", "node", "hostip", "podip",
                "cid"):
        text = text.replace(f"@{key}@", f"%({key})s")
    return text


def pod_entries(nodes: int, pods_per_node: int, first_rv: int, namespace: str = "default",
                ts: str = _TS) -> tuple[list[Entry], int]:
    """Pre-rendered pod entries for ``nodes`` x ``pods_per_node``; returns (entries, last rv)."""
    template = _pod_template(ts)
    item_start = len(b'{"kind":"Pod","apiVersion":"v1",')
    hashes = {app: _suffix(zlib.crc32(app.encode()) * 2654435761 % 27**10, 10) for app in _APPS}
    rs_uids = {app: _uid("replicaset", app) for app in _APPS}
    entries = []
    rv = first_rv
    for i in range(nodes):
        node = node_name(i)
        host_ip = str(ipaddress.IPv4Address(_NODE_BASE + 10 + i))
        for j in range(pods_per_node):
            rv += 1
            n = i * pods_per_node + j
            app = _APPS[n % len(_APPS)]
            name = f"{app}-{hashes[app]}-{_suffix(n)}"
            pod_ip = str(ipaddress.IPv4Address(_POD_BASE + i * 1024 + 2 + j))
            values = {"name": name, "app": app, "hash": hashes[app], "ns": namespace,
                      "uid": _uid("pod", f"{namespace}/{name}"), "rv": str(rv),
                      "rsuid": rs_uids[app], "node": node, "hostip": host_ip, "podip": pod_ip,
                      "cid": uuid.uuid5(uuid.NAMESPACE_OID, name).hex * 2}
            entries.append(Entry(
                namespace=namespace, name=name, rv=rv,
                data=(template % values).encode(), item_start=item_start,
                labels={"app": app, "pod-template-hash": hashes[app]},
                fields={"metadata.name": name, "metadata.namespace": namespace,
                        "spec.nodeName": node, "spec.restartPolicy": "Always",
                        "spec.schedulerName": "default-scheduler",
                        "spec.serviceAccountName": "default", "spec.hostNetwork": "false",
                        "status.phase": "Running", "status.podIP": pod_ip,
                        "status.nominatedNodeName": ""},
                uid=values["uid"],
            ))
    return entries, rv


def base_objects(host: str, port: int) -> list[dict[str, Any]]:
    """What every cluster has: the system namespaces, default service accounts, the root CA
    config map, and the ``default/kubernetes`` Service with its Endpoints and EndpointSlice."""
    objs: list[dict[str, Any]] = []
    namespaces = ("default", "kube-system", "kube-public", "kube-node-lease")
    for ns in namespaces:
        objs.append({"kind": "Namespace", "apiVersion": "v1", "metadata": {
            "name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    for ns in namespaces:
        objs.append({"kind": "ServiceAccount", "apiVersion": "v1",
                     "metadata": {"name": "default", "namespace": ns}})
        objs.append({"kind": "ConfigMap", "apiVersion": "v1",
                     "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": {
                         "kubernetes.io/description": "Contains a CA bundle that can be used "
                         "to verify the kube-apiserver when using internal endpoints such as "
                         "the internal service IP or kubernetes.default.svc."}},
                     "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nsandbox\n"
                                        "-----END CERTIFICATE-----\n"}})
    address = host if host not in ("", "0.0.0.0", "::", "localhost") else "127.0.0.1"
    # An apiserver on an IPv6 address is an IPv6 cluster's: the kubernetes Service and its
    # EndpointSlice are of that family (an IPv4 slice holding "::1" is no valid object).
    family, cluster_ip = ("IPv6", "fd00:10:96::1") if ":" in address else ("IPv4", "10.96.0.1")
    objs.append({"kind": "Service", "apiVersion": "v1", "metadata": {
        "name": "kubernetes", "namespace": "default",
        "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"ports": [{"name": "https", "protocol": "TCP", "port": 443,
                            "targetPort": port}],
                 "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "type": "ClusterIP",
                 "sessionAffinity": "None", "ipFamilies": [family],
                 "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}})
    objs.append({"kind": "Endpoints", "apiVersion": "v1", "metadata": {
        "name": "kubernetes", "namespace": "default",
        "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]})
    objs.append({"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": {
        "name": "kubernetes", "namespace": "default",
        "labels": {"kubernetes.io/service-name": "kubernetes",
                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": family,
        "endpoints": [{"addresses": [address], "conditions": {
            "ready": True, "serving": True, "terminating": False}}],
        "ports": [{"name": "https", "protocol": "TCP", "port": port}]})
    return objs


def _type_of(obj: dict[str, Any]) -> ResourceType:
    if obj["kind"] == "NodePool":
        return openyurt.nodepool_type()
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts",
              "ConfigMap": "configmaps", "Service": "services", "Endpoints": "endpoints",
              "EndpointSlice": "endpointslices", "Node": "nodes", "Lease": "leases",
              "CustomResourceDefinition": "customresourcedefinitions"}[obj["kind"]]
    rt = builtin(group, version, plural)
    assert rt is not None
    return rt


def seed_entries(host: str, port: int, nodes: int, pods_per_node: int, first_rv: int,
                 ts: str = _TS) -> tuple[list[tuple[ResourceType, list[Entry]]], int]:
    """Every seeded entry grouped by type, with consecutive resourceVersions after ``first_rv``,
    created at ``ts``."""
    if not 0 <= nodes <= MAX_NODES:
        raise ValueError(f"nodes must be between 0 and {MAX_NODES}")
    if not 0 <= pods_per_node <= MAX_PODS_PER_NODE:
        raise ValueError(f"pods per node must be between 0 and {MAX_PODS_PER_NODE}")
    objs = base_objects(host, port)
    address = host if host not in ("", "0.0.0.0", "::", "localhost") else "127.0.0.1"
    objs += openyurt.configmaps(f"{address}:{port}")
    objs.append(openyurt.nodepool_crd())
    objs += [node_object(i, ts, nodes) for i in range(nodes)]
    objs += [lease_object(i, ts) for i in range(nodes)]
    if nodes:
        names = [node_name(i) for i in range(nodes)]
        objs += openyurt.nodepools(names)
        objs += openyurt.services(names)
    grouped: dict[str, tuple[ResourceType, list[Entry]]] = {}
    rv = first_rv
    for obj in objs:
        rv += 1
        meta = obj["metadata"]
        key = f"{meta.get('namespace', '')}/{meta['name']}"
        meta.setdefault("uid", _uid(obj["kind"], key))
        meta.setdefault("creationTimestamp", ts)
        for ref in meta.get("ownerReferences") or ():
            if not ref.get("uid"):
                ref["uid"] = _uid(ref["kind"], f"{meta.get('namespace', '')}/{ref['name']}")
        meta["resourceVersion"] = str(rv)
        rt = _type_of(obj)
        grouped.setdefault(rt.resource, (rt, []))[1].append(make_entry(obj, rt, rv))
    pods, rv = pod_entries(nodes, pods_per_node, rv, ts=ts)
    out = list(grouped.values())
    if pods:
        pod_type = builtin("", "v1", "pods")
        assert pod_type is not None
        out.append((pod_type, pods))
    return out, rv


def pod_object_size() -> int:
    """The size of one seeded pod's JSON (about 5 KB)."""
    entries, _ = pod_entries(1, 1, 0)
    return len(entries[0].data)




def install(store: Store, registry: Registry, host: str, port: int, nodes: int,
            pods_per_node: int, ts: str = _TS) -> None:
    """Load the seed into a store (CRDs served from the start, as if created before)."""
    groups, last = seed_entries(host, port, nodes, pods_per_node, store.rv, ts)
    for rt, entries in groups:
        if rt.resource == "customresourcedefinitions":
            for entry in entries:
                registry.add_crd(entry.obj())
    for rt, entries in groups:
        store.load(rt, entries, last)
    store.load(registry.storage("", "pods"), [], last)
