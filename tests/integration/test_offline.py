"""Offline autonomy: with the cloud gone, real clients get the answers they got before."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

OPERATOR = "edge-operator/1.0"
COLUMNS = ("custom-columns=NS:.metadata.namespace,NAME:.metadata.name,"
           "NODE:.spec.nodeName,RV:.metadata.resourceVersion")


@pytest.fixture
def edge_hub(sandbox, hub_factory):
    return hub_factory(sandbox.url, extra=["--cache-agents", "kubectl,edge-operator"])


def go_offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")


def api(hub) -> client.CoreV1Api:
    conf = client.Configuration()
    conf.host = hub.url
    conf.retries = False
    c = client.ApiClient(conf)
    c.user_agent = OPERATOR
    return client.CoreV1Api(c)


def without_age(text: str) -> str:
    """kubectl's default output ends with an AGE column that moves with the clock."""
    lines = text.splitlines()
    if lines and lines[0].split()[-1:] == ["AGE"]:
        return "\n".join(line.rsplit(None, 1)[0] for line in lines)
    return text


def test_kubectl_gets_the_same_answers_offline(sandbox, edge_hub, tmp_path):
    kubectl = Kubectl(tmp_path, edge_hub.url)
    pod = sandbox.list_objects("pods", "default")[0]["metadata"]["name"]
    commands = [
        ("get", "pods", "-A"),  # kubectl asks for a Table, with plain JSON as fallback
        ("get", "pods", "-A", "-o", COLUMNS),
        ("get", "pods", "-A", "-l", "app=web", "-o", COLUMNS),
        ("get", "pods", "-A", "--field-selector", "spec.nodeName=node-0001", "-o", COLUMNS),
        ("get", "pods", "-A", "--chunk-size=2", "-o", COLUMNS),
        ("get", "pod", pod, "-n", "default", "-o", "yaml"),
        ("get", "nodes", "-o", "name"),
        ("get", "--raw", "/version"),
        ("api-resources",),
    ]
    online = [without_age(kubectl(*c).stdout) for c in commands]
    assert all(online)
    go_offline(sandbox, edge_hub)
    for cmd, before in zip(commands, online, strict=True):
        r = kubectl(*cmd)
        assert without_age(r.stdout) == before, cmd
        if cmd[0] == "get" and cmd[1] != "--raw":
            assert "served from the yurthub cache" in r.stderr, cmd
    # Writes that are not this node's own truth are refused, clearly.
    r = kubectl("create", "configmap", "offline-cm", "--from-literal=a=b", check=False)
    assert r.returncode != 0 and "cloud is unreachable" in r.stderr
    r = kubectl("delete", "pod", pod, "-n", "default", check=False)
    assert r.returncode != 0 and "Forbidden" in r.stderr
    # A narrower question is answered from the wider list, with its exact selector ...
    r = kubectl("get", "pods", "-A", "-l", "never=asked")
    assert "No resources found" in r.stderr
    # ... but a question never answered online is not answered with a made-up empty list.
    r = kubectl("get", "configmaps", "-A", check=False)
    assert r.returncode != 0 and "no complete list" in r.stderr


def _watch_events(v1, rv: str, out: list, stop: threading.Event) -> None:
    w = watch.Watch()
    for ev in w.stream(v1.list_pod_for_all_namespaces, resource_version=rv,
                       timeout_seconds=30):
        out.append((ev["type"], ev["object"].metadata.name,
                    ev["object"].metadata.resource_version))
        if stop.is_set():
            w.stop()
    # The watch ends cleanly when the cloud goes away: an error here fails the test.


