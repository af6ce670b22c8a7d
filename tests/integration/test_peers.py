"""Who may use the hub, with a real hub, real sockets and clients of another user (nobody):
the hub's credentials for allowed users only, a forged User-Agent is not the component it
names, tokens offline only for what the cloud accepted, kubelet's heartbeat from kubelet's
user only, and idle connections that stop nothing."""

from __future__ import annotations

import base64
import json
import socket
import stat

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.peers import NOBODY, as_nobody, request_as_nobody, spawn_as_nobody
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, status_line

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
CALICO = "calico-node/v3.27.0 (linux/amd64) kubernetes/abc"
NODE = "node-0000"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
SECRET = "/api/v1/namespaces/kube-system/secrets/node-secret"


def _jwt(claims: dict) -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


# The cloud's only valid token here: a service account's JWT, valid until 2100.
TOKEN = _jwt({"sub": "system:serviceaccount:kube-system:calico-node", "exp": 4102444800})


def offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")


def secret() -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "node-secret", "namespace": "kube-system"},
            "data": {"password": base64.b64encode(b"hunter2").decode()}}


def test_other_users_may_not_use_the_hubs_credentials(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, node=NODE)
    status, body = request_as_nobody(hub.url + "/api/v1/namespaces/default/pods",
                                     headers={"User-Agent": KUBELET})
    assert status == 403 and body["kind"] == "Status" and body["reason"] == "Forbidden"
    assert f"user {NOBODY} may not use the hub's credentials" in body["message"]
    assert hub.metric("yurthub_requests_refused_total", reason="user-not-allowed") == 1
    # With a token of its own it goes through (the cloud decides), and what it reads is
    # filed under its own component key, never kubelet's.
    status, body = request_as_nobody(hub.url + "/api/v1/namespaces/default/pods",
                                     headers={"User-Agent": KUBELET,
                                              "Authorization": "Bearer its-own"})
    assert status == 200 and body["kind"] == "PodList"
    wait_for((hub.cache_dir / f"kubelet@{NOBODY}" / "pods.v1.core").is_dir,
             what="nobody's pods in a cache of its own")
    assert not (hub.cache_dir / "kubelet").exists()
    # root (kubelet's user, allowed by default) uses the hub's credentials as before.
    assert hub.get("/api/v1/namespaces/default/pods")[0] == 200


def test_offline_a_forged_user_agent_from_another_user_reads_no_secret(sandbox, hub_factory):
    sandbox.put(secret())
    hub = hub_factory(sandbox.url, node=NODE)
    assert hub.get(SECRET)[0] == 200                  # kubelet (root) reads it online
    wait_for((hub.cache_dir / "kubelet/secrets.v1.core/kube-system/node-secret").exists,
             what="the secret in kubelet's cache")
    offline(sandbox, hub)
    status, _, body = hub.get(SECRET)                 # kubelet itself still gets it
    assert status == 200 and json.loads(body)["data"]["password"]
    status, body = request_as_nobody(hub.url + SECRET, headers={"User-Agent": KUBELET})
    assert status == 403 and "may not use the hub's credentials" in body["message"]
    status, body = request_as_nobody(hub.url + SECRET, headers={
        "User-Agent": KUBELET, "Authorization": "Bearer forged"})
    assert status == 401 and body["reason"] == "Unauthorized" and "hunter2" not in str(body)


@pytest.fixture
def secure_sandbox():
    yield from _sandbox_taking(TOKEN)


def _sandbox_taking(token: str):
    sb = Sandbox(nodes=1, pods_per_node=2, token=token, bookmark_interval=0.3,
                 control_port=0).start()
    yield sb
    sb.stop()


