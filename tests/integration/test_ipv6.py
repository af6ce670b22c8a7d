"""A node whose loopback is IPv6 only: the cloud at ``[::1]`` and ``bind_address = ::1``.

Everything a node's components and its operator do over IPv4 loopback works the same:
kubectl through the hub, the peer check on the connection's owner (sock_diag or
/proc/net/tcp6), offline answers, ``yurthub cache purge`` through the running hub, and the
log says where the hub listens in a form one can paste into a URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubesandbox.server import Sandbox
from tests.fixtures.hub import Hub
from tests.fixtures.kubectl import Kubectl
from tests.fixtures.peers import request_as_nobody
from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"


def _status(hub: Hub) -> dict[str, Any]:
    with urllib.request.urlopen(hub.hub_url + "/v1/status", timeout=5) as r:
        return json.loads(r.read())


def test_a_hub_on_ipv6_loopback_serves_guards_and_answers_offline(
        tmp_path: Path, hub_factory: Callable[..., Hub]) -> None:
    sb = Sandbox(host="::1", nodes=2, pods_per_node=2, bookmark_interval=0.3,
                 control_port=0).start()
    try:
        assert sb.url.startswith("http://[::1]:")
        hub = hub_factory(sb.url, host="::1", extra=["--cache-agents", "kubectl"])
        assert f"proxy [::1]:{hub.proxy_port} -> " in hub.log()
        assert f"hub server [::1]:{hub.serve_port}" in hub.log()

        kubectl = Kubectl(tmp_path, hub.url)
        online = kubectl("get", "nodes", "-o", "json").stdout
        assert [n["metadata"]["name"] for n in json.loads(online)["items"]] == [
            "node-0000", "node-0001"]

        # The peer check finds the owner of an IPv6 connection: root's kubelet is served
        # above, nobody may not use the hub's credentials.
        status, refusal = request_as_nobody(hub.url + "/api/v1/nodes",
                                            headers={"User-Agent": KUBELET})
        assert status == 403, refusal
        assert refusal["kind"] == "Status" and "user 65534" in refusal["message"]

        sb.offline()
        wait_for(lambda: not _status(hub)["cloud"]["online"], 20, what="the hub offline")
        offline = kubectl("get", "nodes", "-o", "json").stdout
        assert [n["metadata"]["name"] for n in json.loads(offline)["items"]] == [
            "node-0000", "node-0001"]

        # The operator's purge, with the service's settings, reaches the running hub at
        # [::1]; kubectl's copy is gone then.
        conf = tmp_path / "yurthub.conf"
        conf.write_text(f"[yurthub]\nbind_address = ::1\nserve_port = {hub.serve_port}\n"
                        f"disk_cache_path = {hub.cache_dir}\n")
        purge = subprocess.run(
            [sys.executable, "-m", "yurthub", "cache", "--config", str(conf), "purge",
             "kubectl", "--yes"],
            capture_output=True, text=True, timeout=120, cwd=os.getcwd())
        assert purge.returncode == 0, purge.stderr
        after = kubectl("get", "nodes", "-o", "json", check=False)
        assert after.returncode != 0 and "ServiceUnavailable" in after.stderr, after
    finally:
        sb.stop()



def test_an_ipv6_cluster_finds_the_hub_at_its_ipv6_serving_address(
        hub_factory: Callable[..., Hub]) -> None:
    # An IPv6 cluster (its apiserver at ::1): the kubernetes Service and EndpointSlice are
    # IPv6 ones, and the hub's serving address an IPv6 one.  kube-proxy's slice, kubelet's
    # Service and a pod's KUBERNETES_SERVICE_HOST all lead to it.  The host is the bare
    # address: client-go's InClusterConfig joins it with the port (net.JoinHostPort).
    serving = "fd00:2::1"
    sb = Sandbox(host="::1", nodes=1, pods_per_node=1, control_port=0).start()
    try:
        hub = hub_factory(sb.url, host="::1", extra=["--hub-serving-address", serving])
        path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        slices = json.loads(hub.get(path, ua=KUBE_PROXY)[2])["items"]
        k = next(s for s in slices if s["metadata"]["name"] == "kubernetes")
        assert k["addressType"] == "IPv6"
        assert [a for ep in k["endpoints"] for a in ep["addresses"]] == [serving]
        assert [(p["name"], p["port"]) for p in k["ports"]] == [("https", 10268)]

        services = json.loads(hub.get("/api/v1/services", ua=KUBELET)[2])["items"]
        spec = next(s["spec"] for s in services if s["metadata"]["name"] == "kubernetes")
        assert (spec["clusterIP"], spec["clusterIPs"]) == (serving, [serving])

        sb.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "agent", "namespace": "kube-system"}, "spec": {
            "nodeName": "node-0000", "containers": [{"name": "agent", "image": "agent", "env": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "fd00:10:96::1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": "443"}]}]}})
        pods = json.loads(hub.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000",
                                  ua=KUBELET)[2])["items"]
        agent = next(p for p in pods if p["metadata"]["name"] == "agent")
        assert agent["spec"]["containers"][0]["env"] == [
            {"name": "KUBERNETES_SERVICE_HOST", "value": serving},
            {"name": "KUBERNETES_SERVICE_PORT", "value": "10268"}]
    finally:
        sb.stop()
