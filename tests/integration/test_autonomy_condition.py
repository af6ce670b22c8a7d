"""The node's ``Autonomy`` condition, end to end: the hub judges its cache and the verdict
appears on the sandbox's Node beside kubelet's own conditions, which stay as they were."""

from __future__ import annotations

import json

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

NODE = "node-0000"
KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"


def autonomy(sandbox) -> dict | None:
    node = sandbox.get("nodes", NODE)
    return next((c for c in node["status"]["conditions"] if c["type"] == "Autonomy"), None)


def kubelet_conditions(sandbox) -> list[dict]:
    return [c for c in sandbox.get("nodes", NODE)["status"]["conditions"]
            if c["type"] != "Autonomy"]


def on_status_page(hub) -> dict:
    return json.loads(http(hub.hub_url + "/v1/status")[2])["autonomy"]


def kubelet_syncs(hub, root_ca: bool = True) -> None:
    """What kubelet lists at start: its pods, its node, services, and the ConfigMap every
    pod's service account volume projects (kube-root-ca.crt)."""
    paths = [f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}",
             f"/api/v1/nodes?fieldSelector=metadata.name%3D{NODE}", "/api/v1/services"]
    if root_ca:
        paths.append("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3D"
                     "kube-root-ca.crt")
    for path in paths:
        assert hub.get(path, ua=KUBELET)[0] == 200


def test_autonomy_condition_follows_the_cache_on_the_node(sandbox, hub):
    before = kubelet_conditions(sandbox)
    assert any(c["type"] == "Ready" for c in before)

    # Nothing cached for kubelet yet: False, naming what is missing, on the Node too.
    cond = wait_for(lambda: (c := autonomy(sandbox)) and c, what="the Autonomy condition")
    assert (cond["status"], cond["reason"]) == ("False", "EssentialCacheMissing")
    assert "kubelet: pods not cached" in cond["message"]
    assert cond["lastHeartbeatTime"] and cond["lastTransitionTime"]
    assert kubelet_conditions(sandbox) == before   # kubelet's conditions untouched

    # Pods, node and services, but not the ConfigMap the pods' projected volumes need.
    kubelet_syncs(hub, root_ca=False)
    cond = wait_for(lambda: (c := autonomy(sandbox)) and "kube-root-ca.crt" in c["message"]
                    and c, what="Autonomy=False naming the projected ConfigMap")
    assert cond["status"] == "False"
    assert "kubelet: pods not cached" not in cond["message"]
    kubelet_syncs(hub)
    cond = wait_for(lambda: (c := autonomy(sandbox)) and c["status"] == "True" and c,
                    what="Autonomy=True once kubelet's essentials are cached")
    assert cond["reason"] == "EssentialCacheFresh" and "kubelet" in cond["message"]
    assert kubelet_conditions(sandbox) == before
    page = on_status_page(hub)
    assert (page["status"], page["reportedToNode"]) == ("True", True)
    assert hub.metric("yurthub_node_autonomy") == 1

    # A pod that mounts a ConfigMap and takes a Secret from env: kubelet needs both offline.
    pod = {**_first_pod(sandbox), "apiVersion": "v1", "kind": "Pod"}
    pod["metadata"] = {"name": "app", "namespace": "default"}
    pod["spec"]["nodeName"] = NODE
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "app-config"}},
                              {"name": "opt", "configMap": {"name": "nope", "optional": True}}]
    pod["spec"]["containers"][0]["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {
        "name": "app-secret", "key": "pw"}}}]
    sandbox.put(pod)
    sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "app-config", "namespace": "default"}, "data": {"a": "b"}})
    sandbox.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "app-secret", "namespace": "default"},
                 "data": {"pw": "eA=="}})
    kubelet_syncs(hub)
    cond = wait_for(lambda: (c := autonomy(sandbox)) and c["status"] == "False" and c,
                    what="Autonomy=False: the pod's ConfigMap and Secret are not cached")
    assert "kubelet: configmap default/app-config (used by pod app) not cached" \
        in cond["message"]
    assert "kubelet: secret default/app-secret (used by pod app) not cached" in cond["message"]
    assert "nope" not in cond["message"]        # optional: not essential
    wait_for(lambda: hub.metric("yurthub_node_autonomy") == 0 and
             "yurthub_node_autonomy 0.0" in http(hub.hub_url + "/metrics")[2].decode(),
             what="the metric follows the condition")
    transition = cond["lastTransitionTime"]

    for path in ("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dapp-config",
                 "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Dapp-secret"):
        assert hub.get(path, ua=KUBELET)[0] == 200
    cond = wait_for(lambda: (c := autonomy(sandbox)) and c["status"] == "True" and c,
                    what="Autonomy=True again")
    assert cond["lastTransitionTime"] >= transition
    assert kubelet_conditions(sandbox) == before

    # kube-proxy's lists come from the multiplexer's one copy of services and endpointslices
    # (kube-proxy caches none of its own): each shared copy, once made, is essential.
    assert hub.get("/api/v1/services", ua=PROXY)[0] == 200
    assert hub.get("/apis/discovery.k8s.io/v1/endpointslices", ua=PROXY)[0] == 200
    wait_for(lambda: (c := autonomy(sandbox)) and c["status"] == "True"
             and "yurthub-multiplexer" in c["message"],
             what="Autonomy=True with the shared copies kube-proxy is answered from")
    assert kubelet_conditions(sandbox) == before


def _first_pod(sandbox) -> dict:
    status, _, body = http(sandbox.url + f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")
    assert status == 200
    return json.loads(body)["items"][0]


def _watch(hub, rv: str) -> list[dict]:
    """kubelet's pods watch from ``rv`` for about two seconds: its events."""
    path = (f"/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000&watch=true"
            f"&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=2")
    _, _, body = http(hub.url + path, headers={"User-Agent": KUBELET}, timeout=20)
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_kubelets_pods_view_survives_a_kill_right_after_a_bookmark(sandbox, hub_factory):
    """kill -9 (a power cut) right after a bookmark advanced kubelet's pods view, then
    kubelet resumes its watch from that bookmark online: the view is not stale, offline
    answers are not called incomplete.  Held back to be written 10 s later (for a while
    this session), the bookmark's advance was lost: the resume was a gap the hub took for
    lost events, and the Autonomy condition stayed False until a relist."""
    hub = hub_factory(sandbox.url)
    status, _, body = http(hub.url + "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000",
                           headers={"User-Agent": KUBELET}, timeout=10)
    assert status == 200
    rv = json.loads(body)["metadata"]["resourceVersion"]
    for i in range(3):  # the cloud moves on elsewhere: bookmarks carry its newer version
        sandbox.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"elsewhere-{i}", "namespace": "kube-system"}})
    events = _watch(hub, rv)
    assert events and events[-1]["type"] == "BOOKMARK"
    bookmarked = events[-1]["object"]["metadata"]["resourceVersion"]
    assert int(bookmarked) > int(rv)
    hub.kill()
    hub.start()
    _watch(hub, bookmarked)
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    status, headers, _ = http(hub.url + "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000",
                              headers={"User-Agent": KUBELET}, timeout=10)
    assert status == 200
    assert "incomplete" not in headers.get("Warning", ""), headers.get("Warning")
