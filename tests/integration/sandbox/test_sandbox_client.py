"""The kubernetes Python client against the sandbox: paging, watch resumption, 410, bookmarks,
and the write verbs."""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "py", "labels": {"app": "py"}},
       "spec": {"containers": [{"name": "c", "image": "nginx:1",
                                "env": [{"name": "A", "value": "1"}]}]}}


def test_list_with_limit_and_continue(core):
    whole = [p.metadata.name for p in core.list_pod_for_all_namespaces().items]
    got, token, pages = [], None, 0
    while True:
        kw = {"limit": 4}
        if token:
            kw["_continue"] = token
        page = core.list_namespaced_pod("default", **kw)
        got += [p.metadata.name for p in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 6 - len(got)
    assert got == whole and pages == 2


def test_watch_resumes_exactly_after_a_resource_version(sandbox, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    for name in ("one", "two"):
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    core.delete_namespaced_config_map("one", "default")
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv,
                       timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name,
                     int(ev["object"].metadata.resource_version)))
        if len(seen) == 3:
            w.stop()
    assert [s[:2] for s in seen] == [("ADDED", "one"), ("ADDED", "two"), ("DELETED", "one")]
    assert all(s[2] > int(rv) for s in seen) and seen == sorted(seen, key=lambda s: s[2])


def test_a_too_old_resource_version_is_410(sandbox, core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "x", "namespace": "default"}})
    sandbox.compact()
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv,
                                      timeout_seconds=5):
            pass
    assert e.value.status == 410
    assert "too old resource version" in str(e.value.reason)


def test_bookmarks_arrive_when_asked(core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    w = watch.Watch()
    types = []
    for ev in w.stream(core.list_namespaced_pod, "default", resource_version=rv,
                       allow_watch_bookmarks=True, timeout_seconds=5):
        types.append(ev["type"])
        if len(types) == 2:
            w.stop()
    assert types == ["BOOKMARK", "BOOKMARK"]
    assert int(w.resource_version) >= int(rv)


def test_create_patch_replace_delete(sandbox, core):
    created = core.create_namespaced_pod("default", POD)
    assert created.metadata.uid and created.status.phase == "Pending"
    patched = core.patch_namespaced_pod(  # the client sends a strategic merge patch
        "py", "default", {"spec": {"containers": [{"name": "c", "env": [
            {"name": "B", "value": "2"}]}]}, "metadata": {"labels": {"tier": "t"}}})
    env = {e.name: e.value for e in patched.spec.containers[0].env}
    assert env == {"A": "1", "B": "2"} and patched.metadata.labels["tier"] == "t"
    status = core.patch_namespaced_pod_status("py", "default",
                                              {"status": {"phase": "Running"}})
    assert status.status.phase == "Running"
    patched.metadata.labels["replaced"] = "yes"
    patched.metadata.resource_version = status.metadata.resource_version
    replaced = core.replace_namespaced_pod("py", "default", patched)
    assert replaced.metadata.labels["replaced"] == "yes"
    assert replaced.status.phase == "Running"
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_pod("py", "default", patched)  # stale resourceVersion
    assert e.value.status == 409
    core.delete_namespaced_pod("py", "default")
    assert sandbox.get("pods", "py", "default") is None
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("py", "default")
    assert e.value.status == 404


def test_leases_nodes_and_endpoint_slices(sandbox, kube_api):
    coord = client.CoordinationV1Api(kube_api)
    lease = coord.read_namespaced_lease("node-0000", "kube-node-lease")
    assert lease.spec.holder_identity == "node-0000"
    coord.patch_namespaced_lease("node-0000", "kube-node-lease",
                                 {"spec": {"leaseDurationSeconds": 50}})
    assert sandbox.get("leases", "node-0000", "kube-node-lease")["spec"][
        "leaseDurationSeconds"] == 50
    nodes = client.CoreV1Api(kube_api).list_node(field_selector="metadata.name=node-0001")
    assert [n.metadata.name for n in nodes.items] == ["node-0001"]
    slices = client.DiscoveryV1Api(kube_api).list_namespaced_endpoint_slice("default")
    assert slices.items[0].ports[0].port == sandbox.port
