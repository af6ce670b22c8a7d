"""kubectl v1.32 against the sandbox: get, selectors, chunking, watch, apply, delete, CRDs."""

from __future__ import annotations

import subprocess
import time

from sandbox_wire_helpers import LineReader

KUBECTL = "/usr/bin/kubectl"


def names(out: str) -> list[str]:
    return [line.split("/", 1)[1] for line in out.split()]


def test_get_pods_in_all_namespaces(sandbox, kubectl):
    out = kubectl("get", "pods", "-A").stdout.splitlines()
    assert out[0].split()[:2] == ["NAMESPACE", "NAME"]
    expected = sorted(p["metadata"]["name"] for p in sandbox.list_objects("pods"))
    assert sorted(line.split()[1] for line in out[1:]) == expected and len(expected) == 6


def test_label_and_field_selectors(sandbox, kubectl):
    web = names(kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout)
    assert web and all(n.startswith("web-") for n in web)
    assert web == sorted(p["metadata"]["name"] for p in sandbox.list_objects("pods")
                         if p["metadata"]["labels"]["app"] == "web")
    on_n1 = names(kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=node-0001",
                          "-o", "name").stdout)
    assert on_n1 == sorted(p["metadata"]["name"] for p in sandbox.list_objects("pods")
                           if p["spec"]["nodeName"] == "node-0001") and len(on_n1) == 3
    bad = kubectl("get", "pods", "--field-selector", "spec.color=red", check=False)
    assert bad.returncode != 0 and "field label not supported: spec.color" in bad.stderr


