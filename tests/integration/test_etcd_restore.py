"""The cloud restored from an etcd backup (its resourceVersions go back): the hub's offline
answers follow what the cloud says after the restore, not what it said before.

The restore is a new sandbox on the same port, whose versions start again from 1.
"""

from __future__ import annotations

import json
import threading

from tests.fixtures.sandboxes import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.test_mux import HUB_ARGS, SVC, service, watch_lines

NODE = "node-0000"
KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
PODS = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}"


def pod(name: str, image: str = "nginx:1") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": image}]}}


def kubelet_pods(hub) -> tuple[int, dict[str, str], str]:
    """kubelet's list of its pods through the hub: (status, {name: image}, its version)."""
    status, _, body = http(hub.url + PODS, headers={"User-Agent": KUBELET}, timeout=10)
    doc = json.loads(body)
    items = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
             for p in doc.get("items", [])}
    return status, items, doc.get("metadata", {}).get("resourceVersion", "")


def healthy(hub, value: int):
    return lambda: hub.metric("node_yurthub_server_healthy_status") == value


def busy_cloud(*objects: dict) -> Sandbox:
    """A cloud busy before its backup (its versions well past the restored ones), holding
    ``objects`` too."""
    cloud = Sandbox(bookmark_interval=0.3).start()
    try:
        for i in range(30):
            cloud.create({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"cm-{i}", "namespace": "default"}})
        for obj in objects:
            cloud.create(obj)
    except BaseException:
        cloud.stop()
        raise
    return cloud


def restored(hub, port: int, lease_refused: bool = False) -> Sandbox:
    """The cloud, gone from the hub, back on ``port`` restored: a new sandbox whose versions
    start again from 1 (``lease_refused``: the node Lease refused until cleared)."""
    wait_for(healthy(hub, 0), timeout=15, what="the hub to see the cloud gone")
    cloud = Sandbox(port=port, bookmark_interval=0.3)
    if lease_refused:
        cloud.fail_next(1_000_000, 403, match="kube-node-lease")
    return cloud.start()


def watching(hub, path: str, ua: str, **params: str) -> tuple[threading.Thread, list[dict]]:
    """A watch through the hub in the background, open when this returns: its thread and
    its events but bookmarks, as they come."""
    opened, events = threading.Event(), []

    def watch() -> None:
        with watch_lines(hub.url, path, ua, **params) as lines:
            opened.set()
            events.extend(ev for ev in lines if ev["type"] != "BOOKMARK")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert opened.wait(15)
    return watcher, events


def ends_with_410(watcher: threading.Thread, events: list[dict]) -> dict:
    """The watch ended (within 30 s) with an ERROR 410; that event's Status."""
    watcher.join(30)
    assert not watcher.is_alive()
    assert events and events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 410
    return events[-1]["object"]


def test_offline_pods_are_the_restored_clouds_not_the_lost_ones(hub_factory):
    before = busy_cloud(*(pod(name, image="nginx:2") for name in ("a", "b", "c")))
    try:
        hub = hub_factory(before.url)
        status, items, _ = kubelet_pods(hub)
        assert status == 200 and items == {"a": "nginx:2", "b": "nginx:2", "c": "nginx:2"}
        port = before.port
    finally:
        before.stop()
    # The backup held pod a (an older spec) and not b or c; d was made after the restore.
    after = restored(hub, port)
    try:
        after.create(pod("a", image="nginx:1"))
        after.create(pod("d"))
        wait_for(healthy(hub, 1), timeout=15, what="the hub to see the cloud back")
        status, items, rv = kubelet_pods(hub)
        assert status == 200 and items == {"a": "nginx:1", "d": "nginx:1"}
        after.offline()
        wait_for(healthy(hub, 0), timeout=15, what="the hub to see the cloud gone")
        status, offline, offline_rv = kubelet_pods(hub)
        assert status == 200
        assert offline == items  # not b and c, nor a's lost spec
        assert int(offline_rv) <= int(rv)
    finally:
        after.stop()


