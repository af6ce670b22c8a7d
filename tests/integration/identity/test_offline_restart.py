"""A hub that has its certificates restarts without the cloud and serves from its cache."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


def _names(body: bytes) -> list[str]:
    return sorted(item["metadata"]["name"] for item in json.loads(body)["items"])


def _https_get(hub, cluster, path: str, token: str) -> tuple[int, bytes, dict]:
    """GET over 10268, verifying the serving certificate for the name pods use."""
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    with socket.create_connection(("127.0.0.1", hub.secure_port), timeout=20) as raw, \
            ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: kubernetes.default.svc\r\n"
                    f"User-Agent: {KUBELET}\r\nAuthorization: Bearer {token}\r\n"
                    "Accept: application/json\r\n"
                    "Connection: close\r\n\r\n".encode())
        r = http.client.HTTPResponse(tls)
        r.begin()
        return r.status, r.read(), tls.getpeercert()


def test_a_restart_without_the_cloud_keeps_the_identity_and_serves_the_cache(cluster,
                                                                              joining_hub):
    hub = joining_hub(secure=True)
    pki = hub.root_dir / "pki"
    wait_for(lambda: (pki / "yurthub-server-current.pem").exists(), 20, "serving certificate")
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 200
    online = _names(body)
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet") >= len(online),
             20, "the node list in the cache")
    client_pem = (pki / "yurthub-current.pem").read_bytes()
    serving_pem = (pki / "yurthub-server-current.pem").read_bytes()
    csrs = len(cluster.csrs())
    # a pod reads the nodes over 10268 with its token: offline the hub answers that token
    # only what the cloud was seen to allow it (and remembers it across the restart)
    token = cluster.service_account_token("default", "default")
    status, body, _ = _https_get(hub, cluster, "/api/v1/nodes", token)
    assert status == 200 and _names(body) == online
    assert hub.stop() == 0

    cluster.offline()
    hub.start()  # waits for readyz 200: no bootstrap, no CSR, no cloud needed
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 200 and _names(body) == online
    status, body, cert = _https_get(hub, cluster, "/api/v1/nodes", token)
    assert status == 200, body
    assert _names(body) == online
    assert dict(x[0] for x in cert["subject"])["commonName"] == "system:node:node-0000"
    # the same certificates, nothing asked of the cloud
    assert (pki / "yurthub-current.pem").read_bytes() == client_pem
    assert (pki / "yurthub-server-current.pem").read_bytes() == serving_pem
    cluster.online()
    assert len(cluster.csrs()) == csrs
