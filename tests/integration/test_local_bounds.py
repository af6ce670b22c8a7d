"""What a local process cannot do to the hub through the writes it answers itself: blow up a
patch, write another object than its URL names, create another node's Lease, or make a bad
name a 500 (issue 13, section 3)."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
NODE = "node-0000"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
LEASE = f"{LEASES}/{NODE}"


def call(hub, method: str, path: str, body=None, ctype: str = "application/json",
         ua: str = KUBELET):
    data = body if isinstance(body, bytes) else (
        json.dumps(body).encode() if body is not None else None)
    status, headers, raw = http(hub.url + path, method=method, body=data,
                                headers={"User-Agent": ua, "Content-Type": ctype})
    try:
        return status, headers, (json.loads(raw) if raw else None)
    except ValueError:
        return status, headers, raw


def _edge(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, node=NODE)
    assert hub.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")[0] == 200
    assert hub.get(f"/api/v1/nodes/{NODE}")[0] == 200
    assert hub.get(LEASE)[0] == 200
    wait_for(lambda: (hub.cache_dir / "kubelet/leases.v1.coordination.k8s.io/kube-node-lease"
                      / NODE).exists(), what="the lease in the cache")
    return hub


@pytest.fixture
def edge(sandbox, hub_factory):
    return _edge(sandbox, hub_factory)


@pytest.fixture(scope="module")
def offline_edge(module_sandbox, module_hub_factory):
    """An edge hub whose cloud went away, shared by the tests whose offline requests are all
    refused (nothing they send changes the cache, so none can change what the next sees)."""
    hub = _edge(module_sandbox, module_hub_factory)
    offline(module_sandbox, hub)
    return hub


def offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice")


def worker_rss(hub) -> int:
    """Resident bytes of the gunicorn worker (the process that applies patches)."""
    out = subprocess.run(["pgrep", "-P", str(hub.proc.pid)], capture_output=True, text=True)
    pid = int(out.stdout.split()[0])
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def copy_bomb() -> list[dict]:
    """700 bytes that double the Lease's spec 17 times: a 138 MB document if applied."""
    ops: list[dict] = [{"op": "add", "path": "/spec/x", "value": "y" * 500}]
    ops += [{"op": "copy", "from": "/spec", "path": f"/spec/c{i}"} for i in range(17)]
    return ops


def test_a_json_patch_bomb_on_the_lease_is_refused_and_caching_goes_on(sandbox, edge):
    before = worker_rss(edge)
    body = json.dumps(copy_bomb(), separators=(",", ":")).encode()
    for _ in range(3):
        status, _, doc = call(edge, "PATCH", LEASE, body, "application/json-patch+json")
        assert status == 422, doc
        assert doc["reason"] == "Invalid" and doc["message"] == (
            "the server rejected our request due to an error in our request")
    grown = worker_rss(edge) - before
    assert grown < 64 << 20, f"the worker grew by {grown} bytes"
    # The Lease is untouched, and the cache writer keeps caching what passes through.
    status, _, lease = call(edge, "GET", LEASE)
    assert status == 200 and "c0" not in lease["spec"]
    sandbox.create({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "after-bomb", "namespace": "default"}, "data": {}})
    assert edge.get("/api/v1/namespaces/default/configmaps/after-bomb",
                    ua="kubectl/v1.32")[0] == 200
    # (kubectl is not a cache agent by default: kubelet's get of its node is)
    sandbox.patch("nodes", NODE, {"metadata": {"labels": {"after": "bomb"}}})
    assert edge.get(f"/api/v1/nodes/{NODE}")[0] == 200
    wait_for(lambda: "bomb" in (edge.cache_dir / "kubelet/nodes.v1.core" / NODE).read_text(),
             what="the node cached after the bomb")


def test_too_many_json_patch_operations_are_413(edge):
    ops = [{"op": "test", "path": "/kind", "value": "Lease"}] * 10_001
    status, _, doc = call(edge, "PATCH", LEASE, ops, "application/json-patch+json")
    assert status == 413 and doc["reason"] == "RequestEntityTooLarge", doc
    assert doc["message"] == ("Request entity too large: The allowed maximum operations in a "
                              "JSON patch is 10000, got 10001")


def test_a_body_over_kube_apiservers_limit_is_413(edge):
    lease = {"metadata": {"name": NODE}, "spec": {"holderIdentity": "x" * (3 << 20)}}
    status, _, doc = call(edge, "PUT", LEASE, lease)
    assert status == 413 and doc["message"] == "Request entity too large: limit is 3145728"