def test_watch_resumes_offline_with_exactly_the_missed_events(sandbox, edge_hub):
    v1 = api(edge_hub)
    listing = v1.list_pod_for_all_namespaces()
    rv0 = listing.metadata.resource_version
    seen: list = []
    stop = threading.Event()
    t = threading.Thread(target=_watch_events, args=(v1, rv0, seen, stop), daemon=True)
    t.start()
    time.sleep(0.5)
    for i in range(3):
        sandbox.put({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"late-{i}", "namespace": "default"},
                     "spec": {"nodeName": "node-0000",
                              "containers": [{"name": "c", "image": "nginx"}]}})
    sandbox.delete("pods", "late-0", namespace="default")
    wait_for(lambda: len(seen) == 4, what="four events through the hub")
    stop.set()
    time.sleep(0.5)  # the cache writer commits the events
    missed_after = seen[0][2]  # the client saw only the first event before it lost the watch
    go_offline(sandbox, edge_hub)
    resumed = []
    w = watch.Watch()
    for ev in w.stream(v1.list_pod_for_all_namespaces, resource_version=missed_after,
                       timeout_seconds=2):
        resumed.append((ev["type"], ev["object"].metadata.name,
                        ev["object"].metadata.resource_version))
    assert resumed == seen[1:]
    # A version older than the cache's history: 410, then a relist works offline.
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(v1.list_pod_for_all_namespaces, resource_version="1",
                                      timeout_seconds=2):
            pass
    assert e.value.status == 410
    relist = v1.list_pod_for_all_namespaces()
    names = {p.metadata.name for p in relist.items}
    assert {"late-1", "late-2"} <= names and "late-0" not in names
    assert int(relist.metadata.resource_version) >= int(seen[-1][2])


def test_list_with_limit_and_continue_offline(sandbox, edge_hub):
    v1 = api(edge_hub)
    full = [p.metadata.name for p in v1.list_pod_for_all_namespaces().items]
    go_offline(sandbox, edge_hub)
    names, token = [], None
    while True:
        page = v1.list_pod_for_all_namespaces(limit=2, _continue=token)
        names += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == full


def test_discovery_and_version_are_served_offline(sandbox, edge_hub):
    online = {p: edge_hub.get(p, ua=OPERATOR)[2] for p in ("/version", "/api", "/apis",
                                                             "/api/v1")}
    go_offline(sandbox, edge_hub)
    for path, body in online.items():
        status, headers, got = edge_hub.get(path, ua="coredns/1.11")
        assert status == 200 and json.loads(got) == json.loads(body), path
        assert "yurthub cache" in headers.get("Warning", "")


def test_what_was_never_discovered_online_is_unavailable_offline_not_missing(sandbox,
                                                                             edge_hub,
                                                                             tmp_path):
    """A discovery document or any other path never fetched online is a 503 offline: the
    cloud may serve it (a 404 said it does not exist, and kubectl printed "the server could
    not find the requested resource")."""
    edge_hub.get("/version", ua=OPERATOR)  # something was cached, not the rest
    go_offline(sandbox, edge_hub)
    for path in ("/apis/apps/v1", "/openapi/v3", "/livez"):
        status, _, raw = edge_hub.get(path, ua=OPERATOR)
        doc = json.loads(raw)
        assert (status, doc["reason"]) == (503, "ServiceUnavailable"), (path, doc)
    r = Kubectl(tmp_path, edge_hub.url)("get", "pods", check=False)
    assert r.returncode != 0 and "NotFound" not in r.stderr, r.stderr
    assert "ServiceUnavailable" in r.stderr, r.stderr


def test_the_hubs_own_documents_are_no_answer_offline(sandbox, edge_hub):
    """The hub keeps its filters' inputs under the non-resource path /_yurthub/filter-inputs.
    Offline that path answered 200 with them (every node pool's members, the services'
    topology) to any client, a pod's token included, where the cloud says 404."""
    assert edge_hub.get("/_yurthub/filter-inputs", ua=OPERATOR)[0] == 404
    kept = edge_hub.cache_dir / "_nonresource" / "%2F_yurthub%2Ffilter-inputs"
    wait_for(kept.exists, what="the filters' inputs kept in the cache")
    go_offline(sandbox, edge_hub)
    status, _, raw = edge_hub.get("/_yurthub/filter-inputs", ua=OPERATOR)
    assert status == 503 and b"nodepools" not in raw, raw
    assert json.loads(raw)["reason"] == "ServiceUnavailable"


