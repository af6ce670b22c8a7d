"""The sandbox as a node's identity sees it: cluster-info, bootstrap tokens, CSRs, SA tokens."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubesandbox import auth, pki
from kubesandbox.server import Sandbox
from tests.fixtures.kubectl import KUBECTL
from tests.fixtures.waiting import wait_for
from yurthub.kube import bootstraptoken as bt

TOKEN = "abcdef.0123456789abcdef"
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


@pytest.fixture
def cluster(tmp_path: Path):
    sb = Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=1, cert_lifetime=120).start()
    yield sb
    sb.stop()


def call(sb: Sandbox, method: str, path: str, *, token: str = "", cert: str = "",
         body: Any = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=sb.tls.ca_cert)
    if cert:
        ctx.load_cert_chain(getattr(sb.tls, f"{cert}_cert"), getattr(sb.tls, f"{cert}_key"))
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sb.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def csr_object(cn: str, orgs: list[str], signer: str, usages: list[str],
               dns: list[str] = ()) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                     "usages": usages}}


HUB_CLIENT = (["openyurt:yurthub", "system:nodes"], "kubernetes.io/kube-apiserver-client",
              ["digital signature", "key encipherment", "client auth"])


def issued(sb: Sandbox, name: str) -> x509.Certificate:
    obj = wait_for(lambda: (sb.get("certificatesigningrequests.certificates.k8s.io", name)
                            or {}).get("status", {}).get("certificate"), 10, "certificate")
    return x509.load_pem_x509_certificate(base64.b64decode(obj))


def test_cluster_info_is_public_and_signed_for_each_token(cluster):
    status, cm = call(cluster, "GET", bt.CLUSTER_INFO_PATH)
    assert status == 200
    kubeconfig = cm["data"]["kubeconfig"]
    ca = base64.b64decode(yaml.safe_load(kubeconfig)["clusters"][0]["cluster"][
        "certificate-authority-data"])
    assert ca == Path(cluster.tls.ca_cert).read_bytes()
    bt.verify_detached(cm["data"]["jws-kubeconfig-abcdef"], kubeconfig, "abcdef",
                       "0123456789abcdef")
    # anonymous reaches nothing else; a new token is signed for, a removed one unsigned
    assert call(cluster, "GET", "/api/v1/namespaces/kube-public/configmaps")[0] == 401
    cluster.add_bootstrap_token("zyxwvu.fedcba9876543210")
    wait_for(lambda: "jws-kubeconfig-zyxwvu" in call(cluster, "GET", bt.CLUSTER_INFO_PATH)[1]
             ["data"], 10, "a signature for the new token")
    cluster.remove_bootstrap_token("zyxwvu")
    wait_for(lambda: "jws-kubeconfig-zyxwvu" not in call(
        cluster, "GET", bt.CLUSTER_INFO_PATH)[1]["data"], 10, "the signature to go")


def test_a_bootstrap_token_may_ask_for_a_certificate_and_nothing_else(cluster):
    assert call(cluster, "GET", "/api/v1/pods", token=TOKEN)[0] == 403
    status, body = call(cluster, "GET", "/api/v1/namespaces/kube-system/secrets", token=TOKEN)
    assert status == 403 and 'User "system:bootstrap:abcdef" cannot list resource ' \
        '"secrets"' in body["message"]
    assert call(cluster, "GET", "/api/v1/pods", token="abcdef.ffffffffffffffff")[0] == 401
    status, csr = call(cluster, "POST", CSRS, token=TOKEN,
                       body=csr_object("system:node:node-0000", *HUB_CLIENT))
    assert status == 201, csr
    assert csr["spec"]["username"] == "system:bootstrap:abcdef"
    assert "system:bootstrappers" in csr["spec"]["groups"]
    cert = issued(cluster, csr["metadata"]["name"])  # auto-approved as yurt-manager does
    life = pki.not_after(cert) - cert.not_valid_before.replace(tzinfo=datetime.UTC) \
        if not hasattr(cert, "not_valid_before_utc") else \
        pki.not_after(cert) - cert.not_valid_before_utc
    assert 120 <= life.total_seconds() <= 140  # --cert-lifetime, backdated by a tenth
    conditions = cluster.get("certificatesigningrequests.certificates.k8s.io",
                             csr["metadata"]["name"])["status"]["conditions"]
    assert [c["reason"] for c in conditions] == ["AutoApproved"]


def test_an_expired_token_is_refused(cluster):
    cluster.add_bootstrap_token("qwerty.0123456789qwerty", expiration="2020-01-01T00:00:00Z")
    assert call(cluster, "POST", CSRS, token="qwerty.0123456789qwerty",
                body=csr_object("system:node:x", *HUB_CLIENT))[0] == 401
    assert "jws-kubeconfig-qwerty" not in call(cluster, "GET", bt.CLUSTER_INFO_PATH)[1]["data"]


def test_approval_by_hand_with_kubectl_and_what_nodes_may_not_do(cluster, tmp_path):
    cluster.csr_auto_approve = False
    status, csr = call(cluster, "POST", CSRS, cert="client",
                       body=csr_object("system:node:sandbox-node", *HUB_CLIENT))
    assert status == 201 and csr["spec"]["username"] == "system:node:sandbox-node"
    name = csr["metadata"]["name"]
    cluster.controllers.sync()
    assert not cluster.get("certificatesigningrequests.certificates.k8s.io", name).get("status")
    # a node may not approve (its own or any) CSR
    node = cluster.write_kubeconfig(tmp_path / "node.kubeconfig")
    r = subprocess.run([KUBECTL, "--kubeconfig", node, "certificate", "approve", name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "forbidden" in r.stderr.lower()
    admin = cluster.write_kubeconfig(tmp_path / "admin.kubeconfig", admin=True)
    r = subprocess.run([KUBECTL, "--kubeconfig", admin, "certificate", "approve", name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cert = issued(cluster, name)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "system:node:sandbox-node"
    assert call(cluster, "GET", "/api/v1/nodes", cert="client")[0] == 200


def test_invalid_requests_are_refused_and_unknown_ones_left_pending(cluster):
    bad = csr_object("system:node:x", *HUB_CLIENT)
    bad["spec"]["request"] = base64.b64encode(b"not a request").decode()
    status, body = call(cluster, "POST", CSRS, token=TOKEN, body=bad)
    assert status == 422 and "spec.request" in body["message"]
    status, csr = call(cluster, "POST", CSRS, token=TOKEN,
                       body=csr_object("someone", ["elsewhere"], *HUB_CLIENT[1:]))
    assert status == 201
    cluster.controllers.sync()
    got = cluster.get("certificatesigningrequests.certificates.k8s.io", csr["metadata"]["name"])
    assert not (got.get("status") or {}).get("conditions")
    serving = csr_object("system:node:node-0000", ["system:nodes"],
                         "kubernetes.io/kubelet-serving",
                         ["digital signature", "key encipherment", "server auth"],
                         dns=["kubernetes.default.svc"])
    status, csr = call(cluster, "POST", CSRS, token=TOKEN, body=serving)
    cert = issued(cluster, csr["metadata"]["name"])
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName) == ["kubernetes.default.svc"]


def test_service_account_tokens(cluster, tmp_path):
    token = cluster.service_account_token("default", "default")
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods", token=token)[0] == 200
    assert call(cluster, "GET", "/api/v1/namespaces/default/secrets", token=token)[0] == 403
    assert call(cluster, "POST", "/api/v1/namespaces/default/configmaps", token=token,
                body={"metadata": {"name": "x"}})[0] == 403
    config = tmp_path / "sa.kubeconfig"
    cluster.write_kubeconfig(config, token=token, client_cert=False)
    r = subprocess.run([KUBECTL, "--kubeconfig", str(config), "get", "pods", "-o", "name"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("pod/"), r.stderr
    cluster.delete("serviceaccounts", "default", "default")
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods", token=token)[0] == 401
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods", token=token[:-2])[0] == 401


def test_an_expired_client_certificate_is_refused(cluster, tmp_path):
    cert, key = cluster.ca.issue_pair(pki.name("system:node:old", ["system:nodes"]),
                                      usages=["digital signature", "client auth"], lifetime=1)
    (tmp_path / "old.crt").write_bytes(pki.cert_pem(cert))
    (tmp_path / "old.key").write_bytes(pki.key_pem(key))
    wait_for(lambda: pki.not_after(cert).timestamp() < time.time(), 5, "expiry")
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    ctx.load_cert_chain(str(tmp_path / "old.crt"), str(tmp_path / "old.key"))
    # Refused as kube-apiserver refuses it: the handshake succeeds (it asks for a certificate
    # without judging it there) and the authenticator answers 401, so a client tells an
    # expired credential from an unreachable cloud.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(cluster.url + "/api/v1/nodes", context=ctx, timeout=10)
    assert e.value.code == 401
    assert auth._certificate_user({"subject": ((("commonName", "system:node:old"),),),
                                   "notBefore": "Jan  1 00:00:00 2020 GMT",
                                   "notAfter": "Jan  1 00:00:00 2021 GMT"}) is None


def test_the_command_line_prints_the_ca_hash_and_refuses_a_bad_token(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yurthub", "sandbox", "--bootstrap-token", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a bootstrap token" in r.stderr
    proc = subprocess.Popen([sys.executable, "-m", "kubesandbox", "--port", "0",
                             "--control-port", "0", "--self-signed-dir", str(tmp_path / "pki"),
                             "--bootstrap-token", TOKEN, "--csr-auto-approve", "false",
                             "--cert-lifetime", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stdout.close()
    ca = x509.load_pem_x509_certificate((tmp_path / "pki" / "ca.crt").read_bytes())
    spki = ca.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert lines[2].strip() == f"ca hash: {bt.ca_pin(spki)}"