@pytest.mark.parametrize("method, path, body, ctype, message", [
    ("PUT", f"/api/v1/nodes/{NODE}", {"metadata": {"name": "node-0001"}},
     "application/json", "the name of the object (node-0001) does not match the name on the "
     "URL (node-0000)"),
    ("PATCH", f"/api/v1/nodes/{NODE}", {"metadata": {"name": "node-0001"}},
     "application/merge-patch+json", "the name of the object (node-0001) does not match the "
     "name on the URL (node-0000)"),
    ("PATCH", f"/api/v1/nodes/{NODE}/status",
     [{"op": "replace", "path": "/metadata/name", "value": "node-0001"}],
     "application/json-patch+json", "the name of the object (node-0001) does not match the "
     "name on the URL (node-0000)"),
    ("PUT", LEASE, {"metadata": {"name": NODE, "namespace": "default"}}, "application/json",
     "the namespace of the object (default) does not match the namespace on the request "
     "(kube-node-lease)"),
    ("PATCH", LEASE, {"metadata": {"namespace": "default"}}, "application/merge-patch+json",
     "the namespace of the provided object does not match the namespace sent on the request"),
    ("POST", LEASES, {"metadata": {"name": NODE, "namespace": "default"}}, "application/json",
     "the namespace of the provided object does not match the namespace sent on the request"),
])
def test_offline_writes_whose_body_names_another_object_are_400(offline_edge, method, path,
                                                                 body, ctype, message):
    edge = offline_edge
    node_before = (edge.cache_dir / "kubelet/nodes.v1.core" / NODE).read_bytes()
    status, _, doc = call(edge, method, path, body, ctype)
    assert status == 400 and doc["reason"] == "BadRequest" and doc["message"] == message, doc
    assert not (edge.cache_dir / "kubelet/nodes.v1.core/node-0001").exists()
    assert (edge.cache_dir / "kubelet/nodes.v1.core" / NODE).read_bytes() == node_before


def test_only_this_nodes_lease_is_created_by_the_hub(sandbox, edge):
    other = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-0001", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "node-0001"}}
    # Online, another node's Lease goes to the cloud, which decides (the sandbox accepts).
    sandbox.clear_requests()
    status, _, _ = call(edge, "POST", LEASES, other)
    assert status in (201, 409)
    wait_for(lambda: any(r.method == "POST" and "leases" in r.path  # logged after it answers
                         for r in sandbox.requests()), what="the create in the cloud")
    # Offline the hub creates none but its own.
    offline(sandbox, edge)
    status, _, doc = call(edge, "POST", LEASES, {**other, "metadata": {
        "name": "node-0002", "namespace": "kube-node-lease"}})
    assert status == 503 and doc["reason"] == "ServiceUnavailable", doc
    lease_dir = edge.cache_dir / "kubelet/leases.v1.coordination.k8s.io/kube-node-lease"
    assert sorted(p.name for p in lease_dir.iterdir()) == [NODE]
    mine = {**other, "metadata": {"name": NODE}, "spec": {"holderIdentity": NODE}}
    status, _, doc = call(edge, "POST", LEASES, mine)
    assert status == 201 and doc["metadata"] == {"name": NODE, "namespace": "kube-node-lease"}


@pytest.mark.parametrize("method, path, body, ctype, message", [
    ("PUT", LEASE, {"kind": "Pod", "apiVersion": "v1", "metadata": {
        "name": NODE, "namespace": "kube-node-lease"}, "spec": {"containers": []}},
     "application/json", "the API version in the data (v1) does not match the expected API "
     "version (coordination.k8s.io/v1)"),
    ("PUT", LEASE, {"kind": "Pod", "apiVersion": "coordination.k8s.io/v1",
                    "metadata": {"name": NODE}}, "application/json",
     'Pod in version "v1" cannot be handled as a Lease: no kind "Pod" is registered for '
     'version "coordination.k8s.io/v1"'),
    ("POST", LEASES, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": NODE}},
     "application/json", "the API version in the data (v1) does not match the expected API "
     "version (coordination.k8s.io/v1)"),
    ("PATCH", LEASE, {"kind": "Pod"}, "application/merge-patch+json",
     'Pod in version "v1" cannot be handled as a Lease: no kind "Pod" is registered for '
     'version "coordination.k8s.io/v1"'),
    ("PUT", f"/api/v1/nodes/{NODE}/status", {"kind": "Lease", "metadata": {"name": NODE}},
     "application/json", 'Lease in version "v1" cannot be handled as a Node: no kind "Lease" '
     'is registered for version "v1"'),
])
def test_offline_writes_of_another_kind_are_400(offline_edge, method, path, body, ctype,
                                                message):
    edge = offline_edge
    status, _, doc = call(edge, method, path, body, ctype)
    assert status == 400 and doc["reason"] == "BadRequest" and doc["message"] == message, doc
    status, _, lease = call(edge, "GET", LEASE)
    assert status == 200 and lease["kind"] == "Lease", lease
    stored = json.loads((edge.cache_dir / "kubelet/leases.v1.coordination.k8s.io"
                         / "kube-node-lease" / NODE).read_bytes())
    assert stored["kind"] == "Lease"


