"""The node-level multiplexer with a real hub, a real sandbox and real ``kubernetes`` informers.

Several components list and watch Services and EndpointSlices through one hub: the cloud
sees one list+watch per resource (the hub's own), every component ends with the state the
apiserver holds for its selectors, and the events each got are the events a direct watch of
the apiserver gives from the same resourceVersion.  Then the upstream watch breaks, then it
must relist after a 410, then the hub restarts without the cloud.
"""

from __future__ import annotations

import gzip
import http.client as httpclient
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.hub import Hub
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.informer import Informer

MUX = "yurthub-multiplexer"
SVC = "/api/v1/services"
EPS = "/apis/discovery.k8s.io/v1/endpointslices"
HUB_ARGS = ["--watch-bookmark-interval", "1"]


def service(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}}


def slice_(name: str, ns: str = "default", ip: str = "10.0.0.1") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip]}],
            "ports": [{"port": 80, "protocol": "TCP"}]}


def direct(sandbox: Sandbox, path: str, **query: str) -> dict[str, Any]:
    qs = "&".join(f"{k}={quote(v)}" for k, v in query.items())
    status, _, body = http(f"{sandbox.url}{path}?{qs}", headers={"User-Agent": "test/1"})
    assert status == 200, body
    return json.loads(body)


def direct_events(sandbox: Sandbox, path: str, rv: str, until: str,
                  **selectors: str) -> list[tuple[str, dict[str, Any]]]:
    """What a watch of the apiserver itself sends from ``rv`` up to version ``until``."""
    out: list[tuple[str, dict[str, Any]]] = []
    with watch_lines(sandbox.url, path, "test/1", resourceVersion=rv,
                     allowWatchBookmarks="true", timeoutSeconds="10", **selectors) as lines:
        for ev in lines:
            if ev["type"] != "BOOKMARK":
                out.append((ev["type"], ev["object"]))
            if int(ev["object"]["metadata"]["resourceVersion"]) >= int(until):
                break
    return out


@contextmanager
def watch_lines(base: str, path: str, ua: str, **query: str) -> Iterator[Iterator[dict]]:
    """A raw watch: its decoded events as they arrive, on one connection."""
    u = urlsplit(base)
    conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=30)
    qs = "&".join(f"{k}={quote(v)}" for k, v in {"watch": "true", **query}.items())
    conn.request("GET", f"{path}?{qs}", headers={"User-Agent": ua})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()

    def events() -> Iterator[dict]:
        while True:
            line = resp.readline()
            if not line:
                return
            yield json.loads(line)
    try:
        yield events()
    finally:
        conn.close()


def cloud_requests(sandbox: Sandbox, path: str) -> list[Any]:
    """The requests for ``path`` that reached the cloud, but the hub's other own ones (the
    response filters' inputs, say)."""
    return [r for r in sandbox.requests()
            if r.path == path and not r.user_agent.startswith("yurthub/")]


def is_probe(r: Any) -> bool:
    """The multiplexer's probe of the cloud's current resourceVersion (a consistent read)."""
    return bool(r.query == "limit=1")


@pytest.fixture
def mux_hub(sandbox: Sandbox, hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(sandbox.url, extra=HUB_ARGS)


@pytest.fixture
def informers() -> Iterator[list[Informer]]:
    made: list[Informer] = []
    yield made
    for inf in made:
        inf.stop()


def start(informers: list[Informer], *args: Any, **kw: Any) -> Informer:
    inf = Informer(*args, **kw)
    informers.append(inf)
    inf.start()
    return inf


def settled(inf: Informer, expect: dict[tuple[str, str], str]) -> bool:
    """The informer holds exactly these objects at these resourceVersions."""
    got = {k: o["metadata"]["resourceVersion"] for k, o in inf.snapshot().items()}
    return got == expect


def expected(sandbox: Sandbox, path: str, **selectors: str) -> dict[tuple[str, str], str]:
    doc = direct(sandbox, path, **selectors)
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]):
            o["metadata"]["resourceVersion"] for o in doc["items"]}


