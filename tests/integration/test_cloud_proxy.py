"""An edge node that reaches the cloud only through its site's HTTP proxy.

client-go and YurtHub take ``HTTPS_PROXY``/``NO_PROXY`` from the environment (a systemd
drop-in sets them for the service); the hub ignored them and went straight for the cloud.
Through the proxy, TLS is still the hub's with the cloud (CONNECT, then TLS end to end):
a certificate that does not name the server is refused as it is without a proxy.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

from kubesandbox.server import Sandbox
from tests.fixtures.connectproxy import ConnectProxy, pki_naming
from tests.fixtures.hub import Hub
from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for
from tests.integration.identity.conftest import TOKEN, token_args

CLOUD = "2001:db8::10"  # documentation prefix: only the proxy leads there


def test_the_cloud_is_reached_through_https_proxy_with_tls_verified(
        tmp_path: Path, hub_factory: Callable[..., Hub]) -> None:
    pki_naming(tmp_path / "pki", CLOUD)
    sb = Sandbox(host="::1", nodes=1, pods_per_node=1, self_signed_dir=str(tmp_path / "pki"),
                 control_port=0).start()
    proxy = ConnectProxy(("::1", sb.port))
    kubeconfig = sb.write_kubeconfig(tmp_path / "hub.kubeconfig", token="")
    try:
        env = {"HTTPS_PROXY": f"http://edge:p%40ss@127.0.0.1:{proxy.port}",
               "NO_PROXY": "localhost,10.0.0.0/8,.cluster.local"}
        hub = hub_factory(f"https://[{CLOUD}]:{sb.port}", env=env,
                          extra=["--kubeconfig", kubeconfig])
        status, _, body = hub.get("/api/v1/nodes")
        assert status == 200, body
        assert [n["metadata"]["name"] for n in json.loads(body)["items"]] == ["node-0000"]
        # The proxy was asked for the cloud by its address, bracketed as Go writes it, with
        # the user info of HTTPS_PROXY as Basic credentials.
        basic = "Basic " + base64.b64encode(b"edge:p@ss").decode()
        assert (f"[{CLOUD}]:{sb.port}", basic) in proxy.connects
        # An upgraded session (kubectl exec) takes a connection of its own: the same tunnel.
        proxy.connects.clear()
        pod = next(p["metadata"]["name"] for p in sb.list_objects("pods")
                   if p["metadata"]["namespace"] == "default")
        r = Kubectl(tmp_path, hub.url)("exec", pod, "-n", "default", "--", "echo", "hi")
        assert r.stdout == "hi\n", r.stderr
        assert (f"[{CLOUD}]:{sb.port}", basic) in proxy.connects
        log = hub.log()
        assert f"through http://(user info not shown)@127.0.0.1:{proxy.port} (HTTPS_PROXY)" in log
        assert "p%40ss" not in log and "p@ss" not in log

        # The proxy leads to a server whose certificate does not name this address: no
        # answer is taken from it (TLS is the hub's with the cloud, not the proxy's).
        other = "2001:db8::11"
        wrong = hub_factory(f"https://[{other}]:{sb.port}", env=env, wait=False,
                            cache_dir=tmp_path / "cache-other",
                            extra=["--kubeconfig", kubeconfig])
        wait_for(lambda: any(t == f"[{other}]:{sb.port}" for t, _ in proxy.connects), 20,
                 what="the second hub's CONNECT")
        wait_for(lambda: "certificate" in wrong.log().lower(), 20,
                 what=f"a certificate refusal ({wrong.log()[-2000:]})")
        status, _, body = wrong.get("/api/v1/nodes")
        assert status == 503, body
    finally:
        proxy.close()
        sb.stop()


def test_a_node_joins_with_a_bootstrap_token_through_the_proxy(
        tmp_path: Path, hub_factory: Callable[..., Hub]) -> None:
    # Discovery (cluster-info), the CSR and its certificate: every request of the join goes
    # through the proxy too, not only the proxied traffic after it.
    pki_naming(tmp_path / "pki", CLOUD)
    sb = Sandbox(host="::1", nodes=1, pods_per_node=1, self_signed_dir=str(tmp_path / "pki"),
                 bootstrap_tokens=(TOKEN,), control_port=0).start()
    proxy = ConnectProxy(("::1", sb.port))
    try:
        hub = hub_factory(f"https://[{CLOUD}]:{sb.port}",
                          env={"HTTPS_PROXY": proxy.url},
                          extra=token_args(sb, tmp_path))
        assert [c["spec"]["username"] for c in sb.csrs()] == ["system:bootstrap:abcdef"]
        status, _, body = hub.get("/api/v1/nodes")
        assert status == 200, body
        assert {t for t, _ in proxy.connects} == {f"[{CLOUD}]:{sb.port}"}
    finally:
        proxy.close()
        sb.stop()