def _nested(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


@pytest.mark.parametrize("method, path, body, ctype", [
    ("PATCH", f"/api/v1/nodes/{NODE}/status", b'{"status":' + _nested(5000) + b"}",
     "application/merge-patch+json"),
    ("PATCH", f"/api/v1/nodes/{NODE}/status", b'{"status":' + _nested(5000) + b"}",
     "application/strategic-merge-patch+json"),
    ("PATCH", f"/api/v1/nodes/{NODE}/status",
     b'[{"op":"add","path":"/status/a","value":' + _nested(5000) + b"}]",
     "application/json-patch+json"),
    ("PUT", LEASE, b'{"metadata":{"name":"node-0000"},"spec":' + _nested(5000) + b"}",
     "application/json"),
])
def test_offline_writes_nested_too_deep_are_400_not_500(offline_edge, method, path, body,
                                                        ctype):
    edge = offline_edge
    status, _, doc = call(edge, method, path, body, ctype)
    assert status == 400 and doc["reason"] == "BadRequest", doc
    assert "exceeded max depth" in doc["message"]
    assert "RecursionError" not in edge.log() and "Traceback" not in edge.log()


@pytest.mark.parametrize("path, code", [
    ("/api/v1/namespaces/default/pods/Not-A-Name", 404),
    ("/api/v1/namespaces/default/pods/" + "a" * 300, 404),
    ("/api/v1/namespaces/default/pods/_index", 404),
    ("/api/v1/namespaces/default/pods/.spare", 404),
    ("/api/v1/namespaces/default/pods/%2E%2E", 400),
    ("/api/v1/namespaces/default/pods/a%25b", 400),
    ("/api/v1/namespaces/default/pods/%C3%BC", 404),
    ("/api/v1/namespaces/Default/pods/x", 404),
    ("/api/v1/nodes/%2E%2E", 400),
    ("/api/v1/namespaces/default/pods/Bad/status", 503),
])
def test_offline_reads_of_invalid_names_are_a_status_not_a_500(offline_edge, path, code):
    edge = offline_edge
    method = "PATCH" if path.endswith("/status") else "GET"
    status, _, doc = call(edge, method, path, {"status": {}}, "application/merge-patch+json")
    assert status == code and doc["kind"] == "Status", doc
    assert "Traceback" not in edge.log()


def test_what_clients_send_is_logged_escaped(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, node=NODE, extra=["--log-level", "DEBUG"])
    assert hub.get(f"/api/v1/nodes/{NODE}")[0] == 200
    offline(sandbox, hub)
    forged = "ERROR yurthub.cache.writer: forged"
    for target, agent in [
        (f"/api/v1/nodes/x%0A{forged.replace(' ', '%20')}", KUBELET),
        (f"/api/v1/nodes/{NODE}", "kubelet\x85ERROR forged/1"),
        # gunicorn 20.1 takes control characters in a header; newer ones answer 400
        (f"/api/v1/nodes/{NODE}", "kubelet\x1b[2Kx/1"),
    ]:
        with socket.create_connection(("127.0.0.1", hub.proxy_port)) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\n"
                      "Connection: close\r\n\r\n".encode("latin-1"))
            assert s.recv(65536).startswith(b"HTTP/1.1 ")
    hub.stop()
    log = hub.log()
    # A User-Agent that is no component name names none ("-"): its bytes never reach the log.
    assert "- get /api/v1/nodes/node-0000: from the cache" in log
    assert not any(line.startswith("ERROR forged") or forged in line.split(": ", 1)[0]
                   for line in log.splitlines())
    assert "\x1b" not in log and "\x85" not in log