def test_components_share_one_upstream_list_and_watch(sandbox, mux_hub, informers):
    sandbox.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edge"}})
    sandbox.put(service("web-a", app="web"))
    sandbox.put(service("db-b", app="db"))
    sandbox.put(service("edge-c", ns="edge", app="web"))
    sandbox.clear_requests()
    # Five components, three selections of Services, two of EndpointSlices (named so that
    # no response filter applies: their views are the apiserver's own).
    views = {
        "proxy-agent/v1.32": (SVC, {}),
        "ingress/v1": (SVC, {"label_selector": "app=web"}),
        "cni-agent/v2": (SVC, {"field_selector": "metadata.namespace=edge"}),
        "dns-agent/v1.11": (EPS, {}),
        "mesh/v1": (EPS, {"label_selector": "kubernetes.io/service-name=web-a"}),
    }
    infs = {ua: start(informers, mux_hub.url, ua, "services" if p == SVC else "slices",
                      **sel) for ua, (p, sel) in views.items()}
    for inf in infs.values():
        assert inf.synced.wait(30), inf.errors
    # Changes of every kind, including objects entering and leaving selections.
    sandbox.put(slice_("web-a"))
    sandbox.put(service("web-d", app="web"))
    sandbox.put(service("web-a", app="db"))            # leaves app=web
    sandbox.put(service("db-b", app="web"))            # enters app=web
    sandbox.put(service("edge-e", ns="edge", app="x"))
    sandbox.delete("services", "web-d", "default")
    sandbox.put(slice_("web-a", ip="10.0.0.2"))
    sandbox.put(slice_("other"))
    sandbox.delete("endpointslices", "other", "default")
    final = str(sandbox.resource_version)

    for ua, (path, sel) in views.items():
        query = {"labelSelector": sel.get("label_selector", ""),
                 "fieldSelector": sel.get("field_selector", "")}
        want = expected(sandbox, path, **query)
        wait_for(lambda i=infs[ua], w=want: settled(i, w), 20,
                 what=f"{ua} sees the apiserver's state ({infs[ua].errors})")
        # The events it got are those a direct watch gets from the same version.
        inf = infs[ua]
        assert len(inf.list_rvs) == 1, inf.list_rvs
        got = [(t, o) for t, o in inf.events]
        assert got == direct_events(sandbox, path, inf.list_rvs[0], final, **query), ua
        assert not inf.errors, (ua, inf.errors)

    # The cloud saw the hub's one list and its watch per resource, nothing from the clients
    # but, for a client's list without a resourceVersion (a consistent read), the hub's
    # probe of the cloud's current version: a list of one item.
    for path in (SVC, EPS):
        reqs = [r for r in cloud_requests(sandbox, path) if r.user_agent != "test/1"]
        assert {r.user_agent.split("/")[0] for r in reqs} == {MUX}, reqs
        assert sum(1 for r in reqs if "watch=true" not in r.query
                   and not is_probe(r)) == 1, reqs
        clients = sum(1 for p, _ in views.values() if p == path)
        assert sum(1 for r in reqs if is_probe(r)) <= clients, reqs
    assert mux_hub.metric("yurthub_open_watches", source="shared") == 5