def test_tokens_offline_only_for_what_the_cloud_accepted_even_after_a_restart(
        secure_sandbox, hub_factory, tmp_path):
    sandbox = secure_sandbox
    sandbox.put(secret())
    token_file = tmp_path / "hub-token"
    token_file.write_text(TOKEN)
    extra = ["--token-file", str(token_file), "--cache-agents", "calico-node"]
    hub = hub_factory(sandbox.url, node=NODE, extra=extra)
    mine = {"User-Agent": CALICO, "Authorization": f"Bearer {TOKEN}"}
    bogus = {"User-Agent": CALICO, "Authorization": "Bearer bogus"}
    # Online the cloud decides: the token is accepted for the secrets of kube-system ...
    assert http(hub.url + "/api/v1/namespaces/kube-system/secrets", headers=mine)[0] == 200
    assert http(hub.url + SECRET, headers=bogus)[0] == 401
    # ... and the hub's own identity (no token, root) lists configmaps for calico-node.
    assert hub.get("/api/v1/configmaps", ua=CALICO)[0] == 200
    wait_for((hub.cache_dir / "calico-node/configmaps.v1.core").is_dir, what="configmaps")
    wait_for((hub.cache_dir / "calico-node/secrets.v1.core").is_dir, what="secrets")
    offline(sandbox, hub)

    def check() -> None:
        status, headers, body = http(hub.url + SECRET, headers=mine)
        assert status == 200 and "yurthub" in headers.get("Warning", "")
        assert json.loads(body)["metadata"]["name"] == "node-secret"
        status, _, body = http(hub.url + SECRET, headers=bogus)
        assert status == 401 and json.loads(body)["message"] == "Unauthorized"
        status, _, body = http(hub.url + "/api/v1/configmaps", headers=mine)
        st = json.loads(body)
        assert status == 403 and st["reason"] == "Forbidden"
        assert st["message"].startswith('configmaps is forbidden: User "system:serviceaccount:'
                                        'kube-system:calico-node" cannot list resource')
        assert hub.get("/api/v1/configmaps", ua=CALICO)[0] == 200
        # The hub's own identity never read calico's secrets: not without a token either.
        status, _, body = hub.get(SECRET, ua=CALICO)
        assert status == 403 and "the hub's identity cannot get" in json.loads(body)["message"]

    check()
    assert hub.metric("yurthub_requests_refused_total", reason="token-unknown") == 1
    # Restarted while the cloud is away: the memory was kept with the cache.
    hub.stop()
    memory = hub.cache_dir / "_access"
    assert stat.S_IMODE(memory.stat().st_mode) == 0o600
    assert TOKEN.encode() not in memory.read_bytes()
    assert TOKEN.split(".")[1].encode() not in memory.read_bytes()
    hub.start()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, what="offline")
    check()


# A token a webhook checks (opaque, no ServiceAccount's claims): the cloud may answer it 401
# while the webhook is down.  (A ServiceAccount's token is checked by kube-apiserver
# itself: its 401 is always a verdict, see tests/unit/access/test_memory.py.)
WEBHOOK_TOKEN = "webhook-3f1c0d9e8b7a6f5e4d3c2b1a09f8e7d6"


@pytest.fixture
def webhook_sandbox():
    yield from _sandbox_taking(WEBHOOK_TOKEN)


