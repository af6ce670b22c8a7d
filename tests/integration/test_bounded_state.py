"""Nothing a local process sends grows the hub without bound: /metrics under thousands of
User-Agents, the disk under a quota, and a full disk (issue 13, section 3)."""

from __future__ import annotations

import http.client as httpclient
import json
import random
import shutil

import pytest

from tests.fixtures.hub import Hub
from tests.fixtures.tmpfs import TmpfsHub, can_mount
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBECTL = "kubectl/v1.32.4 (linux/amd64) kubernetes/abc"


def metrics_size(hub: Hub) -> int:
    status, _, body = http(hub.hub_url + "/metrics")
    assert status == 200
    return len(body)


def readyz(hub: Hub) -> tuple[int, str]:
    status, _, body = http(hub.hub_url + "/v1/readyz")
    return status, body.decode()


def user_agents(n: int, rng: random.Random) -> list[str]:
    """What a careless or hostile local process might send as User-Agents."""
    out = []
    for i in range(n):
        tag = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        out.append(rng.choice([
            f"agent-{tag}/1.{i}",
            f"Mozilla/5.0 ({tag}) Gecko/{i}",
            f"{tag.upper()}-{'x' * rng.randint(1, 200)}/{i}",
            f"{tag}.{i}/v1 (linux/amd64)",
        ]))
    return out


def burst(hub: Hub, agents: list[str], shared: bool = False) -> None:
    """One request per agent on a kept-alive connection: mostly discovery, some lists (with
    ``shared``: lists of Services, which the multiplexer's shared state answers)."""
    conn = httpclient.HTTPConnection("127.0.0.1", hub.proxy_port, timeout=30)
    try:
        for i, ua in enumerate(agents):
            path = "/api/v1/namespaces/default/configmaps" if i % 10 == 0 else "/version"
            if shared:
                path = "/api/v1/services"
            conn.request("GET", path + ("?limit=5" if i % 20 == 0 else ""),
                         headers={"User-Agent": ua})
            r = conn.getresponse()
            r.read()
            assert r.status == 200
    finally:
        conn.close()


def test_metrics_stay_bounded_whatever_user_agents_clients_send(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--cache-agents", "*",
                                          "--cache-max-collections", "64"])
    rng = random.Random(13)
    burst(hub, user_agents(40, rng))
    after_40 = metrics_size(hub)
    burst(hub, user_agents(2000, rng))
    after_2040 = metrics_size(hub)
    print(f"/metrics: {after_40} bytes after 40 User-Agents, {after_2040} after 2,040")
    assert after_2040 < 64 << 10
    assert after_2040 - after_40 < 4 << 10  # the bound was reached within the first 40
    assert hub.metric("yurthub_metrics_labels_folded_total", label="component") > 1900
    assert hub.metric("yurthub_cache_collections") <= 64
    assert hub.metric("yurthub_requests_total", client="other") > 1000
    assert hub.get("/version", ua=KUBECTL)[0] == 200


def test_metrics_stay_bounded_whatever_user_agents_ask_the_shared_state(sandbox, hub_factory):
    # The multiplexer counted each answer under the client's own User-Agent: 3,000 agents
    # listing Services made 6,000 series and a 590 KB /metrics, growing with every new one.
    hub = hub_factory(sandbox.url)
    wait_for(lambda: hub.get("/api/v1/services", ua=KUBECTL)[0] == 200
             and hub.metric("yurthub_requests_total", source="shared") > 0,
             what="the shared state to answer Services")
    rng = random.Random(17)
    burst(hub, user_agents(40, rng), shared=True)
    after_40 = metrics_size(hub)
    burst(hub, user_agents(2000, rng), shared=True)
    after_2040 = metrics_size(hub)
    assert after_2040 - after_40 < 4 << 10  # the bound was reached within the first 40
    assert hub.metric("yurthub_requests_total", client="other", source="shared") > 1000


