"""kubelet's ServiceAccount tokens through a cloud outage (proxy/tokens.py), under gunicorn.

After a node reboot with the cloud away, a pod whose projected token kubelet cannot get
does not start: nearly every pod.  The hub keeps the cloud's answers and gives them back.
"""

from __future__ import annotations

import base64
import json
import stat
from typing import Any

from kubesandbox import protobuf
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
OPERATOR = "edge-operator/1.0"
PATH = "/api/v1/namespaces/default/serviceaccounts/default/token"


def token_request(pod: dict[str, Any]) -> bytes:
    return json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": None, "expirationSeconds": 3607,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                    "name": pod["metadata"]["name"],
                                    "uid": pod["metadata"]["uid"]}}}).encode()


def ask(hub, pod: dict[str, Any], ua: str = KUBELET,
        proto: bool = False) -> tuple[int, dict[str, str], Any]:
    """kubelet's request; ``proto``: as kubelet sends it (client-go's protobuf)."""
    body, media = token_request(pod), "application/json"
    if proto:
        obj = {**json.loads(body), "metadata": {}}
        obj["spec"].pop("audiences")
        body, media = protobuf.encode(obj), protobuf.PROTOBUF
    status, headers, answer = http(hub.url + PATH, method="POST", body=body,
                                   headers={"User-Agent": ua, "Content-Type": media,
                                            "Accept": f"{media}, */*"})
    return status, headers, json.loads(answer)


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def healthy(hub) -> float:
    return hub.metric("node_yurthub_server_healthy_status")


def test_kubelet_gets_its_tokens_offline(sandbox, hub_factory):
    hub = hub_factory(sandbox.url)
    pods = [p for p in sandbox.list_objects("pods", "default")
            if p["spec"]["nodeName"] == "node-0000"]
    mine, other = pods[0], pods[1]
    status, _, online = ask(hub, mine, proto=True)
    assert status == 201, online
    token = online["status"]["token"]
    assert claims(token)["kubernetes.io"]["pod"]["uid"] == mine["metadata"]["uid"]
    # kept in the cache root, readable by its owner only, and never in the log
    kept = hub.cache_dir / "_tokens"
    wait_for(kept.exists, 5, "the kept answer on disk")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert token not in hub.log() and token.split(".")[2] not in hub.log()

    sandbox.offline()
    wait_for(lambda: healthy(hub) == 0, 10, "the hub to notice the cloud is gone")
    status, headers, offline = ask(hub, mine)
    assert status == 201, offline
    assert offline["status"]["token"] == token
    assert offline["kind"] == "TokenRequest" and "cloud is unreachable" in headers["Warning"]
    assert ask(hub, mine, proto=True)[2]["status"]["token"] == token
    # another pod's token was never issued: a short-lived local one, marked as such
    status, headers, local = ask(hub, other)
    assert status == 201, local
    c = claims(local["status"]["token"])
    assert c["iss"] == "yurthub-offline" and c["exp"] - c["iat"] == 60
    assert c["sub"] == "system:serviceaccount:default:default"
    assert c["kubernetes.io"]["pod"]["uid"] == other["metadata"]["uid"]
    assert "no apiserver accepts" in headers["Warning"]
    # ... which the hub itself takes for proof of nothing
    status, _, _ = http(hub.url + "/api/v1/namespaces/default/pods",
                        headers={"User-Agent": KUBELET,
                                 "Authorization": f"Bearer {local['status']['token']}"})
    assert status == 401
    # another local user gets what other writes get offline
    status, _, refused = ask(hub, mine, ua=OPERATOR)
    assert status == 503 and "cloud is unreachable" in refused["message"]

    # a restarted hub, still offline, still has it
    hub.stop()
    hub.start()
    status, _, again = ask(hub, mine)
    assert status == 201 and again["status"]["token"] == token

    sandbox.online()
    wait_for(lambda: healthy(hub) == 1, 15, "the hub to see the cloud again")
    before = len(sandbox.requests("/serviceaccounts/default/token"))
    status, _, fresh = ask(hub, other)
    assert status == 201 and claims(fresh["status"]["token"])["iss"] != "yurthub-offline"
    # (the sandbox records a request once its answer is written: it may trail the client)
    def asked() -> int:
        return len(sandbox.requests("/serviceaccounts/default/token"))

    wait_for(lambda: asked() > before, 5, "the sandbox to record the request")
    assert asked() == before + 1


def test_a_token_kubelet_rotated_is_honoured_offline_as_the_one_it_replaced(sandbox,
                                                                              hub_factory):
    """kubelet rewrites a pod's projected token about hourly and the pod's client reads the
    file again within a minute.  A pod whose token was rotated through the hub shortly
    before the cloud went away presents, offline, a token the cloud issued to this node
    for the same pod, ServiceAccount and audiences as the one it had been reading with:
    it got 401 Unauthorized from the cache (the new token had not yet reached the cloud),
    so its informers failed for the whole outage."""
    hub = hub_factory(sandbox.url)
    mine = next(p for p in sandbox.list_objects("pods", "default")
                if p["spec"]["nodeName"] == "node-0000")
    old = ask(hub, mine)[2]["status"]["token"]
    path = "/api/v1/namespaces/kube-system/configmaps"
    agent = {"User-Agent": "coredns/v1.11.1"}
    status, _, _ = http(hub.url + path, headers={**agent, "Authorization": f"Bearer {old}"})
    assert status == 200
    status, _, rotated = ask(hub, mine)   # kubelet's refresh: a new token for the same pod
    assert status == 201
    new = rotated["status"]["token"]
    assert new != old

    sandbox.offline()
    wait_for(lambda: healthy(hub) == 0, 10, "the hub to notice the cloud is gone")
    for token in (old, new):
        status, headers, body = http(hub.url + path,
                                     headers={**agent, "Authorization": f"Bearer {token}"})
        assert status == 200, body
        assert "yurthub cache" in headers["Warning"]
    # what the old token was never allowed, the new one is not either
    status, _, _ = http(hub.url + "/api/v1/namespaces/kube-system/secrets",
                        headers={**agent, "Authorization": f"Bearer {new}"})
    assert status in (403, 503)
    # and the inheritance survives an offline restart of the hub
    hub.stop()
    hub.start()
    status, _, body = http(hub.url + path, headers={**agent, "Authorization": f"Bearer {new}"})
    assert status == 200, body