def test_list_and_watch_options(sandbox, mux_hub):
    sandbox.put(service("web-a", app="web"))
    status, _, body = mux_hub.get(SVC + "?labelSelector=app%3Dweb&limit=1", ua="proxy-agent/1")
    assert status == 200
    doc = json.loads(body)
    assert [o["metadata"]["name"] for o in doc["items"]] == ["web-a"]
    assert "kind" not in doc["items"][0]  # items as kube-apiserver sends them
    rv = int(doc["metadata"]["resourceVersion"])
    # Not older than a version the state has: answered; far in the future: 504 in time.
    status, _, _ = mux_hub.get(f"{SVC}?resourceVersion={rv}", ua="proxy-agent/1")
    assert status == 200
    status, _, body = mux_hub.get(f"{SVC}?resourceVersion={rv + 1000}", ua="proxy-agent/1")
    assert status == 504 and json.loads(body)["reason"] == "Timeout"
    assert json.loads(body)["message"].startswith(  # kube's NewTimeoutError words it so
        f"Timeout: Too large resource version: {rv + 1000}, current: "), body
    status, _, body = mux_hub.get(SVC + "?labelSelector=a%3D%3D%3Db", ua="proxy-agent/1")
    assert status == 400, body
    # A watch from a version older than the shared history: an ERROR event with 410.
    with watch_lines(mux_hub.url, SVC, "proxy-agent/1", resourceVersion="1") as lines:
        ev = next(lines)
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
    # sendInitialEvents: the objects, then a bookmark that says they are all there.
    with watch_lines(mux_hub.url, SVC, "proxy-agent/1", sendInitialEvents="true",
                     allowWatchBookmarks="true", resourceVersionMatch="NotOlderThan",
                     labelSelector="app=web") as lines:
        first, second = next(lines), next(lines)
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "web-a"
    assert first["object"]["kind"] == "Service"
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    # A big answer is compressed for a client that accepts gzip, as kube-apiserver does.
    for i in range(20):
        big = service(f"pad-{i:02d}", app="pad")
        big["metadata"]["annotations"] = {"pad": "p" * 8000}
        sandbox.put(big)
    wait_for(lambda: len(json.loads(mux_hub.get(SVC + "?labelSelector=app%3Dpad",
                                                ua="proxy-agent/1")[2])["items"]) == 20,
             10, what="the padded Services in the shared state")
    status, headers, body = mux_hub.get(SVC, ua="proxy-agent/1", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    items = json.loads(gzip.decompress(body))["items"]
    assert len([i for i in items if i["metadata"]["name"].startswith("pad-")]) == 20
    status, headers, body = mux_hub.get(SVC + "?labelSelector=app%3Dweb", ua="proxy-agent/1",
                                        **{"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers and len(json.loads(body)["items"]) == 1
    # A Table goes to the cloud as before (the shared state serves objects only).
    status, _, body = mux_hub.get(SVC, ua="kubectl/1",
                                  Accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert status == 200
    # (the sandbox records a request after its response)
    wait_for(lambda: [r.user_agent for r in cloud_requests(sandbox, SVC)].count("kubectl/1")
             == 1, 10, what="kubectl's Table request upstream")


def test_upstream_watch_breaks_local_watches_go_on(sandbox, mux_hub):
    sandbox.put(service("a", app="web"))
    _, _, body = mux_hub.get(SVC, ua="proxy-agent/1")
    rv0 = json.loads(body)["metadata"]["resourceVersion"]
    seen: list[dict] = []
    done = threading.Event()

    def follow() -> None:
        with watch_lines(mux_hub.url, SVC, "proxy-agent/1", resourceVersion=rv0,
                         allowWatchBookmarks="true", timeoutSeconds="60") as lines:
            for ev in lines:
                if ev["type"] != "BOOKMARK":
                    seen.append(ev)
                if done.is_set():
                    return
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: mux_hub.metric("yurthub_open_watches", source="shared") == 1, 10,
             what="the client's watch is open")

    # 1. The connection of the hub's upstream watch is cut: it re-watches from its version.
    sandbox.put(service("b", app="web"))
    wait_for(lambda: len(seen) == 1, 10, what="the first event")
    assert sandbox.cut_connections() >= 1
    sandbox.put(service("c", app="web"))
    sandbox.put(service("a", app="db"))
    wait_for(lambda: len(seen) == 3, 10, what="events after the break")

    # 2. The upstream watch breaks and cannot resume (410): the hub lists again and the
    # difference reaches the client as events, on the same connection.
    sandbox.fail_next(3, status=503, match="services?watch=true&resourceVersion=")
    sandbox.cut_connections()
    sandbox.put(service("d", app="web"))
    sandbox.put(service("b", app="db"))
    sandbox.delete("services", "c", "default")
    sandbox.compact()
    wait_for(lambda: len(seen) == 6, 30, what=f"the relist's differences ({seen[3:]})")
    done.set()
    sandbox.put(service("e"))  # wakes the follower so it returns
    t.join(10)
    got = [(e["type"], e["object"]["metadata"]["name"]) for e in seen]
    assert got[:3] == [("ADDED", "b"), ("ADDED", "c"), ("MODIFIED", "a")]
    assert sorted(got[3:6]) == [("ADDED", "d"), ("DELETED", "c"), ("MODIFIED", "b")]
    assert got[5] == ("DELETED", "c")  # deletions come last, at the list's version
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in seen]
    assert rvs == sorted(rvs)
    def lists() -> list[Any]:
        return [r for r in cloud_requests(sandbox, SVC)
                if "watch=true" not in r.query and not is_probe(r)]
    wait_for(lambda: len(lists()) >= 2, 10, what="the relist recorded")
    assert len(lists()) == 2, lists()  # the first list and the relist
    assert "listing again" in mux_hub.log()
    # The shared history still holds everything after rv0: a client resuming there is
    # served the same events, not told 410.
    with watch_lines(mux_hub.url, SVC, "dns-agent/1", resourceVersion=rv0) as lines:
        again = [(e["type"], e["object"]["metadata"]["name"])
                 for e, _ in zip(lines, range(6), strict=False)]
    assert again == got[:6]


def test_a_watch_from_a_version_the_state_has_not_reached_gets_only_newer_changes(
        sandbox, mux_hub):
    # A component writes a Service (through the hub, to the cloud) and watches from the
    # version the write answered, before the shared state has heard of it: it must get the
    # changes after that version, not its own write again (kube-apiserver sends only the
    # events newer than a watch's resourceVersion).
    sandbox.put(service("a", app="web"))
    assert mux_hub.get(SVC, ua="proxy-agent/1")[0] == 200
    sandbox.stall_next(1, match="services?watch=true")  # the feed's next watch hears nothing
    sandbox.cut_connections()
    status, _, body = http(f"{mux_hub.url}/api/v1/namespaces/default/services",
                           method="POST", body=json.dumps(service("b", app="web")).encode(),
                           headers={"User-Agent": "operator/1",
                                    "Content-Type": "application/json"})
    assert status == 201, body
    written = json.loads(body)["metadata"]["resourceVersion"]
    seen: list[tuple[str, str]] = []
    with watch_lines(mux_hub.url, SVC, "operator/1", resourceVersion=written,
                     timeoutSeconds="30") as lines:
        wait_for(lambda: mux_hub.metric("yurthub_open_watches", source="shared") == 1, 10,
                 what="the client's watch is open")
        sandbox.release()
        sandbox.put(service("c", app="web"))
        for ev in lines:
            seen.append((ev["type"], ev["object"]["metadata"]["name"]))
            if ev["object"]["metadata"]["name"] == "c":
                break
    assert seen == [("ADDED", "c")]


def test_offline_restart_answers_from_the_shared_cache(sandbox, hub_factory, tmp_path):
    sandbox.put(service("web-a", app="web"))
    sandbox.put(slice_("web-a"))
    first = hub_factory(sandbox.url, extra=HUB_ARGS)
    _, _, body = first.get(SVC, ua="proxy-agent/1")
    online = json.loads(body)
    _, _, eps = first.get(EPS, ua="dns-agent/1")
    wait_for(lambda: (tmp_path / "cache" / MUX / "services.v1.core" / "default" /
                      "web-a").exists(), 10, what="the shared list cached")
    first.stop()
    # One copy on disk, under the multiplexer; none per component.
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()
                  if not p.name.startswith((".", "_"))) == [MUX]
    sandbox.offline()
    again = hub_factory(sandbox.url, extra=HUB_ARGS, cache_dir=tmp_path / "cache")
    for ua in ("proxy-agent/1", "ingress/1"):
        status, _, body = again.get(SVC, ua=ua)
        assert status == 200, body
        assert json.loads(body)["items"] == online["items"]
    status, _, body = again.get(EPS, ua="dns-agent/1")
    assert status == 200 and json.loads(body)["items"] == json.loads(eps)["items"]
    # A get of one object, by a component that never read it: the shared copy answers.
    status, _, body = again.get(SVC.replace("/services", "/namespaces/default/services/web-a"),
                                ua="late-agent/1")
    assert status == 200, body
    assert json.loads(body)["metadata"]["labels"] == {"app": "web"}
    rv = online["metadata"]["resourceVersion"]
    with watch_lines(again.url, SVC, "proxy-agent/1", resourceVersion=rv,
                     allowWatchBookmarks="true", timeoutSeconds="30") as lines:
        assert next(lines)["type"] == "BOOKMARK"  # resumed from the cache, no 410
        # The cloud comes back: the same watch carries its changes.
        sandbox.online()
        sandbox.put(service("web-b", app="web"))
        for ev in lines:
            if ev["type"] != "BOOKMARK":
                assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "web-b")
                break