def services(hub) -> tuple[set[str], str]:
    """kube-proxy's list of Services (a consistent read, from the shared state)."""
    status, _, body = http(hub.url + SVC, headers={"User-Agent": KUBE_PROXY}, timeout=10)
    assert status == 200, body
    doc = json.loads(body)
    names = {s["metadata"]["name"] for s in doc["items"]} - {"kubernetes"}  # every cloud's
    return names, doc["metadata"]["resourceVersion"]


def test_shared_services_follow_the_restored_cloud(hub_factory):
    before = busy_cloud(service("lost-1"), service("lost-2"))
    try:
        hub = hub_factory(before.url, extra=HUB_ARGS)
        names, rv = services(hub)
        assert names == {"lost-1", "lost-2"}
        port = before.port
        # kube-proxy's watch, open across the restore
        watcher, events = watching(hub, SVC, KUBE_PROXY, resourceVersion=rv,
                                   timeoutSeconds="60")
    finally:
        before.stop()
    after = restored(hub, port)
    try:
        after.create(service("restored"))
        wait_for(healthy(hub, 1), timeout=15, what="the hub to see the cloud back")
        # kube-proxy restarted: its list is the cloud's, not the lost Services.
        names, _ = services(hub)
        assert names == {"restored"}
        # The watch open across the restore is told to list again (410), not left silent.
        ends_with_410(watcher, events)
        # The shared state follows the restored cloud from then on.
        after.create(service("later"))
        wait_for(lambda: services(hub)[0] == {"restored", "later"}, timeout=15,
                 what="the shared state to follow the restored cloud")
    finally:
        after.stop()


def test_kubelets_watch_from_a_lost_version_ends_with_410(hub_factory):
    """kubelet's pods watch, resumed after the restore from a version the cloud lost, waits
    (as against kube-apiserver) for versions the cloud gives other changes; the hub's proof
    that the versions went back (a quorum get older than the copy cached) ends it with 410
    so that kubelet lists again, as etcd's --bump-revision --mark-compacted would."""
    before = busy_cloud(pod("a", image="nginx:2"))
    try:
        hub = hub_factory(before.url)
        status, _, rv = kubelet_pods(hub)
        assert status == 200
        port = before.port
    finally:
        before.stop()
    after = restored(hub, port)
    try:
        after.create(pod("a", image="nginx:1"))
        wait_for(healthy(hub, 1), timeout=15, what="the hub to see the cloud back")
        # kubelet re-watching from where it was
        watcher, events = watching(hub, "/api/v1/pods", KUBELET, resourceVersion=rv,
                                   fieldSelector=f"spec.nodeName={NODE}", timeoutSeconds="60")
        status, _, body = http(hub.url + "/api/v1/namespaces/default/pods/a",
                               headers={"User-Agent": KUBELET}, timeout=10)
        assert status == 200 and int(json.loads(body)["metadata"]["resourceVersion"]) < int(rv)
        assert "went back" in ends_with_410(watcher, events)["message"]
    finally:
        after.stop()


LEASE = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def test_the_node_lease_going_back_ends_watches_from_a_lost_version(hub_factory):
    """No client of the node asks anything that shows the restore: the node Lease the hub
    renews for kubelet every heartbeat, answered at a lower version than before, does."""
    before = busy_cloud(pod("a"))
    try:
        hub = hub_factory(before.url)
        http(hub.url + LEASE, headers={"User-Agent": KUBELET}, timeout=10)  # kubelet lives
        wait_for(lambda: before.get("leases", NODE, "kube-node-lease") is not None,
                 timeout=15, what="the hub to renew the node Lease for kubelet")
        status, _, rv = kubelet_pods(hub)
        assert status == 200
        port = before.port
    finally:
        before.stop()
    after = restored(hub, port, lease_refused=True)  # no renewal until watched
    try:
        wait_for(healthy(hub, 1), timeout=15, what="the hub to see the cloud back")
        watcher, events = watching(hub, "/api/v1/pods", KUBELET, resourceVersion=rv,
                                   fieldSelector=f"spec.nodeName={NODE}", timeoutSeconds="60")
        after.clear_faults()  # the next heartbeat renews the Lease (created anew: lower)
        ends_with_410(watcher, events)
    finally:
        after.stop()