def test_chunked_listing_equals_unpaged(sandbox, kubectl):
    whole = kubectl("get", "pods", "-A", "-o", "name").stdout
    sandbox.clear_requests()
    chunked = kubectl("get", "pods", "-A", "-o", "name", "--chunk-size=2").stdout
    assert chunked == whole
    # A request is recorded after its response went out: the last one may land a moment
    # after kubectl has exited.
    deadline = time.monotonic() + 5
    while len(sandbox.requests("GET /api/v1/pods?")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    pages = sandbox.requests("GET /api/v1/pods?")
    assert all("limit=2" in r.query for r in pages)
    assert len(pages) == 3 and sum("continue=" in r.query for r in pages) == 2


def test_watch_sees_what_another_client_does(sandbox, kubectl):
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", kubectl.kubeconfig, "--cache-dir",
                             str(kubectl.cache), "get", "pods", "-w", "--output-watch-events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader = LineReader(proc)
        first = reader.until(lambda line: line.startswith("ADDED") and "worker-" in line)
        assert first[0].split()[:2] == ["EVENT", "NAME"]
        sandbox.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "watched", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
        sandbox.patch("pods", "watched", {"metadata": {"labels": {"x": "1"}}},
                      namespace="default")
        sandbox.delete("pods", "watched", namespace="default")
        seen = reader.until(lambda line: line.startswith("DELETED"))
        events = [line.split()[:2] for line in seen if "watched" in line]
        assert events == [["ADDED", "watched"], ["MODIFIED", "watched"],
                          ["DELETED", "watched"]]
    finally:
        proc.kill()
        proc.communicate()


MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
  labels: {app: demo}
data:
  level: "%s"
"""


def test_apply_creates_then_updates_and_delete_removes(sandbox, kubectl, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(MANIFEST % "1")
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/settings created"
    first = sandbox.get("configmaps", "settings", "default")
    manifest.write_text(MANIFEST % "2")
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == \
        "configmap/settings configured"
    cm = sandbox.get("configmaps", "settings", "default")
    assert cm["data"] == {"level": "2"} and cm["metadata"]["uid"] == first["metadata"]["uid"]
    assert '"level":"2"' in cm["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"]
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == \
        "configmap/settings unchanged"
    assert kubectl("delete", "-f", str(manifest)).stdout.strip() == \
        'configmap "settings" deleted'
    assert sandbox.get("configmaps", "settings", "default") is None
    missing = kubectl("delete", "configmap", "settings", check=False)
    assert missing.returncode != 0 and 'configmaps "settings" not found' in missing.stderr


def test_raw_version_and_api_resources(kubectl):
    assert '"gitVersion":"v1.32.4"' in kubectl("get", "--raw", "/version").stdout
    table = kubectl("api-resources").stdout
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert {"pods", "nodes", "leases", "endpointslices", "customresourcedefinitions"} <= \
        set(rows)
    assert "coordination.k8s.io/v1" in rows["leases"]


CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: %s
  names: {plural: gizmos, singular: gizmo, kind: Gizmo, shortNames: [gz]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""
GIZMO = """apiVersion: example.com/v1
kind: Gizmo
metadata: {name: %s}
spec: {size: 3}
"""


def test_a_crd_serves_its_objects(sandbox, kubectl, tmp_path):
    (tmp_path / "crd.yaml").write_text(CRD % "Namespaced")
    kubectl("apply", "-f", str(tmp_path / "crd.yaml"))
    for name in ("g1", "g2"):
        (tmp_path / f"{name}.yaml").write_text(GIZMO % name)
        out = kubectl("apply", "-f", str(tmp_path / f"{name}.yaml")).stdout
        assert out.strip() == f"gizmo.example.com/{name} created"
    listed = kubectl("get", "gizmos", "-o", "name").stdout.split()
    assert listed == ["gizmo.example.com/g1", "gizmo.example.com/g2"]
    assert "gz" in kubectl("api-resources", "--api-group=example.com").stdout
    got = kubectl("get", "gz", "g1", "-o", "jsonpath={.spec.size}").stdout
    assert got == "3"
    kubectl("delete", "-f", str(tmp_path / "crd.yaml"))
    assert sandbox.get("customresourcedefinitions", "gizmos.example.com") is None


def test_cluster_scoped_crd(kubectl, tmp_path):
    (tmp_path / "crd.yaml").write_text(CRD % "Cluster")
    kubectl("apply", "-f", str(tmp_path / "crd.yaml"))
    (tmp_path / "g.yaml").write_text(GIZMO % "top")
    kubectl("apply", "-f", str(tmp_path / "g.yaml"))
    assert kubectl("get", "gizmos", "-o", "name").stdout.split() == ["gizmo.example.com/top"]


def test_delete_of_a_pod_does_not_wait_forever(sandbox, kubectl):
    sandbox.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "short",
                 "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    started = time.monotonic()
    assert kubectl("delete", "pod", "short", timeout=20).stdout.strip() == 'pod "short" deleted'
    assert time.monotonic() - started < 20


def test_typed_creates_send_protobuf_and_work(sandbox, kubectl):
    # kubectl's generators use typed clients, whose bodies are protobuf.
    sandbox.clear_requests()
    kubectl("create", "configmap", "conf", "--from-literal=a=b")
    kubectl("create", "secret", "generic", "pw", "--from-literal=pw=hunter2")
    kubectl("create", "namespace", "team")
    kubectl("create", "serviceaccount", "bot", "-n", "team")
    kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    kubectl("run", "nginx", "--image=nginx:1.27", "--labels=app=nginx", "--env=A=1",
            "--port=80")
    assert sandbox.get("configmaps", "conf", "default")["data"] == {"a": "b"}
    assert sandbox.get("secrets", "pw", "default")["data"] == {"pw": "aHVudGVyMg=="}
    assert sandbox.get("serviceaccounts", "bot", "team") is not None
    svc = sandbox.get("services", "web", "default")
    assert svc["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP",
                                     "targetPort": 8080}]
    pod = sandbox.get("pods", "nginx", "default")
    c = pod["spec"]["containers"][0]
    assert (c["image"], c["env"], c["ports"]) == (
        "nginx:1.27", [{"name": "A", "value": "1"}], [{"containerPort": 80, "protocol": "TCP"}])
    assert pod["metadata"]["labels"] == {"app": "nginx"} and pod["status"]["phase"] == "Pending"
    assert all(r.status == 201 for r in sandbox.requests("POST "))
