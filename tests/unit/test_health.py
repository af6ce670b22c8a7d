"""The health checker against a real sandbox: YurtHub's thresholds and the kubelet coupling."""

from __future__ import annotations

from kubesandbox.server import Sandbox
from yurthub import config
from yurthub.credentials import Credentials
from yurthub.health import HealthChecker
from yurthub.metrics import Metrics
from yurthub.upstream import Upstream

NODE = "node-0000"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def checker(sb: Sandbox, clock: Clock, **settings: str):
    cfg = config.load(None, {"server_addr": sb.url, "node_name": NODE, **settings})
    up = Upstream(cfg, Credentials(servers=(sb.url,)))
    changes: list[bool] = []
    leases: list[bytes] = []
    hc = HealthChecker(cfg, up, Metrics(), on_change=changes.append, on_lease=leases.append,
                       clock=clock)
    return hc, up, changes, leases


def test_unhealthy_after_one_failed_probe_healthy_after_the_threshold(sandbox):
    hc, up, changes, _ = checker(sandbox, Clock(), heartbeat_healthy_threshold="2")
    hc.probe_all()
    assert hc.cloud_healthy() and changes == [True]
    sandbox.offline()
    hc.probe_all()
    assert not hc.cloud_healthy() and changes == [True, False]
    sandbox.online()
    hc.probe_all()
    assert not hc.cloud_healthy()  # one success is not enough
    hc.probe_all()
    assert hc.cloud_healthy() and changes == [True, False, True]
    assert up.servers[0].healthy


def test_the_lease_is_renewed_only_while_kubelet_is_alive(sandbox):
    sandbox.delete("leases", NODE, "kube-node-lease")  # the seeded one
    clock = Clock()
    hc, _, _, leases = checker(sandbox, clock, kubelet_health_grace_period="40")
    hc.probe_all()
    assert sandbox.get("leases", NODE, "kube-node-lease") is None  # no kubelet seen yet
    hc.kubelet_lease_seen()
    hc.probe_all()
    lease = sandbox.get("leases", NODE, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert len(leases) == 1
    first = lease["metadata"]["resourceVersion"]
    clock.t += 10
    hc.probe_all()
    assert sandbox.get("leases", NODE, "kube-node-lease")["metadata"]["resourceVersion"] != first
    # kubelet went silent for longer than the grace period: the node must go NotReady.
    clock.t += 41
    hc.probe_all()
    renewed = sandbox.get("leases", NODE, "kube-node-lease")["metadata"]["resourceVersion"]
    clock.t += 10
    hc.probe_all()
    assert sandbox.get("leases", NODE, "kube-node-lease")["metadata"]["resourceVersion"] == renewed
    assert hc.cloud_healthy()  # ... but the cloud itself is still fine to use


def test_a_lease_that_exists_is_updated_not_recreated(sandbox):
    sandbox.put({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": NODE, "namespace": "kube-node-lease",
                              "annotations": {"openyurt.io/delegate-heartbeat": "true"}},
                 "spec": {"holderIdentity": "someone-else"}})
    uid = sandbox.get("leases", NODE, "kube-node-lease")["metadata"]["uid"]
    hc, _, _, _ = checker(sandbox, Clock())
    hc.kubelet_lease_seen()
    hc.probe_all()
    lease = sandbox.get("leases", NODE, "kube-node-lease")
    assert lease["metadata"]["uid"] == uid
    assert lease["spec"]["holderIdentity"] == NODE
    assert "openyurt.io/delegate-heartbeat" not in lease["metadata"].get("annotations", {})


def test_server_errors_count_as_failures(sandbox):
    hc, _, _, _ = checker(sandbox, Clock(), heartbeat_failed_retry="2")
    hc.probe_all()
    sandbox.fail_next(2, status=500, match="/readyz")
    hc.probe_all()
    assert not hc.cloud_healthy()