def test_a_full_quota_stops_caching_keeps_proxying_and_resumes(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--cache-agents", "kubectl", "--cache-quota", "1Mi",
                                          "--cache-component-quota", "1Mi"])
    big = [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"big-{i}", "namespace": "default"},
            "data": {"blob": "x" * (100 << 10)}} for i in range(15)]  # 1.5 MB in all
    for cm in big:
        sandbox.create(cm)
    status, _, body = hub.get("/api/v1/namespaces/default/configmaps", ua=KUBECTL)
    assert status == 200 and body.count(b'"big-') == 15  # proxying goes on
    status, why = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(readyz(hub)),
                           what="readyz to say caching stopped")
    assert "caching stopped (quota)" in why and "the hub goes on proxying" in why
    assert hub.metric("yurthub_cache_stopped", reason="quota") == 1
    assert not (hub.cache_dir / "kubectl/configmaps.v1.core").exists() or not list(
        (hub.cache_dir / "kubectl/configmaps.v1.core/default").glob("big-*"))
    assert hub.get("/api/v1/namespaces/default/pods", ua=KUBECTL)[0] == 200
    # Space returns: the cloud's configmaps shrink, the next list fits and is cached.
    for cm in big[5:]:
        sandbox.delete("configmaps", cm["metadata"]["name"], "default")
    assert hub.get("/api/v1/namespaces/default/configmaps", ua=KUBECTL)[0] == 200
    wait_for(lambda: readyz(hub)[0] == 200, what="caching to resume")
    assert hub.metric("yurthub_cache_stopped", reason="quota") == 0
    wait_for(lambda: len(list((hub.cache_dir / "kubectl/configmaps.v1.core/default")
                              .glob("big-*"))) == 5, what="the list cached")


def test_a_full_disk_stops_caching_keeps_proxying_and_resumes_when_space_returns(
        sandbox, tmp_path):
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=16384, filler_kb=15700,
                   extra=["--cache-agents", "kubectl"])
    try:
        hub.start()
        for i in range(8):
            sandbox.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": f"fill-{i}", "namespace": "default"},
                            "data": {"blob": "y" * (100 << 10)}})
        status, _, body = hub.get("/api/v1/namespaces/default/configmaps", ua=KUBECTL)
        assert status == 200 and body.count(b'"fill-') == 8  # proxying goes on
        status, why = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(readyz(hub)),
                               what="readyz to say the disk is full")
        assert "caching stopped (no-space)" in why
        assert hub.metric("yurthub_cache_stopped", reason="no-space") == 1
        assert hub.get("/api/v1/namespaces/default/pods", ua=KUBECTL)[0] == 200
        hub.in_namespace("rm", "-f", str(hub.cache_dir / "_filler"))
        wait_for(lambda: readyz(hub)[0] == 200, timeout=15, what="caching to resume")
        assert hub.get("/api/v1/namespaces/default/configmaps", ua=KUBECTL)[0] == 200
        wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubectl",
                                    resource="configmaps.v1.core") >= 8,
                 what="the list cached once there is room")
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()



def test_a_disk_out_of_inodes_never_cuts_off_a_list_the_cloud_sends_whole(sandbox, tmp_path):
    """The cache's disk ran out of inodes after kubelet's pods were cached: every later pod
    list from a healthy cloud broke off mid-body (the list's spool file could not be made
    on the request thread) while readyz said OK; kubelet's informer never got its pods."""
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    pods = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000"
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=16384, filler_kb=0, inodes=2000)
    try:
        hub.start()
        status, _, body = hub.get(pods)
        online = sorted(p["metadata"]["name"] for p in json.loads(body)["items"])
        assert status == 200 and online
        wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                    resource="pods.v1.core") == len(online),
                 what="kubelet's pods cached")
        fill = hub.cache_dir / "_inodes"
        hub.in_namespace("sh", "-c", f'mkdir "{fill}"; i=0; '
                                     f'while touch "{fill}/$i" 2>/dev/null; do i=$((i+1)); done')
        for _ in range(3):
            status, _, body = hub.get(pods)  # was http.client.IncompleteRead
            assert status == 200
            assert sorted(p["metadata"]["name"] for p in json.loads(body)["items"]) == online
        status, why = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(readyz(hub)),
                               what="readyz to say the disk is out of inodes")
        assert "caching stopped (no-space)" in why and "out of inodes" in why
        hub.in_namespace("rm", "-rf", str(fill))
        wait_for(lambda: hub.get(pods)[0] == 200 and readyz(hub)[0] == 200, timeout=15,
                 what="caching to resume")
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()