def test_cloud_goes_and_comes_back_under_open_watches(sandbox, mux_hub):
    sandbox.put(service("a", app="web"))
    _, _, body = mux_hub.get(SVC, ua="proxy-agent/1")
    listed = json.loads(body)
    seen: list[dict] = []
    ended = threading.Event()

    def follow() -> None:
        with watch_lines(mux_hub.url, SVC, "proxy-agent/1",
                         resourceVersion=listed["metadata"]["resourceVersion"],
                         allowWatchBookmarks="true", timeoutSeconds="60") as lines:
            for ev in lines:
                seen.append(ev)
                if ev["type"] == "ADDED":
                    return
        ended.set()
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    wait_for(lambda: mux_hub.metric("yurthub_open_watches", source="shared") == 1, 10,
             what="the client's watch is open")
    sandbox.offline()
    wait_for(lambda: mux_hub.metric("node_yurthub_server_healthy_status") == 0, 20,
             what="the hub sees the cloud gone")
    # Offline, the same answers; the client's watch stays open (it gets bookmarks).
    n = len(seen)
    wait_for(lambda: len(seen) > n, 10, what="a bookmark while offline")
    assert not ended.is_set() and {e["type"] for e in seen} == {"BOOKMARK"}
    status, _, body = mux_hub.get(SVC, ua="dns-agent/1")
    assert status == 200 and json.loads(body)["items"] == listed["items"]
    sandbox.online()
    wait_for(lambda: mux_hub.metric("node_yurthub_server_healthy_status") == 1, 20,
             what="the hub sees the cloud back")
    sandbox.put(service("b", app="web"))
    t.join(20)
    assert seen[-1]["type"] == "ADDED" and seen[-1]["object"]["metadata"]["name"] == "b"
    assert not ended.is_set()  # one watch, from before the cloud went to after it came back