def test_a_watch_list_offline_ends_its_initial_events_with_the_bookmark(sandbox, edge_hub):
    """client-go's watch-list (sendInitialEvents=true) waits for the BOOKMARK annotated
    ``k8s.io/initial-events-end`` before it counts as synced: offline, from the cache, it
    comes right after the cached state, as kube-apiserver sends it."""
    listing = api(edge_hub).list_pod_for_all_namespaces()
    cached = {p.metadata.name for p in listing.items}
    go_offline(sandbox, edge_hub)

    def events(query: str) -> list[tuple[str, dict]]:
        status, _, raw = http(f"{edge_hub.url}/api/v1/pods?watch=true&timeoutSeconds=1&"
                              f"allowWatchBookmarks=true&{query}",
                              headers={"User-Agent": OPERATOR})
        assert status == 200, raw
        return [(e["type"], e["object"]) for e in map(json.loads, raw.splitlines())]

    for rv in ("", listing.metadata.resource_version):
        got = events(f"sendInitialEvents=true&resourceVersionMatch=NotOlderThan&"
                     f"resourceVersion={rv}")
        assert {o["metadata"]["name"] for t, o in got if t == "ADDED"} == cached, rv
        ends = [i for i, (t, o) in enumerate(got) if t == "BOOKMARK" and (
            o["metadata"].get("annotations") or {}).get("k8s.io/initial-events-end") == "true"]
        assert ends == [len(cached)], (rv, got[len(cached):])
    # sendInitialEvents=false: only what happens from now on, no state.
    got = events("sendInitialEvents=false&resourceVersionMatch=NotOlderThan")
    assert [t for t, _ in got if t != "BOOKMARK"] == []


def test_offline_not_found_only_where_a_list_would_show_it_missing(sandbox, edge_hub, tmp_path):
    """An object the cache never held is NotFound offline only when a complete list of its
    namespace (or of its name) says so; otherwise it may well exist: a 503, not a 404 that
    kubectl prints as "not found" for a pod that is running."""
    web = sorted(p["metadata"]["name"] for p in sandbox.list_objects("pods")
                 if p["metadata"]["namespace"] == "default"
                 and (p["metadata"].get("labels") or {}).get("app") == "web")
    other = sorted(p["metadata"]["name"] for p in sandbox.list_objects("pods")
                   if p["metadata"]["namespace"] == "default"
                   and (p["metadata"].get("labels") or {}).get("app") != "web")
    kubectl = Kubectl(tmp_path, edge_hub.url)
    kubectl("get", "pods", "-n", "default", "-l", "app=web", "-o", "name")
    v1 = api(edge_hub)
    v1.list_node()  # every node
    go_offline(sandbox, edge_hub)
    assert kubectl("get", "pod", web[0], "-n", "default", "-o", "name").stdout.strip() == \
        f"pod/{web[0]}"
    r = kubectl("get", "pod", other[0], "-n", "default", "-o", "name", check=False)
    assert r.returncode != 0 and "NotFound" not in r.stderr, r.stderr
    assert "ServiceUnavailable" in r.stderr and "may well exist" in r.stderr, r.stderr
    # The list of every node vouches: a node that is not there is not found.
    with pytest.raises(ApiException) as e:
        v1.read_node("no-such-node")
    assert e.value.status == 404


def test_a_namespace_is_read_offline_by_its_name(sandbox, edge_hub, tmp_path):
    """kube-apiserver's RequestInfo gives ``/api/v1/namespaces/<name>`` the namespace
    <name>, yet a Namespace is cluster-scoped: offline it is read by its name, never a 404
    for a namespace the cached list holds."""
    v1 = api(edge_hub)
    v1.list_namespace()
    kubectl = Kubectl(tmp_path, edge_hub.url)
    kubectl("get", "namespaces")
    go_offline(sandbox, edge_hub)
    assert v1.read_namespace("kube-system").metadata.name == "kube-system"
    r = kubectl("get", "namespace", "default", check=False)
    assert r.returncode == 0 and r.stdout.split()[3:5] == ["default", "Active"], r.stderr
    with pytest.raises(ApiException) as e:  # the list vouches: one it lacks is not found
        v1.read_namespace("no-such-namespace")
    assert e.value.status == 404


def test_no_cluster_scoped_resource_is_served_under_a_namespace_offline(sandbox, edge_hub):
    """kube-apiserver answers a cluster-scoped resource under /namespaces/<ns>/ with 404:
    offline too, never an empty list nor the object the name names."""
    v1 = api(edge_hub)
    v1.list_node()
    v1.list_namespace()
    paths = ["/api/v1/namespaces/default/nodes", "/api/v1/namespaces/default/nodes/node-0000",
             "/api/v1/namespaces/default/namespaces"]
    online = [edge_hub.get(p, ua=OPERATOR)[0] for p in paths]
    go_offline(sandbox, edge_hub)
    for path, before in zip(paths, online, strict=True):
        status, _, body = edge_hub.get(path, ua=OPERATOR)
        assert (status, before) == (404, 404), (path, body[:200])
        assert json.loads(body)["reason"] == "NotFound", path
    assert edge_hub.get("/api/v1/nodes/node-0000", ua=OPERATOR)[0] == 200


