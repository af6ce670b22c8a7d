"""A protobuf Accept goes upstream untouched for requests the hub neither caches nor
filters (a third of the bytes from the cloud); cached and filtered ones still ask JSON."""

from __future__ import annotations

import json

from kubesandbox import protobuf
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

CLIENT_GO = "application/vnd.kubernetes.protobuf, application/json"
CONTROLLER = "kube-controller-manager/v1.32.4 (linux/amd64) kubernetes/abc"  # not cached
KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
CMS = "/api/v1/namespaces/default/configmaps"


def configmaps(sandbox, n: int = 40) -> None:
    for i in range(n):
        sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"cm-{i}", "namespace": "default",
                                  "labels": {"app": "bench", "tier": "edge"}},
                     "data": {"config.yaml": "log-level: info\nlisten: 0.0.0.0:8080\n" * 4}})


def direct(sandbox, path: str, accept: str) -> tuple[str, bytes]:
    status, headers, body = http(sandbox.url + path, headers={"Accept": accept})
    assert status == 200
    return headers["Content-Type"], body


def test_a_request_neither_cached_nor_filtered_gets_protobuf(sandbox, hub):
    configmaps(sandbox)
    pb_type, pb_body = direct(sandbox, CMS, CLIENT_GO)
    _, json_body = direct(sandbox, CMS, "application/json")
    assert pb_type == protobuf.PROTOBUF and pb_body.startswith(b"k8s\x00")

    status, headers, body = hub.get(CMS, ua=CONTROLLER, Accept=CLIENT_GO)
    assert status == 200
    assert headers["Content-Type"] == protobuf.PROTOBUF
    assert body == pb_body  # what the apiserver sent for the client's own Accept
    assert len(body) < 0.8 * len(json_body)  # the bytes the cloud link carries

    one = f"{CMS}/cm-3"
    status, headers, body = hub.get(one, ua=CONTROLLER, Accept=CLIENT_GO)
    assert status == 200 and headers["Content-Type"] == protobuf.PROTOBUF
    assert protobuf.decode_object(body)["metadata"]["name"] == "cm-3"


def test_a_cached_request_still_asks_json_and_is_cached(sandbox, hub):
    configmaps(sandbox, 5)
    status, headers, body = hub.get(CMS, ua=KUBELET, Accept=CLIENT_GO)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert {f"cm-{i}" for i in range(5)} <= {i["metadata"]["name"]
                                           for i in json.loads(body)["items"]}
    wait_for(lambda: hub.metric("yurthub_cache_commits_total", kind="list") >= 1,
             what="the list committed to the cache")


def test_a_filtered_request_still_asks_json_and_is_filtered(sandbox, hub_factory, tmp_path):
    """yurt-hub-cfg gives kube-controller-manager the inclusterconfig filter (ConfigMaps):
    its answers must be JSON the filter can read; curl's stay protobuf."""
    configmaps(sandbox, 3)
    sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "yurt-hub-cfg", "namespace": "kube-system"},
                 "data": {"inclusterconfig": "kube-controller-manager"}})
    try:
        filtered_and_not(hub_factory(sandbox.url, cache_dir=tmp_path / "filtered-cache"))
    finally:
        sandbox.delete("configmaps", "yurt-hub-cfg", "kube-system")


def filtered_and_not(hub) -> None:
    def filtered_get() -> tuple[int, dict[str, str], bytes]:
        return hub.get(CMS, ua=CONTROLLER, Accept=CLIENT_GO)

    wait_for(lambda: filtered_get()[0] == 200, what="the filter configuration known")
    status, headers, body = filtered_get()
    assert headers["Content-Type"].startswith("application/json")
    assert {f"cm-{i}" for i in range(3)} <= {i["metadata"]["name"]
                                           for i in json.loads(body)["items"]}
    # Another component, neither filtered nor cached: protobuf.
    status, headers, body = hub.get(CMS, ua="curl/8", Accept=CLIENT_GO)
    assert status == 200 and headers["Content-Type"] == protobuf.PROTOBUF
    assert body.startswith(b"k8s\x00")