def test_hub_refused_the_list_clients_go_the_usual_way(sandbox, mux_hub):
    # The hub's own list is refused (RBAC, say): the client is not kept waiting for a
    # shared state; its request goes upstream as before, and the feed keeps trying.
    sandbox.fail_next(1, status=403, match="GET /api/v1/services")
    status, _, body = mux_hub.get(SVC, ua="proxy-agent/1")
    assert status == 200, body
    wait_for(lambda: "proxy-agent/1" in [r.user_agent for r in cloud_requests(sandbox, SVC)],
             10, what="the client's own list upstream")
    assert cloud_requests(sandbox, SVC)[0].user_agent.startswith(MUX)
    assert "list answered 403" in mux_hub.log()
    # Once the feed's list works, the shared state answers.
    wait_for(lambda: "listed" in mux_hub.log(), 10, what="the feed's next list")
    sandbox.clear_requests()
    assert mux_hub.get(SVC, ua="proxy-agent/1")[0] == 200
    assert not [r for r in cloud_requests(sandbox, SVC) if r.user_agent == "proxy-agent/1"]


def test_upgraded_while_offline_components_keep_their_own_cache(sandbox, hub_factory,
                                                                 tmp_path):
    extra = [*HUB_ARGS, "--cache-agents", "proxy-agent"]
    # A hub without the multiplexer cached proxy-agent's Services; the node restarts with it
    # while the cloud is away: no shared copy exists yet, so proxy-agent is answered from
    # its own, as before, not told to wait for a shared list that cannot come.
    sandbox.put(service("web-a", app="web"))
    old = hub_factory(sandbox.url, extra=[*extra, "--pool-scope-resources", ""])
    _, _, body = old.get(SVC, ua="proxy-agent/1")
    online = json.loads(body)
    wait_for(lambda: (tmp_path / "cache" / "proxy-agent" / "services.v1.core" / "default" /
                      "web-a").exists(), 10, what="proxy-agent's list cached")
    old.stop()
    sandbox.offline()
    new = hub_factory(sandbox.url, extra=extra, cache_dir=tmp_path / "cache")
    status, _, body = new.get(SVC, ua="proxy-agent/1")
    assert status == 200, body

    def versions(doc: dict) -> list[tuple[str, str]]:
        return [(o["metadata"]["name"], o["metadata"]["resourceVersion"])
                for o in doc["items"]]
    assert versions(json.loads(body)) == versions(online)
    assert "list answered 503" in new.log()