def test_one_401_the_cloud_gives_by_mistake_does_not_refuse_the_token_offline(
        webhook_sandbox, hub_factory, tmp_path):
    # The cloud's token webhook was down for a moment: kube-apiserver answered 401 to a
    # token it had accepted before (longer ago than it keeps a webhook's verdict: here,
    # before the hub's restart).  The cloud then went away: the pod still reads the cache.
    sandbox = webhook_sandbox
    sandbox.put(secret())
    token_file = tmp_path / "hub-token"
    token_file.write_text(WEBHOOK_TOKEN)
    hub = hub_factory(sandbox.url, node=NODE,
                      extra=["--token-file", str(token_file), "--cache-agents", "calico-node"])
    mine = {"User-Agent": CALICO, "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    assert http(hub.url + SECRET, headers=mine)[0] == 200
    wait_for((hub.cache_dir / "calico-node/secrets.v1.core").is_dir, what="secrets")
    hub.stop()
    hub.start()
    sandbox.fail_next(status=401, match="/secrets/node-secret")
    status, _, body = http(hub.url + SECRET, headers=mine)
    assert status == 401 and json.loads(body)["reason"] == "Unauthorized"  # the cloud's word
    offline(sandbox, hub)
    status, headers, body = http(hub.url + SECRET, headers=mine)
    assert status == 200 and "yurthub" in headers.get("Warning", ""), body
    assert json.loads(body)["metadata"]["name"] == "node-secret"


def lease_renewed(sandbox) -> str:
    return sandbox.get("leases", NODE, "kube-node-lease")["spec"]["renewTime"]


def test_a_forged_kubelet_heartbeat_from_another_user_does_not_keep_the_node_alive(
        sandbox, hub_factory):
    # nobody may even use the hub's credentials here: still not for kubelet's heartbeat.
    hub = hub_factory(sandbox.url, node=NODE, extra=[
        "--allowed-users", "root,nobody", "--kubelet-health-grace-period", "2"])
    assert hub.get(LEASE)[0] == 200                       # kubelet: alive
    wait_for(lambda: (hub.cache_dir / "kubelet/leases.v1.coordination.k8s.io/kube-node-lease"
                      / NODE).exists(), what="the hub holding the lease")
    first = lease_renewed(sandbox)
    wait_for(lambda: lease_renewed(sandbox) != first, what="the hub renewing the lease")
    lease = json.loads(hub.get(LEASE)[2])

    def forge() -> list[int]:
        got = [request_as_nobody(hub.url + LEASE, method="PUT", body=json.dumps(lease),
                                 headers={"User-Agent": KUBELET,
                                          "Content-Type": "application/json"})[0]]
        got.append(request_as_nobody(hub.url + LEASE, headers={"User-Agent": KUBELET})[0])
        return got

    # kubelet goes quiet; a process of nobody keeps "heartbeating" as kubelet.
    assert forge() == [403, 200]
    assert hub.metric("yurthub_requests_refused_total", reason="lease-not-kubelet") >= 1

    def probes() -> int:
        return len(sandbox.requests("GET /readyz"))

    def stalled() -> bool:
        # Over two health-checker ticks spent forging, the Lease did not move: the hub
        # probed with /readyz instead of renewing (while it renews, it never does).
        before, ticks = lease_renewed(sandbox), probes()
        wait_for(lambda: forge() and probes() >= ticks + 2, timeout=30, interval=0,
                 what="two probes without a renewal")
        return lease_renewed(sandbox) == before

    wait_for(stalled, timeout=60, interval=0, what="the renewals to stop")
    # The real kubelet speaks again: renewals resume (so the wait above could fail).
    stopped_at = lease_renewed(sandbox)
    assert hub.get(LEASE)[0] == 200
    wait_for(lambda: lease_renewed(sandbox) != stopped_at, what="renewals to resume")


_HOLD = r"""
import socket, sys
proxy, hub = int(sys.argv[1]), int(sys.argv[2])
held = [socket.create_connection(("127.0.0.1", proxy)) for _ in range(300)]
held += [socket.create_connection(("127.0.0.1", hub)) for _ in range(16)]
print("holding", len(held), flush=True)
sys.stdin.read()
"""


def test_300_idle_connections_stop_neither_kubelets_lease_nor_healthz(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, node=NODE)
    assert hub.get(LEASE)[0] == 200
    # Another user holds 300 silent connections to the proxy and its share of the hub
    # server's (the hub runs 64 threads here, 256 in production).
    flood = spawn_as_nobody(_HOLD, str(hub.proxy_port), str(hub.serve_port))
    try:
        assert flood.stdout is not None and flood.stdout.readline() == "holding 316\n"
        wait_for(lambda: hub.metric("yurthub_connections_open", listener="proxy") >= 300,
                 what="the flood accepted")
        status, _, body = hub.get(LEASE)
        assert status == 200 and json.loads(body)["metadata"]["name"] == NODE
        lease = json.loads(body)
        status, _, _ = http(hub.url + LEASE, method="PUT", body=json.dumps(lease).encode(),
                            headers={"User-Agent": KUBELET, "Content-Type": "application/json"})
        assert status == 200
        assert http(hub.hub_url + "/v1/healthz", timeout=5)[:3:2] == (200, b"OK")
        assert hub.get("/api/v1/namespaces/default/pods")[0] == 200
    finally:
        flood.kill()
        flood.wait()


def test_a_request_body_that_stops_arriving_gets_408(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, node=NODE, extra=["--client-body-timeout", "1"])
    with socket.create_connection(("127.0.0.1", hub.proxy_port)) as s:
        s.sendall(b"PATCH /api/v1/nodes/" + NODE.encode() + b"/status HTTP/1.1\r\n"
                  b"Host: x\r\nUser-Agent: kubelet/1\r\nContent-Type: "
                  b"application/merge-patch+json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        s.settimeout(20)
        answer = b""
        while chunk := s.recv(65536):   # until the hub closes: the body will not come
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
    status = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert status["reason"] == "Timeout" and "did not arrive" in status["message"]
    assert "Traceback" not in hub.log()


def test_long_paths_the_cloud_answers_do_not_grow_the_token_memory(sandbox, hub_factory):
    # The cloud answers a 60 KB path 404, which shows it authorized the token: remembered,
    # each such request added 60 KB to the memory and to its file (67 MB after 600).
    hub = hub_factory(sandbox.url, node=NODE)
    with socket.create_connection(("127.0.0.1", hub.proxy_port)) as s:
        f = s.makefile("rb")
        for i in range(200):
            s.sendall(f"GET /api/{i}{'x' * 60_000} HTTP/1.1\r\nHost: x\r\nUser-Agent: "
                      f"{KUBELET}\r\nAuthorization: Bearer its-own\r\n\r\n".encode())
            status = f.readline().split()[1]
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)
            assert status == b"404"
    hub.stop()   # the memory is written at stop
    assert (hub.cache_dir / "_access").stat().st_size < 100_000


_RAW = r"""
import http.client, json, sys
port, path, headers = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
conn.request("GET", path, headers=headers)
r = conn.getresponse()
print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
"""


def raw_as_nobody(port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """One request with exactly these headers (urllib would set its own Connection)."""
    out = json.loads(as_nobody(_RAW, str(port), path, json.dumps(headers)).stdout)
    return out["status"], out["body"]


def test_a_token_named_hop_by_hop_lends_no_one_the_hubs_credentials(
        secure_sandbox, hub_factory, tmp_path):
    # "Connection: Authorization" makes the client's token hop-by-hop: the proxy drops it
    # (RFC 9110), and upstream added the hub's own credentials to what was left, while
    # the guard had let the request through as one carrying its own token.
    sandbox = secure_sandbox
    sandbox.put(secret())
    token_file = tmp_path / "hub-token"
    token_file.write_text(TOKEN)
    hub = hub_factory(sandbox.url, node=NODE, extra=["--token-file", str(token_file)])
    forged = {"User-Agent": KUBELET, "Authorization": "Bearer bogus",
              "Connection": "Authorization"}
    status, body = raw_as_nobody(hub.proxy_port, SECRET, forged)
    assert status == 403 and "may not use the hub's credentials" in body, body
    assert "aHVudGVyMg" not in body
    # Nor did the cloud's answer teach the hub that "bogus" is a token it accepts.
    offline(sandbox, hub)
    status, body = raw_as_nobody(hub.proxy_port, SECRET, {
        "User-Agent": KUBELET, "Authorization": "Bearer bogus"})
    assert status == 401 and "aHVudGVyMg" not in body, body


_WATCHES = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/v1/pods?watch=true&timeoutSeconds=600 HTTP/1.1\r\nHost: x\r\n"
              b"User-Agent: myapp/1\r\nAuthorization: Bearer its-own\r\n\r\n")
    s.settimeout(20)
    data = b""
    while b"\r\n" not in data:
        data += s.recv(4096)
    print(data.split(b"\r\n", 1)[0].decode(), flush=True)
    held.append(s)
sys.stdin.read()
"""


def test_another_user_holds_a_share_of_the_watches_not_all(sandbox, hub_factory):
    # Watches hold request threads, max_watches of them; one user with a token the cloud
    # accepts took them all, and kubelet's own watches (its pods, its node) got 429s.
    hub = hub_factory(sandbox.url, node=NODE, extra=["--max-watches", "8"])
    flood = spawn_as_nobody(_WATCHES, str(hub.proxy_port), "8")
    try:
        assert flood.stdout is not None
        answers = [flood.stdout.readline().strip() for _ in range(8)]
        assert answers.count("HTTP/1.1 200 OK") == 2, answers
        assert all(a.startswith("HTTP/1.1 429 ") for a in answers[2:]), answers
        kubelets = [open_kubelet_watch(hub) for _ in range(6)]  # its informers find room
        try:
            assert [status_line(s) for s in kubelets] == [b"HTTP/1.1 200 OK"] * 6
        finally:
            for s in kubelets:
                s.close()
    finally:
        flood.kill()
        flood.wait()


def open_kubelet_watch(hub) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", hub.proxy_port))
    s.sendall(f"GET /api/v1/pods?watch=true&timeoutSeconds=600 HTTP/1.1\r\nHost: x\r\n"
              f"User-Agent: {KUBELET}\r\n\r\n".encode())
    return s