def test_a_cache_root_deleted_while_the_hub_runs_is_said_and_made_again_at_restart(
        sandbox, hub_factory):
    """``rm -rf`` of the cache directory while the hub ran: lists from a healthy cloud stay
    whole, but every commit failed ("cannot recover ...: No such file or directory", one
    ERROR line each), nothing was cached again until a restart, and readyz said OK."""
    pods = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000"
    hub = hub_factory(sandbox.url)
    status, _, body = hub.get(pods)
    online = sorted(p["metadata"]["name"] for p in json.loads(body)["items"])
    assert status == 200 and online
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") == len(online), what="pods cached")
    # (the hub stages and removes files meanwhile: one walk may meet a file gone or a new one)
    while hub.cache_dir.exists():
        shutil.rmtree(hub.cache_dir, ignore_errors=True)
    for _ in range(3):
        status, _, body = hub.get(pods)
        assert status == 200
        assert sorted(p["metadata"]["name"] for p in json.loads(body)["items"]) == online
    status, why = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(readyz(hub)),
                           what="readyz to say the cache directory is gone")
    assert "caching stopped (root-gone)" in why and "deleted while the hub ran" in why, why
    assert hub.metric("yurthub_cache_stopped", reason="root-gone") == 1
    assert hub.stop() == 0
    hub.start()  # the restart makes the directory again and caches into it
    assert hub.get(pods)[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") == len(online), what="pods cached again")
    assert readyz(hub)[0] == 200


def test_readyz_names_every_reason_when_several_hold(sandbox, hub_factory):
    """Caching stopped on a full quota while the filters' configuration is unknown: readyz
    named only the first, so an operator who freed the disk found the hub still not ready
    for a reason it had never shown."""
    sandbox.fail_next(10_000, 503, match="yurt-hub-cfg")
    hub = hub_factory(sandbox.url, wait=False,
                      extra=["--cache-agents", "kubectl", "--cache-quota", "1Mi",
                             "--cache-component-quota", "1Mi"])
    for i in range(15):
        sandbox.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": f"big-{i}", "namespace": "default"},
                        "stringData": {"blob": "x" * (100 << 10)}})

    def listed() -> bool:
        try:
            return hub.get("/api/v1/namespaces/default/secrets", ua=KUBECTL)[0] == 200
        except OSError:
            return False  # not listening yet
    wait_for(listed, what="the hub to proxy kubectl's list of secrets")
    status, why = wait_for(lambda: (lambda r: r if "caching stopped" in r[1] else None)(
        readyz(hub)), what="readyz to say caching stopped")
    first, *rest = why.splitlines()
    assert status == 503 and first.startswith("not ready: ")
    assert any(line.startswith("[-]caching failed: caching stopped (quota)") for line in rest)
    assert any(line.startswith("[-]filters failed: the filter configuration is not known")
               and "yurt-hub-cfg" in line for line in rest)
    assert "[+]identity ok" in rest and rest[-1] == "readyz check failed"
    doc = json.loads(http(hub.hub_url + "/v1/status")[2])
    assert doc["ready"]["reason"] == first.removeprefix("not ready: ")
    assert len(doc["ready"]["reasons"]) == 2

    sandbox.clear_faults()  # the configuration arrives: the quota alone holds
    status, why = wait_for(lambda: (lambda r: r if "[+]filters ok" in r[1] else None)(
        readyz(hub)), timeout=30, what="readyz to pass the filters' check")
    assert status == 503 and why.startswith("not ready: caching stopped (quota)")
