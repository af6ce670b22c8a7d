"""The sandbox's TokenRequest API (``serviceaccounts/<name>/token``), as kube-apiserver's."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubesandbox import protobuf
from kubesandbox.satokens import ISSUER
from kubesandbox.server import Sandbox
from tests.integration.sandbox.test_sandbox_identity import call

TOKEN_PATH = "/api/v1/namespaces/default/serviceaccounts/{}/token"


@pytest.fixture
def cluster(tmp_path: Path):
    sb = Sandbox(self_signed_dir=str(tmp_path / "pki"), nodes=1, pods_per_node=1).start()
    sb.put({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "mine", "namespace": "default"},
            "spec": {"nodeName": "sandbox-node", "serviceAccountName": "default",
                     "containers": [{"name": "c", "image": "i"}]}})
    yield sb
    sb.stop()


def request(pod: str = "mine", uid: str = "", seconds: int = 3607,
            audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"expirationSeconds": seconds,
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                               "name": pod}}
    if uid:
        spec["boundObjectRef"]["uid"] = uid
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"creationTimestamp": None}, "spec": spec}


def uid_of(sb: Sandbox, name: str = "mine") -> str:
    return str(sb.get("pods", name, "default")["metadata"]["uid"])


def claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_kubelet_gets_a_pod_bound_token_that_the_apiserver_accepts(cluster):
    before = int(time.time())
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="client",
                       body=request())
    assert status == 201, out
    assert out["kind"] == "TokenRequest" and out["spec"]["expirationSeconds"] == 3607
    c = claims(out["status"]["token"])
    assert c["sub"] == "system:serviceaccount:default:default" and c["aud"] == [ISSUER]
    assert c["kubernetes.io"]["pod"] == {"name": "mine", "uid": uid_of(cluster)}
    # kubelet's 3607 s is extended in the token (a year) but reported as asked
    assert c["exp"] - c["iat"] == 365 * 24 * 3600
    assert c["kubernetes.io"]["warnafter"] == c["iat"] + 3607
    stamp = time.mktime(time.strptime(out["status"]["expirationTimestamp"],
                                      "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + 3607 <= stamp <= time.time() + 3607
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods",
                token=out["status"]["token"])[0] == 200


def test_audiences_and_lifetimes_are_kept_and_checked(cluster):
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="admin",
                       body=request(seconds=600, audiences=["vault"]))
    assert status == 201, out
    c = claims(out["status"]["token"])
    assert c["aud"] == ["vault"] and c["exp"] - c["iat"] == 600
    # a token for another audience is no token for the apiserver
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods",
                token=out["status"]["token"])[0] == 401
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="admin",
                       body=request(seconds=599))
    assert status == 422 and out["reason"] == "Invalid"
    assert "spec.expirationSeconds" in out["message"]
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="admin",
                       body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {}})
    assert status == 201 and claims(out["status"]["token"])["exp"] - \
        claims(out["status"]["token"])["iat"] == 3600


def test_missing_objects_and_mismatches(cluster):
    status, out = call(cluster, "POST", TOKEN_PATH.format("nobody"), cert="admin",
                       body=request())
    assert status == 404 and out["message"] == 'serviceaccounts "nobody" not found'
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="admin",
                       body=request(pod="gone"))
    assert status == 404 and out["message"] == 'pods "gone" not found'
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="admin",
                       body=request(uid="uid-old"))
    assert status == 409 and "does not match the UID in record" in out["message"]
    assert call(cluster, "GET", TOKEN_PATH.format("default"), cert="admin")[0] == 405


def test_a_node_gets_tokens_only_for_its_own_pods(cluster):
    other = cluster.list_objects("pods", "default")
    other = next(p for p in other if p["spec"]["nodeName"] != "sandbox-node")
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="client",
                       body=request(other["metadata"]["name"], other["metadata"]["uid"]))
    assert status == 403 and "no relationship found between node 'sandbox-node'" \
        in out["message"]
    unbound = request()
    del unbound["spec"]["boundObjectRef"]
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="client",
                       body=unbound)
    assert status == 403 and "not bound to a pod" in out["message"]
    sa_token = cluster.service_account_token()
    assert call(cluster, "POST", TOKEN_PATH.format("default"), token=sa_token,
                body=request())[0] == 403


def test_a_pod_bound_token_dies_with_its_pod(cluster):
    status, out = call(cluster, "POST", TOKEN_PATH.format("default"), cert="client",
                       body=request())
    assert status == 201, out
    token = out["status"]["token"]
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods", token=token)[0] == 200
    cluster.delete("pods", "mine", "default")
    assert call(cluster, "GET", "/api/v1/namespaces/default/pods", token=token)[0] == 401


def test_kubelets_protobuf_token_request(cluster):
    """kubelet sends its TokenRequest as protobuf (client-go's default for it)."""
    body = protobuf.encode({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "metadata": {}, "spec": {**request()["spec"], "audiences": ["a"]}})
    ctx = ssl.create_default_context(cafile=cluster.tls.ca_cert)
    ctx.load_cert_chain(cluster.tls.client_cert, cluster.tls.client_key)
    req = urllib.request.Request(cluster.url + TOKEN_PATH.format("default"), data=body,
                                 method="POST",
                                 headers={"Content-Type": protobuf.PROTOBUF,
                                          "Accept": f"{protobuf.PROTOBUF}, */*"})
    with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
        assert r.status == 201
        out = json.loads(r.read())
    c = claims(out["status"]["token"])
    assert c["aud"] == ["a"] and c["kubernetes.io"]["pod"]["uid"] == uid_of(cluster)
    assert out["spec"]["expirationSeconds"] == 3607
