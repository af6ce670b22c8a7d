"""A node keeps working through outages, flaps and hub restarts, and converges afterwards."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.kubeletlike import UA, KubeletLike

NODE = "node-0000"
# The scenarios' lengths come from the hub's heartbeat settings, given to each hub here, not
# from wall-clock minutes: what they prove holds for any setting, and small ones keep the
# suite fast.  Where a scenario needs the hub to have seen a change, it waits for the hub's
# own health metric rather than sleeping for a guess.
HEARTBEAT = 1   # --heartbeat-interval-seconds: one health probe (and Lease renewal) a second
GRACE = 6       # --kubelet-health-grace-period: the hub renews kubelet's Lease upstream while
                # kubelet's last lease request is at most this old
SETTINGS = ["--heartbeat-interval-seconds", str(HEARTBEAT),
            "--kubelet-health-grace-period", str(GRACE)]
FLAPS = 6
SERVED = 3      # calls kubelet must get answered from the cache in every offline spell


def direct_pods(sandbox: Sandbox) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["resourceVersion"]
            for p in sandbox.list_objects("pods") if p["spec"].get("nodeName") == NODE}


def cloud_healthy(hub) -> bool:
    return hub.metric("node_yurthub_server_healthy_status") == 1


def renewed_upstream(sandbox: Sandbox) -> datetime | None:
    """When the node Lease in the cloud was last renewed (by the hub, for kubelet)."""
    lease = sandbox.get("leases", NODE, "kube-node-lease")
    when = (lease or {}).get("spec", {}).get("renewTime")
    return datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None


@pytest.mark.slow
def test_a_kubelet_rides_out_an_outage_and_a_hub_restart(sandbox, hub_factory):
    """An outage of three grace periods with a hub restart in the middle of it: kubelet is
    answered from the cache before and after the restart, and when the cloud returns the hub
    still knows kubelet is alive (its lease requests went on locally) and renews its Lease."""
    hub = hub_factory(sandbox.url, node=NODE, extra=SETTINGS)
    kubelet = KubeletLike(hub.url, NODE).start()
    wait_for(lambda: kubelet.rounds >= 5, what="kubelet to run online")
    wait_for(lambda: renewed_upstream(sandbox) is not None, timeout=10,
             what="the hub to renew the node Lease upstream for kubelet")
    sandbox.offline()
    outage = time.monotonic()
    wait_for(lambda: not cloud_healthy(hub), timeout=10, what="the hub to see the cloud go")
    mark = kubelet.answered
    time.sleep(max(0.0, 1.5 * GRACE - (time.monotonic() - outage)))
    before_restart = kubelet.answered - mark
    assert hub.stop() == 0
    hub.start(wait=False)
    # Serving from disk after the start, the cloud still away.
    wait_for(lambda: http(hub.url + f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}",
                          headers={"User-Agent": UA}, timeout=1)[0] == 200 if _up(hub) else False,
             timeout=30, interval=0.05, what="pods served from disk after the restart")
    mark = kubelet.answered
    time.sleep(max(HEARTBEAT, 3 * GRACE - (time.monotonic() - outage)))
    after_restart = kubelet.answered - mark
    back = datetime.now(UTC)
    sandbox.online()
    wait_for(lambda: cloud_healthy(hub), timeout=10, what="the cloud healthy again")
    wait_for(lambda: (renewed_upstream(sandbox) or back) > back, timeout=10,
             what="the hub to renew kubelet's Lease upstream once the cloud is back")
    kubelet.stop()
    assert kubelet.errors == []
    assert kubelet.gone == set()
    # kubelet kept going from the cache on both sides of the restart.
    assert before_restart >= SERVED and after_restart >= SERVED, (before_restart,
                                                                  after_restart)
    # Online again: the node's view converges to the cloud's.
    kubelet.relist()
    assert {n: p["metadata"]["resourceVersion"] for n, p in kubelet.pods.items()} == \
        direct_pods(sandbox)
    lease = sandbox.get("leases", NODE, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE


def _up(hub) -> bool:
    try:
        return http(hub.hub_url + "/v1/healthz", timeout=0.5)[0] == 200
    except OSError:
        return False


@pytest.mark.slow
def test_clients_converge_after_flapping(sandbox, hub_factory):
    """The cloud goes and comes back six times, each spell as long as the hub needs to see
    it (a heartbeat or two), and changes while the node flaps; kubelet is answered from the
    cache in every outage and its watch-built view converges to the cloud's afterwards."""
    hub = hub_factory(sandbox.url, node=NODE, extra=SETTINGS)
    pods_dir = hub.cache_dir / "kubelet" / "pods.v1.core" / "default"
    kubelet = KubeletLike(hub.url, NODE).start()
    wait_for(lambda: kubelet.rounds >= 3, what="kubelet to run online")
    for n in range(FLAPS):
        sandbox.offline()
        wait_for(lambda: not cloud_healthy(hub), timeout=10,
                 what=f"flap {n}: the hub to see the cloud go")
        mark = kubelet.answered
        wait_for(lambda: kubelet.answered >= mark + SERVED, timeout=10,  # noqa: B023
                 what=f"flap {n}: kubelet answered from the cache")
        sandbox.online()
        # The cloud changes while the node flaps.
        sandbox.put({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"flap-{n}", "namespace": "default"},
                     "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "x"}]}})
        if n >= 2:
            sandbox.delete("pods", f"flap-{n - 2}", namespace="default")
        wait_for(lambda: cloud_healthy(hub), timeout=15,
                 what=f"flap {n}: the hub to see the cloud back")
        # The client is answered before the cache applies what it was sent (it never waits
        # on the cache; a watch resuming past its view may even park up to 2 s): the next
        # outage starts once the hub has cached the new pod, or kubelet could know a pod
        # whose status the hub refuses offline (503, retry later) because it is not cached.
        wait_for(lambda: (pods_dir / f"flap-{n}").exists(), timeout=15,  # noqa: B023
                 what=f"flap {n}: the new pod in the hub's cache")

    def converged() -> bool:
        have = {k: v["metadata"]["resourceVersion"] for k, v in kubelet.pods.items()}
        return have == direct_pods(sandbox)
    wait_for(converged, timeout=30, what="the watch-built view to equal the cloud's pods")
    kubelet.stop()
    assert kubelet.errors == []
    assert not kubelet.gone & set(direct_pods(sandbox))  # a 404 only for pods really gone
    status, _, body = http(hub.url + f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}",
                           headers={"User-Agent": UA})
    assert {p["metadata"]["name"] for p in json.loads(body)["items"]} == set(direct_pods(sandbox))


