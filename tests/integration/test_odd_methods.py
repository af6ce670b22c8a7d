"""HEAD and OPTIONS through the hub: online the cloud's answer, as for any request the hub
proxies; offline a Status that says what was refused."""

from __future__ import annotations

import http.client
import json

from tests.fixtures import web
from tests.fixtures.hub import Hub
from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
COREDNS = "coredns/1.11.1 (linux/amd64)"


def head(base: str, path: str, ua: str) -> tuple[int, dict[str, str]]:
    host, port = base.rsplit("/", 1)[-1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("HEAD", path, headers={"User-Agent": ua, "Accept": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_head_of_a_filtered_list_online_is_the_clouds_answer(sandbox, hub_factory):
    hub: Hub = hub_factory(sandbox.url)
    # Lists a response filter applies to (kubelet's pods, coredns's endpoints): the empty
    # body of a HEAD was taken for a torn list, so the hub answered from its cache (a 503
    # "the cloud is unreachable" while it was not, or an old list with a Warning).
    for path, ua in (("/api/v1/pods", KUBELET), ("/api/v1/endpoints", COREDNS),
                     ("/api/v1/services", KUBELET)):
        cloud_status, _ = head(sandbox.url, path, ua)
        status, headers = head(hub.url, path, ua)
        assert (status, cloud_status) == (200, 200), (path, ua)
        assert "served from the yurthub cache" not in headers.get("warning", ""), path
    assert "unreachable" not in hub.log() and "torn" not in hub.log()


def test_options_offline_names_the_method_it_refuses(sandbox, hub_factory):
    hub: Hub = hub_factory(sandbox.url)
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")
    status, _, body = web.http(hub.url + "/api/v1/pods", method="OPTIONS",
                           headers={"User-Agent": KUBELET})
    assert status == 405
    # (the message began with a blank: OPTIONS has no Kubernetes verb)
    assert json.loads(body)["message"] == ("OPTIONS is not supported while the cloud is "
                                           "unreachable")
