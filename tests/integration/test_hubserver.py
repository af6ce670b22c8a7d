"""The hub's own port: health, readiness and the metrics an operator watches."""

from __future__ import annotations

import socket

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http


def test_health_readiness_and_unknown_paths(hub):
    assert http(hub.hub_url + "/v1/healthz") == (200, http(hub.hub_url + "/v1/healthz")[1], b"OK")
    status, _, body = http(hub.hub_url + "/v1/readyz")
    assert (status, body) == (200, b"OK")
    status, _, body = http(hub.hub_url + "/v1/readyz?verbose")  # as kube-apiserver's
    assert status == 200 and body.splitlines()[-1] == b"readyz check passed"
    assert {b"[+]identity ok", b"[+]caching ok", b"[+]filters ok"} <= set(body.splitlines())
    assert http(hub.hub_url + "/nope")[0] == 404
    assert http(hub.hub_url + "/v1/healthz", method="POST", body=b"")[0] == 405
    # The API port does not answer for the hub's endpoints, and vice versa.
    assert http(hub.url + "/v1/healthz")[0] == 404


def test_metrics_show_traffic_health_and_the_cache(sandbox, hub):
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") == 6, what="cache size in /metrics")
    assert hub.metric("node_yurthub_server_healthy_status", server=sandbox.url) == 1
    assert hub.metric("node_yurthub_proxy_traffic_collector_total", client="kubelet",
                      verb="list", resource="pods") > 1000
    assert hub.metric("yurthub_cache_bytes", component="kubelet", resource="pods.v1.core") > 0
    assert 0 <= hub.metric("yurthub_cache_sync_age_seconds", component="kubelet",
                           resource="pods.v1.core") < 60
    assert hub.metric("yurthub_cache_view_stale", component="kubelet",
                      resource="pods.v1.core") == 0
    assert hub.metric("yurthub_requests_total", client="kubelet", source="remote") >= 1


def test_readyz_lists_each_check_and_keeps_the_first_reason_on_its_first_line():
    from werkzeug.test import Client

    from yurthub.hubserver import HubServer
    from yurthub.metrics import Metrics
    checks = [("identity", None), ("caching", "caching stopped (quota): full"),
              ("filters", "the filter configuration is not known yet")]
    r = Client(HubServer(Metrics(), lambda: checks)).get("/v1/readyz")
    assert r.status_code == 503
    assert r.get_data(as_text=True).splitlines() == [
        "not ready: caching stopped (quota): full", "[+]identity ok",
        "[-]caching failed: caching stopped (quota): full",
        "[-]filters failed: the filter configuration is not known yet", "readyz check failed"]


def test_requests_refused_offline_are_counted_with_their_5xx(sandbox, hub):
    """The 503s a node's components get while the cloud is away are what the
    YurthubRefusingRequests alert (code=~"5..") is for: the cache's answers are counted with
    their status, and the ones the hub makes itself (no cloud, nothing cached) too."""
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") == 6, what="pods cached")
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, what="offline")
    assert hub.get("/api/v1/pods")[0] == 200
    assert hub.get("/api/v1/namespaces/default/secrets")[0] == 503  # never listed online
    agent = "some-operator/v1.0"  # not a cache agent: nothing of it is cached
    assert hub.get("/apis/apps/v1/deployments", ua=agent)[0] == 503
    assert hub.metric("yurthub_requests_total", client="kubelet", source="cache",
                      code="200") >= 1
    assert hub.metric("yurthub_requests_total", client="kubelet", source="cache",
                      code="503") == 1
    assert hub.metric("yurthub_requests_total", client="some-operator", code="503") == 1


def test_requests_in_flight_count_the_watches_the_cache_serves_offline(sandbox, hub):
    """Offline, the watches the cache serves are the requests in flight: the gauge says so,
    and falls back once their clients go."""
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") == 6, what="pods cached")
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, what="offline")
    socks = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", hub.proxy_port), timeout=30)
        s.sendall(b"GET /api/v1/pods?watch=true&timeoutSeconds=120 HTTP/1.1\r\nHost: x\r\n"
                  b"User-Agent: kubelet/v1.32.4\r\n\r\n")
        assert s.recv(12) == b"HTTP/1.1 200"
        socks.append(s)
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 5,
             what="five watches on the cache")
    assert hub.metric("node_yurthub_in_flight_requests_total") == 5
    for s in socks:
        s.close()
    wait_for(lambda: hub.metric("node_yurthub_in_flight_requests_total") == 0,
             what="the watches' requests ended")
