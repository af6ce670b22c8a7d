"""kubelet's registration when the node starts with the cloud away (a reboot in an outage).

kubelet registers before it ever reports its Node's status: it creates its Node, and on 409
AlreadyExists gets it and patches it (pkg/kubelet/kubelet_node_status.go).  Any other answer
and it tries again every 7 s, its status updates waiting behind it, for the whole outage.
"""

from __future__ import annotations

import json

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (every field this test writes is one)."""
    out, n = bytearray([number << 3 | 2]), len(data)
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


def node_protobuf(name: str) -> bytes:
    """A Node as client-go sends it by default (kubelet's content type): metadata, spec and
    status in a ``k8s\\0`` envelope."""
    meta = _field(1, name.encode()) + _field(11, _field(1, b"kubernetes.io/os")
                                              + _field(2, b"linux"))
    node = _field(1, meta) + _field(2, _field(3, b"external-id")) + _field(4, b"")
    type_meta = _field(1, b"v1") + _field(2, b"Node")
    return b"k8s\x00" + _field(1, type_meta) + _field(2, node)


def call(hub, method: str, path: str, body: bytes | None = None,
         ctype: str = "application/json") -> tuple[int, dict]:
    status, _, raw = http(hub.url + path, method=method, body=body,
                          headers={"User-Agent": KUBELET, "Accept": "application/json",
                                   "Content-Type": ctype})
    return status, json.loads(raw)


def test_kubelet_registers_with_the_hub_started_offline(sandbox, hub_factory):
    hub = hub_factory(sandbox.url)
    status, node = call(hub, "GET", "/api/v1/nodes/node-0000")
    assert status == 200
    wait_for(lambda: (hub.cache_dir / "kubelet" / "nodes.v1.core" / "node-0000").exists(),
             10, "kubelet's Node in the cache")
    sandbox.offline()
    hub.stop()
    hub.start()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to know the cloud is gone")

    # kubelet's initial Node, as JSON and as protobuf: the cloud has it, so 409
    initial = {"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-0000", "labels": node["metadata"]["labels"]},
               "spec": {}, "status": {}}
    for body, ctype in ((json.dumps(initial).encode(), "application/json"),
                        (node_protobuf("node-0000"), PROTOBUF)):
        status, answer = call(hub, "POST", "/api/v1/nodes", body, ctype)
        assert (status, answer["reason"]) == (409, "AlreadyExists"), answer
        assert answer["message"] == 'nodes "node-0000" already exists'
        assert answer["details"] == {"name": "node-0000", "kind": "nodes"}

    # then it gets it and patches its status, both answered from the cache
    assert call(hub, "GET", "/api/v1/nodes/node-0000")[0] == 200
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                        "reason": "KubeletReady",
                                        "lastHeartbeatTime": "2026-12-06T20:00:00Z"}]}}
    status, patched = call(hub, "PATCH", "/api/v1/nodes/node-0000/status",
                           json.dumps(patch).encode(), "application/strategic-merge-patch+json")
    assert status == 200, patched
    ready = [c for c in patched["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["lastHeartbeatTime"] == "2026-12-06T20:00:00Z"

    # Another node's registration, or a Node the cache never saw, is no answer the hub has
    other = dict(initial, metadata={"name": "node-0001"})
    status, answer = call(hub, "POST", "/api/v1/nodes", json.dumps(other).encode())
    assert status == 503, answer
