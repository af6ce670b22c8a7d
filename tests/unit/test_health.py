"""The health checker against a real sandbox: YurtHub's thresholds and the kubelet coupling."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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


class _Portal(BaseHTTPRequestHandler):
    """Something in front of the apiserver answering the Lease's GET with 200 and no Lease
    (a captive portal's page, a proxy's JSON of another shape); /readyz is fine."""

    bodies: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = b"ok" if self.path == "/readyz" else self.bodies[self.server.server_port]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("body", [
    b"<html><body>Please log in</body></html>",
    b"[1, 2]",
    b'{"kind":"Lease","spec":"renewed"}',
    b'{"kind":"Lease","metadata":{"annotations":["a"]}}',
], ids=["html", "array", "spec-string", "annotations-list"])
def test_a_lease_get_answered_without_a_lease_is_a_failed_probe_not_a_dead_hub(body):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    _Portal.bodies[httpd.server_port] = body
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}"
    try:
        cfg = config.load(None, {"server_addr": url, "node_name": NODE})
        up = Upstream(cfg, Credentials(servers=(url,)))
        leases: list[bytes] = []
        hc = HealthChecker(cfg, up, Metrics(), on_lease=leases.append, clock=Clock())
        hc.kubelet_lease_seen()
        hc.probe_all()  # raised (JSONDecodeError, AttributeError): the hub exited with 70
        assert not hc.cloud_healthy()
        assert "without a Lease" in up.servers[0].last_error
        assert leases == []
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_cloud_state_at_start_is_logged_even_when_it_never_changes(sandbox, caplog):
    # An operator reading the journal of a hub started with the cloud already cut sees it.
    sandbox.offline()
    hc, _, changes, _ = checker(sandbox, Clock())
    with caplog.at_level("INFO", logger="yurthub.health"):
        hc.probe_all()
        hc.probe_all()
    assert changes == [False]
    cloud = [r for r in caplog.records if r.getMessage().startswith("cloud is")]
    assert [(r.levelname, r.getMessage()) for r in cloud] == \
        [("WARNING", "cloud is UNHEALTHY at start; serving from the cache")]


def test_a_healthy_cloud_at_start_is_logged_once(sandbox, caplog):
    hc, _, _, _ = checker(sandbox, Clock())
    with caplog.at_level("INFO", logger="yurthub.health"):
        hc.probe_all()
        hc.probe_all()
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("cloud is")] \
        == ["cloud is healthy at start"]


def test_an_outage_is_a_warning_and_the_recovery_is_not(sandbox, caplog):
    # Alerts and `journalctl -p warning` key on the priority: the way back is news, not
    # trouble, as "cloud is healthy at start" and "server ... is healthy" are.
    hc, _, changes, _ = checker(sandbox, Clock(), heartbeat_healthy_threshold="1")
    with caplog.at_level("INFO", logger="yurthub.health"):
        hc.probe_all()
        sandbox.offline()
        hc.probe_all()
        sandbox.online()
        hc.probe_all()
    assert changes == [True, False, True]
    cloud = [(r.levelname, r.getMessage()) for r in caplog.records
             if r.getMessage().startswith("cloud is")]
    assert cloud == [("INFO", "cloud is healthy at start"),
                     ("WARNING", "cloud is now UNHEALTHY; serving from the cache"),
                     ("INFO", "cloud is now healthy")]