def operator_hub(sandbox, hub_factory) -> tuple[Any, Any, dict]:
    """A hub caching for an operator that lists without watching, its client, and a pod
    template for this node."""
    edge_hub = hub_factory(sandbox.url, extra=["--cache-agents", "edge-operator",
                                               "--watch-bookmark-interval", "1"])
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": {"nodeName": "node-0000",
                                                         "containers": [{"name": "c",
                                                                         "image": "i"}]}}
    return edge_hub, api(edge_hub), pod


def test_an_offline_watch_never_vouches_for_what_the_hub_never_saw(sandbox, hub_factory):
    """A watch resumed offline must not move the client past changes the hub never saw: a
    bookmark at the version of an object cached later by a get (another namespace) made
    the client re-watch the cloud from there, and it never learnt of a pod deleted in
    between."""
    edge_hub, v1, pod = operator_hub(sandbox, hub_factory)
    sandbox.put({**pod, "metadata": {"name": "doomed", "namespace": "default"}})
    listed = v1.list_namespaced_pod("default")  # no watch keeps this list current
    rv = listed.metadata.resource_version
    assert "doomed" in {p.metadata.name for p in listed.items}
    sandbox.delete("pods", "doomed", namespace="default")  # the hub does not see this
    sandbox.put({**pod, "metadata": {"name": "later", "namespace": "kube-system"}})
    v1.read_namespaced_pod("later", "kube-system")  # cached, at a newer version
    go_offline(sandbox, edge_hub)
    status, _, raw = http(f"{edge_hub.url}/api/v1/namespaces/default/pods?watch=true&"
                          f"resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3",
                          headers={"User-Agent": OPERATOR})
    assert status == 200
    versions = [json.loads(line)["object"]["metadata"]["resourceVersion"]
                for line in raw.splitlines()]
    assert versions and all(int(v) <= int(rv) for v in versions), (rv, versions)
    # Back online, the client re-watches from where it was left: the deletion reaches it.
    sandbox.online()
    wait_for(lambda: edge_hub.metric("node_yurthub_server_healthy_status") == 1, timeout=15,
             what="the cloud back")
    seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        v1.list_namespaced_pod, "default", resource_version=versions[-1], timeout_seconds=1)]
    assert ("DELETED", "doomed") in seen


def test_an_offline_list_never_vouches_for_what_the_hub_never_saw(sandbox, hub_factory):
    """The same for a list from the cache: its resourceVersion was the newest of the objects
    it returns, and a get (online, through the hub) of one of them after the list cached a
    version past changes the hub never saw; a client listing offline, then watching the
    cloud from that version, never learnt of a pod deleted in between (client-go's store
    keeps it for good)."""
    edge_hub, v1, pod = operator_hub(sandbox, hub_factory)
    for name in ("doomed", "kept"):
        sandbox.put({**pod, "metadata": {"name": name, "namespace": "default"}})
    v1.list_namespaced_pod("default")  # no watch keeps this list current
    sandbox.delete("pods", "doomed", namespace="default")  # the hub does not see this
    sandbox.put({**pod, "metadata": {"name": "kept", "namespace": "default",
                                     "labels": {"touched": "yes"}}})
    v1.read_namespaced_pod("kept", "default")  # cached, at a version past the deletion
    go_offline(sandbox, edge_hub)
    listed = v1.list_namespaced_pod("default")  # from the cache: doomed is still there
    assert "doomed" in {p.metadata.name for p in listed.items}
    sandbox.online()
    wait_for(lambda: edge_hub.metric("node_yurthub_server_healthy_status") == 1, timeout=15,
             what="the cloud back")
    seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        v1.list_namespaced_pod, "default", resource_version=listed.metadata.resource_version,
        timeout_seconds=1)]
    assert ("DELETED", "doomed") in seen, (listed.metadata.resource_version, seen)


def test_a_watch_too_old_for_the_history_says_how_old_the_cache_is(sandbox, edge_hub):
    """The 410 of an offline watch said "served from the yurthub cache, age 499047h" (the
    age of the epoch), which client-go logs with every Warning it is sent."""
    pods = f"{edge_hub.url}/api/v1/pods"
    ua = {"User-Agent": OPERATOR}
    assert http(pods, headers=ua)[0] == 200
    go_offline(sandbox, edge_hub)
    status, headers, raw = http(f"{pods}?watch=true&resourceVersion=1&timeoutSeconds=2",
                                headers=ua)
    assert status == 200 and json.loads(raw)["object"]["code"] == 410
    # The cache's age, as its lists say it: seconds (the list above is a moment old).
    assert re.fullmatch(r'299 - "served from the yurthub cache, age \d+s"', headers["Warning"])