def test_traffic_moves_to_the_other_server_when_one_dies(hub_factory, tmp_path):
    a = Sandbox(nodes=1, control_port=0).start()
    b = Sandbox(nodes=1, control_port=0).start()
    try:
        for sb, who in ((a, "a"), (b, "b")):
            sb.put({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "whoami", "namespace": "default"},
                    "data": {"server": who}})
        hub = hub_factory(f"{a.url},{b.url}", node=NODE, extra=["--lb-mode", "priority"])

        def server() -> str:
            status, _, body = http(hub.url + "/api/v1/namespaces/default/configmaps/whoami",
                                   headers={"User-Agent": "curl/8"})
            return json.loads(body)["data"]["server"] if status == 200 else ""
        assert server() == "a"
        a.offline()
        wait_for(lambda: server() == "b", timeout=10, what="traffic to move to server b")
        wait_for(lambda: hub.metric("node_yurthub_server_healthy_status", server=a.url) == 0,
                 timeout=10, what="server a marked unhealthy")
        assert hub.metric("node_yurthub_server_healthy_status", server=b.url) == 1
        assert server() == "b"
        a.online()
        wait_for(lambda: server() == "a", timeout=15, what="traffic back on the first server")
    finally:
        a.stop()
        b.stop()


def test_a_connection_reset_before_the_answer_is_served_from_the_cache_or_a_502(sandbox,
                                                                                hub_factory):
    """The cloud dies while a request is in flight (accepted, then reset before any byte):
    a cached read is answered from the cache, a write gets a 502 Status; never a 500."""
    hub = hub_factory(sandbox.url, node=NODE)
    path = f"/api/v1/nodes/{NODE}"
    status, _, cached = http(hub.url + path, headers={"User-Agent": UA})
    assert status == 200
    wait_for(lambda: (hub.cache_dir / "kubelet" / "nodes.v1.core" / NODE).exists(),
             what="the node in the cache")
    sandbox.drop_next(match=path)
    status, _, body = http(hub.url + path, headers={"User-Agent": UA})
    assert status == 200
    assert json.loads(body)["metadata"]["name"] == NODE
    # A write may have arrived: it is not sent again, the client learns what happened.
    cms = "/api/v1/namespaces/default/configmaps"
    cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "reset-test"}}).encode()
    headers = {"User-Agent": "other/1.0", "Content-Type": "application/json"}
    sandbox.drop_next(match=cms)
    status, _, body = http(hub.url + cms, method="POST", headers=headers, body=cm)
    assert status == 502
    st = json.loads(body)
    assert st["kind"] == "Status" and st["code"] == 502 and "broke" in st["message"]
    status, _, _ = http(hub.url + cms, method="POST", headers=headers, body=cm)
    assert status == 201  # the next request goes through again