def test_a_restore_while_the_hub_was_down_ends_watches_at_the_first_renewal(hub_factory):
    """The cloud restored while the hub was stopped (a node rebooted during the outage):
    after the restart, the first renewal of the node Lease is compared with the Lease the
    cache kept, so kubelet's watch resumed from a lost version ends with 410, and what the
    cache kept from before the restart is served offline as what it is (the lost past)."""
    before = busy_cloud(pod("a"))
    try:
        hub = hub_factory(before.url)
        status, _, _ = http(hub.url + CONFIGMAPS, headers={"User-Agent": KUBELET}, timeout=10)
        assert status == 200
        http(hub.url + LEASE, headers={"User-Agent": KUBELET}, timeout=10)  # kubelet lives
        lease_file = hub.cache_dir / f"kubelet/leases.v1.coordination.k8s.io/kube-node-lease/{NODE}"
        wait_for(lease_file.exists, timeout=15, what="the hub to cache its Lease renewal")
        status, _, rv = kubelet_pods(hub)
        assert status == 200
        port = before.port
        hub.stop()
    finally:
        before.stop()
    after = Sandbox(port=port, bookmark_interval=0.3)
    after.fail_next(1_000_000, 403, match="kube-node-lease")  # no renewal until watched
    after.start()
    try:
        hub.start()
        wait_for(healthy(hub, 1), timeout=15, what="the hub to see the cloud")
        http(hub.url + LEASE, headers={"User-Agent": KUBELET}, timeout=10)  # kubelet lives
        watcher, events = watching(hub, "/api/v1/pods", KUBELET, resourceVersion=rv,
                                   fieldSelector=f"spec.nodeName={NODE}", timeoutSeconds="60")
        after.clear_faults()  # the next heartbeat renews the Lease (created anew: lower)
        ends_with_410(watcher, events)
        after.offline()
        wait_for(healthy(hub, 0), timeout=15, what="the hub to see the cloud gone")
        status, headers, body = http(hub.url + CONFIGMAPS, headers={"User-Agent": KUBELET},
                                     timeout=10)
        assert status == 200
        assert {"cm-0", "cm-29"} <= {c["metadata"]["name"] for c in json.loads(body)["items"]}
        assert "went back" in headers.get("Warning", ""), headers
    finally:
        after.stop()


def test_the_node_lease_going_back_ends_shared_watches_with_no_list_asked(hub_factory):
    """kube-proxy's shared watch open across the restore, and no consistent list to probe
    the cloud: the Lease renewed lower ends the feed's watch from the lost version, the
    feed lists again, and the shared watch gets its 410."""
    before = busy_cloud(service("lost"))
    try:
        hub = hub_factory(before.url, extra=HUB_ARGS)
        http(hub.url + LEASE, headers={"User-Agent": KUBELET}, timeout=10)  # kubelet lives
        wait_for(lambda: before.get("leases", NODE, "kube-node-lease") is not None,
                 timeout=15, what="the hub to renew the node Lease for kubelet")
        _, rv = services(hub)
        port = before.port
        watcher, events = watching(hub, SVC, KUBE_PROXY, resourceVersion=rv,
                                   allowWatchBookmarks="true", timeoutSeconds="90")
    finally:
        before.stop()
    after = restored(hub, port, lease_refused=True)  # no renewal until watched
    try:
        wait_for(healthy(hub, 1), timeout=15, what="the hub to see the cloud back")
        # (the feed's watch, from the version the restored cloud lost, is the only one
        # proxied: kube-proxy's is the multiplexer's)
        wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") >= 1,
                 timeout=15, what="the feed to watch the restored cloud")
        after.clear_faults()
        ends_with_410(watcher, events)
    finally:
        after.stop()