def test_pods_no_node_was_assigned_are_listed_offline_as_online(sandbox, edge_hub, tmp_path):
    """A pod waiting for the scheduler was never cached (YurtHub skips them: not this
    node's), so offline `kubectl get pods -A` left it out and `--field-selector
    spec.nodeName=` (how one finds such pods) said "No resources found", a made-up answer
    from a list that looked complete.  kubelet's own lists select its node: unchanged."""
    sandbox.put({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "unscheduled", "namespace": "default"},
                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    kubectl = Kubectl(tmp_path, edge_hub.url)
    commands = [("get", "pods", "-A", "-o", COLUMNS),
                ("get", "pods", "-A", "--field-selector", "spec.nodeName=", "-o", COLUMNS),
                ("get", "pods", "-n", "default", "--field-selector", "status.phase=Pending",
                 "-o", "name")]
    online = [kubectl(*c).stdout for c in commands]
    assert all("unscheduled" in out for out in online), online
    go_offline(sandbox, edge_hub)
    assert [kubectl(*c).stdout for c in commands] == online


def test_a_watch_of_one_object_by_its_path_watches_that_object_offline(sandbox, edge_hub):
    """``/api/v1/watch/namespaces/<ns>/pods/<name>`` (the legacy watch path) watches that
    pod, as kube-apiserver adds ``metadata.name=<name>``; offline the name was dropped and
    the client was sent every pod of the namespace."""
    pods = [p["metadata"]["name"] for p in sandbox.list_objects("pods", "default")]
    assert len(pods) >= 2
    ua = {"User-Agent": OPERATOR}
    assert http(f"{edge_hub.url}/api/v1/pods", headers=ua)[0] == 200
    path = f"{edge_hub.url}/api/v1/watch/namespaces/default/pods/{pods[0]}?timeoutSeconds=1"

    def watched(url: str) -> list[tuple[str, str]]:
        status, _, raw = http(url, headers=ua)
        assert status == 200, raw
        return [(e["type"], e["object"]["metadata"]["name"])
                for e in map(json.loads, raw.splitlines())]
    online = watched(path)
    assert online == [("ADDED", pods[0])]
    go_offline(sandbox, edge_hub)
    assert watched(path) == online
    assert watched(path + f"&fieldSelector=metadata.name%3D{pods[0]}") == online
    status, _, raw = http(path + f"&fieldSelector=metadata.name%3D{pods[1]}", headers=ua)
    assert (status, json.loads(raw)["message"]) == (
        400, "fieldSelector metadata.name doesn't match requested name")


def test_an_object_patched_then_deleted_stays_deleted_offline(sandbox, edge_hub):
    # A client that watches what it writes (lightkube, @kubernetes/client-node and this one
    # alike): the answer to its patch reached the cache after the watch's DELETED and put
    # the object back, so the next offline list showed every ConfigMap it had deleted.
    v1 = api(edge_hub)
    listing = v1.list_namespaced_config_map("default")
    before = sorted(c.metadata.name for c in listing.items)
    seen: list = []

    def follow() -> None:
        for ev in watch.Watch().stream(v1.list_namespaced_config_map, "default",
                                       resource_version=listing.metadata.resource_version,
                                       timeout_seconds=20):
            seen.append(ev["type"])
            if seen.count("DELETED") == 3:
                return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    for i in range(3):
        name = f"written-{i}"
        v1.create_namespaced_config_map("default", {"metadata": {"name": name},
                                                    "data": {"a": "1"}})
        v1.patch_namespaced_config_map(name, "default", {"data": {"b": "2"}})
        v1.delete_namespaced_config_map(name, "default")
    t.join(20)
    assert seen.count("DELETED") == 3, seen
    time.sleep(1)  # the cache writer commits what it was sent
    go_offline(sandbox, edge_hub)
    offline = v1.list_namespaced_config_map("default")
    assert sorted(c.metadata.name for c in offline.items) == before
    with pytest.raises(ApiException) as e:
        v1.read_namespaced_config_map("written-0", "default")
    assert e.value.status == 404
