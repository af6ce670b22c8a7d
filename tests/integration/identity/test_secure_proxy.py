"""Port 10268: the proxy over HTTPS for pods, with the serving certificate from the cluster."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.config.incluster_config import InClusterConfigLoader

from kubesandbox import pki
from tests.fixtures.kubectl import KUBECTL
from tests.fixtures.waiting import wait_for
from yurthub.identity import certs

AGENTS = ["--cache-agents", "kubectl,openapi-generator"]


def _context(cluster, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    ctx.check_hostname = False  # the tests below check names where they mean to
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def _get(hub, path: str, ctx: ssl.SSLContext, token: str = "") -> tuple[int, dict]:
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", hub.secure_port, context=ctx, timeout=20)
    try:
        headers = {"User-Agent": "kubectl/v1.32.4", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture
def secure_hub(cluster, joining_hub):
    return joining_hub(secure=True, extra=AGENTS)


def test_the_serving_certificate_verifies_for_the_kubernetes_service_names(cluster,
                                                                          secure_hub):
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    for name in ("kubernetes.default.svc", "kubernetes", "kubernetes.default.svc.cluster.local"):
        with socket.create_connection(("127.0.0.1", secure_hub.secure_port), timeout=10) as s, \
                ctx.wrap_socket(s, server_hostname=name) as tls:
            cert = tls.getpeercert()
    sans = {v for _, v in cert["subjectAltName"]}
    assert {"10.96.0.1", "127.0.0.1", "kubernetes.default"} <= sans
    assert dict(x[0] for x in cert["subject"])["commonName"] == "system:node:node-0000"
    csr = [c for c in cluster.csrs() if c["spec"]["signerName"] ==
           "kubernetes.io/kubelet-serving"]
    assert len(csr) == 1 and csr[0]["spec"]["username"] == "system:node:node-0000"
    mode = (secure_hub.root_dir / "pki" / "yurthub-server-current.pem").stat().st_mode & 0o777
    assert mode == 0o600


def test_a_new_hub_serving_address_reaches_the_certificate_without_waiting(cluster,
                                                                          secure_hub):
    # The serving certificate lives for months; a restart with a new hub_serving_address
    # (or node_ip) kept the old one, without the address the pods now dial, until then.
    pair = secure_hub.root_dir / "pki" / "yurthub-server-current.pem"
    first = certs.load_pair(pair.read_bytes())[1]
    assert "127.0.0.2" not in first.ip_sans
    secure_hub.stop()
    secure_hub.extra += ["--hub-serving-address", "127.0.0.2"]
    secure_hub.start()

    def renewed():
        info = certs.load_pair(pair.read_bytes())[1]
        return info if info.serial != first.serial else None
    info = wait_for(renewed, 30, "a new serving certificate")
    assert "127.0.0.2" in info.ip_sans and "10.96.0.1" in info.ip_sans
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)  # checks the IP SAN
    # the file is written a moment before the listener takes it
    wait_for(lambda: _serial_at(secure_hub, ctx) == info.serial, 30, "10268 to present it")
    secure_hub.stop()
    secure_hub.start()  # and a certificate that matches is kept
    assert certs.load_pair(pair.read_bytes())[1].serial == info.serial
    assert "does not match the settings" not in secure_hub.log().split("Booting")[-1]


def test_a_node_that_got_another_address_gets_it_in_the_serving_certificate(
        cluster, joining_hub):
    # node_ip unset: the node's address is the one the kernel uses to reach the cloud.  A
    # restart after the node got another one (DHCP) kept the old certificate, without the
    # address pods now dial, until its renewal months later (YurtHub's certificate template
    # takes the node IP of each start).  Here the node "had" 127.0.0.3 and now has 127.0.0.1;
    # 10268 listens on every address, so pods may dial the node's.
    wildcard = ["--hub-serving-address", "127.0.0.2", "--bind-address", "0.0.0.0",
                "--allow-non-loopback-bind", "true"]
    hub = joining_hub(secure=True, extra=[*wildcard, "--node-ip", "127.0.0.3"])
    pair = hub.root_dir / "pki" / "yurthub-server-current.pem"
    first = certs.load_pair(wait_for(lambda: pair.exists() and pair.read_bytes(), 30,
                                     "the serving certificate"))[1]
    assert "127.0.0.3" in first.ip_sans and "127.0.0.1" not in first.ip_sans
    hub.stop()
    hub.extra = hub.extra[:-2]  # without --node-ip
    hub.start()

    def renewed():
        info = certs.load_pair(pair.read_bytes())[1]
        return info if info.serial != first.serial else None
    info = wait_for(renewed, 30, f"a new serving certificate (log: {hub.log()[-1500:]})")
    assert "127.0.0.1" in info.ip_sans and "127.0.0.3" not in info.ip_sans
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)  # checks the IP SAN
    wait_for(lambda: _serial_at(hub, ctx) == info.serial, 30, "10268 to present it")
    hub.stop()
    hub.start()  # and one that matches is kept
    assert certs.load_pair(pair.read_bytes())[1].serial == info.serial


def _serial_at(hub, ctx: ssl.SSLContext) -> str:
    """The serial of the certificate 10268 presents at 127.0.0.2 ("" while it is one
    without that address)."""
    try:
        with socket.create_connection(("127.0.0.2", hub.secure_port), timeout=10) as s, \
                ctx.wrap_socket(s, server_hostname="127.0.0.2") as tls:
            return str(tls.getpeercert()["serialNumber"]).lower().lstrip("0")
    except ssl.SSLCertVerificationError:
        return ""


def test_kubectl_with_a_service_account_token_online_and_offline(cluster, secure_hub,
                                                                 tmp_path):
    token = cluster.service_account_token("default", "default")
    kubeconfig = tmp_path / "pod.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "hub", "cluster": {
            "server": secure_hub.secure_url, "certificate-authority": cluster.tls.ca_cert,
            "tls-server-name": "kubernetes.default.svc"}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "hub", "user": "sa",
                                                 "namespace": "default"}}]}))

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir",
                               str(tmp_path / "kc"), "--request-timeout", "20s", *args],
                              capture_output=True, text=True, timeout=60)

    cluster.clear_requests()
    online = kubectl("get", "pods", "-o", "name")
    assert online.returncode == 0 and online.stdout.split(), online.stderr
    users = {r.user for r in wait_for(lambda: cluster.requests(
        "/api/v1/namespaces/default/pods"), 10, "the request record")}
    assert users == {"system:serviceaccount:default:default"}  # the token went upstream
    assert token not in secure_hub.log()
    # a watch through 10268 sees a change
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir",
                             str(tmp_path / "kc"), "get", "configmaps", "-w", "-o", "name"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: cluster.open_watches >= 1, 20, "kubectl's watch upstream")
        cluster.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "seen-by-a-pod", "namespace": "default"}})
        lines = []
        while "configmap/seen-by-a-pod" not in lines:
            lines.append(proc.stdout.readline().strip())
            assert lines[-1] or proc.poll() is None, proc.stderr.read()
    finally:
        proc.terminate()
        proc.wait(10)
    cluster.offline()
    offline = kubectl("get", "pods", "-o", "name")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.split() == online.stdout.split()


def test_a_token_the_cloud_stopped_accepting_is_refused_offline(cluster, secure_hub):
    # A pod's token was accepted, then its ServiceAccount was deleted: the cloud says 401
    # to it, and so must the hub offline; it served the cached objects to it until the
    # token's expiry (a year for kube-apiserver's extended pod tokens).
    ctx = _context(cluster)
    token = cluster.service_account_token("default", "default")
    path = "/api/v1/namespaces/default/configmaps"
    status, body = _get(secure_hub, path, ctx, token)
    assert status == 200 and body["items"]
    wait_for(lambda: secure_hub.metric("yurthub_cache_objects", component="kubectl@pod")
             >= len(body["items"]), 20, "the list in the cache")
    cluster.delete("serviceaccounts", "default", "default")
    status, body = _get(secure_hub, path, ctx, token)
    assert (status, body["reason"]) == (401, "Unauthorized")  # the cloud's, passed through
    cluster.offline()
    for asked in (path, path + "/kube-root-ca.crt"):
        status, body = _get(secure_hub, asked, ctx, token)
        assert (status, body.get("reason")) == (401, "Unauthorized"), body


def test_a_token_the_cloud_stopped_accepting_gets_no_shared_lists(cluster, joining_hub):
    # Services and EndpointSlices are answered from one shared list+watch, without the
    # cloud: a pod's token the cloud refused since (its ServiceAccount deleted) was still
    # served them online, until the token's expiry.
    hub = joining_hub(secure=True, extra=["--token-recheck-interval", "0"])
    ctx = _context(cluster)
    token = cluster.service_account_token("default", "default")
    shared = ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices",
              "/api/v1/namespaces/default/services")
    for path in shared:
        status, body = _get(hub, path, ctx, token)
        assert status == 200 and body["items"], (path, body)
    cluster.delete("serviceaccounts", "default", "default")
    for path in shared:
        status, body = _get(hub, path, ctx, token)
        assert (status, body.get("reason")) == (401, "Unauthorized"), (path, body)


def test_the_kubernetes_clients_in_cluster_configuration(cluster, secure_hub, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(cluster.service_account_token("default", "default"))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(Path(cluster.tls.ca_cert).read_bytes())
    cfg = client.Configuration()
    InClusterConfigLoader(token_filename=str(token_file), cert_filename=str(ca_file),
                          environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                   "KUBERNETES_SERVICE_PORT": str(secure_hub.secure_port)}
                          ).load_and_set(cfg)
    assert cfg.host == secure_hub.secure_url
    with client.ApiClient(cfg) as api:
        v1 = client.CoreV1Api(api)
        listed = v1.list_namespaced_config_map("default")
        names = {c.metadata.name for c in listed.items}
        w = watch.Watch()
        got = []
        cluster.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "from-the-cloud", "namespace": "default"}})
        for event in w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=5,
                              resource_version=listed.metadata.resource_version):
            got.append(event["object"].metadata.name)
            if "from-the-cloud" in got:
                w.stop()
        assert "from-the-cloud" in got
        v1.list_namespaced_config_map("default")  # the cache takes this list ...
        wait_for(lambda: secure_hub.metric("yurthub_cache_objects",  # (a pod's own cache)
                                           component="openapi-generator@pod") >= len(names) + 1,
                 20, "the list in the cache")  # ... a moment after it was answered
        cluster.offline()
        offline = v1.list_namespaced_config_map("default")
        assert {c.metadata.name for c in offline.items} == names | {"from-the-cloud"}
        ended = list(watch.Watch().stream(v1.list_namespaced_config_map, "default",
                                          timeout_seconds=2,
                                          resource_version=offline.metadata.resource_version))
        assert all(e["type"] in ("BOOKMARK", "ADDED", "MODIFIED") for e in ended)


def test_who_a_request_on_10268_acts_as(cluster, secure_hub, tmp_path):
    # no credentials: a pod may not use the hub's identity (even from the node's own
    # loopback, where the tests connect from: on 10268 the socket's owner does not count)
    cluster.clear_requests()
    status, body = _get(secure_hub, "/api/v1/nodes", _context(cluster))
    assert status == 403 and "may not use the hub's credentials" in body["message"], body
    # this node's own client certificate (kubelet's) is the hub's principal: allowed
    mine = []
    for who, stem in (("system:node:node-0000", "mine"), ("system:node:other", "other")):
        cert, key = cluster.ca.issue_pair(pki.name(who, ["system:nodes"]), usages=[
            "digital signature", "key encipherment", "client auth"], lifetime=600)
        (tmp_path / f"{stem}.crt").write_bytes(pki.cert_pem(cert))
        (tmp_path / f"{stem}.key").write_bytes(pki.key_pem(key))
        mine.append((tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"))
    status, body = _get(secure_hub, "/api/v1/nodes", _context(cluster, mine[0]))
    assert status == 200 and body["items"]
    # another node's certificate is not lent the hub's identity
    status, _ = _get(secure_hub, "/api/v1/nodes", _context(cluster, mine[1]))
    assert status == 403
    assert not cluster.requests("/api/v1/nodes") or {
        r.user for r in cluster.requests("/api/v1/nodes")} == {"system:node:node-0000"}
    # plain HTTP on 10268 is served nothing, only told (as Go's servers tell it) to use
    # TLS; 10261 stays plain HTTP
    with socket.create_connection(("127.0.0.1", secure_hub.secure_port), timeout=10) as s:
        s.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"items" not in answer
        assert b"Client sent an HTTP request to an HTTPS server." in answer
    assert secure_hub.get("/api/v1/nodes")[0] == 200


def _as_pod(hub, path: str, token: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    """A pod's GET on 10268 with its own token, saying it is kubelet."""
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", hub.secure_port, context=ctx, timeout=20)
    try:
        conn.request("GET", path, headers={"User-Agent": "kubelet/v1.32.4",
                                           "Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_offline_a_pod_reads_none_of_kubelets_secrets_by_any_path(cluster, secure_hub):
    # On 10268 a pod has no UID: saying kubelet/..., it reads kubelet's cache, and only the
    # token memory decides.  Its ServiceAccount may read pods but no Secret (the sandbox's
    # authorizer, as RBAC's defaults); kubelet, the node, reads the pod's Secret.
    cluster.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "db", "namespace": "default"},
                 "data": {"password": "aHVudGVyMg=="}})
    secret = "/api/v1/namespaces/default/secrets/db"
    assert secure_hub.get(secret)[0] == 200
    wait_for((secure_hub.cache_dir / "kubelet/secrets.v1.core/default/db").exists, 10,
             "the Secret in kubelet's cache")
    token = cluster.service_account_token("default", "default")
    ctx = _context(cluster)
    assert _as_pod(secure_hub, "/api/v1/namespaces/default/pods", token, ctx)[0] == 200
    assert _as_pod(secure_hub, secret, token, ctx)[0] == 403   # the cloud says no
    cluster.offline()
    wait_for(lambda: secure_hub.metric("node_yurthub_server_healthy_status") == 0, 20,
             "the hub to notice the cloud is gone")
    for path in (secret, secret + "/status"):
        status, body = _as_pod(secure_hub, path, token, ctx)
        assert status in (403, 503) and b"aHVudGVyMg" not in body, (path, status, body)
