"""The hub's own watches of what the filters depend on, against a live sandbox."""

from __future__ import annotations

import json

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from yurthub import config
from yurthub import upstream as up
from yurthub.credentials import CredentialStore
from yurthub.filters.manager import FilterManager, Inputs
from yurthub.filtersource import PERSIST_KEY, FilterSource

NODE = "node-0001"


@pytest.fixture
def sandbox4():
    sb = Sandbox(nodes=4, pods_per_node=0, bookmark_interval=0.3).start()
    yield sb
    sb.stop()


class Source:
    def __init__(self, sandbox: Sandbox, **settings: str) -> None:
        self.cfg = config.load(None, {"server_addr": sandbox.url, "node_name": NODE,
                                      **settings})
        self.creds = CredentialStore(self.cfg)
        self.upstream = up.Upstream(self.cfg, self.creds.load())
        self.manager = FilterManager(self.cfg)
        self.persisted: list[tuple[str, bytes]] = []
        self.changes: list = []
        self.manager.on_change(lambda clients, why: self.changes.append((clients, why)))
        self.source = FilterSource(self.manager, self.upstream, NODE,
                                   lambda k, b: self.persisted.append((k, b)))

    def __enter__(self) -> Source:
        self.source.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.stop()
        self.upstream.close()
        self.creds.close()


def test_every_input_is_listed_then_watched_and_persisted(sandbox4):
    with Source(sandbox4) as s:
        wait_for(lambda: s.manager.not_ready() is None, what="the filter configuration")
        ctx = s.manager.snapshot.ctx
        assert (ctx.pool, ctx.pool_nodes, ctx.zone) == (
            "pool-a", frozenset({"node-0000", "node-0001"}), "zone-a")
        assert dict(ctx.service_topology) == {
            ("default", "web-hostname"): "kubernetes.io/hostname",
            ("default", "web-pool"): "openyurt.io/nodepool",
            ("default", "web-zone"): "kubernetes.io/zone"}
        assert s.manager.inputs.configmap == {"cache_agents": ""}
        key, body = s.persisted[-1]
        assert key == PERSIST_KEY and Inputs.from_json(json.loads(body)) == s.manager.inputs
        # Watched: a NodePool's members, yurt-hub-cfg, a Service, this Node.
        sandbox4.patch("nodepools", "pool-a", {"status": {"nodes": ["node-0001"]}},
                       patch_type="merge", subresource="status")
        wait_for(lambda: s.manager.snapshot.ctx.pool_nodes == frozenset({"node-0001"}),
                 what="the new members")
        sandbox4.patch("configmaps", "yurt-hub-cfg", {"data": {"cache_agents": "kubectl"}},
                       namespace="kube-system")
        wait_for(lambda: s.manager.cache_agents() == {"kubectl"}, what="the new cache agents")
        sandbox4.delete("services", "web-zone", "default")
        wait_for(lambda: ("default", "web-zone") not in s.manager.snapshot.ctx.service_topology,
                 what="the deleted Service's annotation gone")
        sandbox4.patch("nodes", NODE, {"metadata": {"labels": {
            "apps.openyurt.io/nodepool": "pool-b"}}})
        wait_for(lambda: s.manager.snapshot.ctx.pool == "pool-b", what="this node's new pool")
        assert [why for _, why in s.changes] == [
            "nodepools", "services' topology annotations", f"node {NODE}"]
        assert Inputs.from_json(json.loads(s.persisted[-1][1])) == s.manager.inputs
        # The hub's own requests are its own: none went through a filter or a cache agent.
        assert {r.user_agent for r in sandbox4.requests()} == {"yurthub/filters"}


def test_a_cluster_without_openyurt_and_a_node_not_registered_yet(sandbox4):
    sandbox4.delete("customresourcedefinitions", "nodepools.apps.openyurt.io")
    sandbox4.delete("nodes", NODE)
    with Source(sandbox4) as s:
        wait_for(lambda: s.manager.not_ready() is None, what="the filter configuration")
        assert s.manager.inputs.nodepools == {} and s.manager.inputs.node == ("", "")
        sandbox4.create({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": NODE, "labels": {"apps.openyurt.io/nodepool": "pool-b"}}})
        wait_for(lambda: s.manager.snapshot.ctx.pool == "pool-b", what="the Node registering")


def test_only_what_the_active_filters_need_is_watched(sandbox4):
    with Source(sandbox4, disabled_resource_filters="servicetopology",
                nodepool_name="pool-x") as s:
        assert [r.name for r in s.source.reflectors] == ["yurthub-watch-yurt-hub-cfg"]
        wait_for(lambda: s.manager.not_ready() is None, what="the filter configuration")
        assert s.manager.snapshot.ctx.pool == "pool-x"


def test_a_compacted_history_relists_and_an_outage_keeps_what_was_known(sandbox4):
    with Source(sandbox4) as s:
        wait_for(lambda: s.manager.not_ready() is None, what="the filter configuration")
        lists = _lists(sandbox4)
        sandbox4.patch("nodepools", "pool-a", {"status": {"nodes": ["node-0000"]}},
                       patch_type="merge", subresource="status")
        wait_for(lambda: s.manager.snapshot.ctx.pool_nodes == frozenset({"node-0000"}),
                 what="the change")
        sandbox4.offline()
        sandbox4.compact()
        known = s.manager.inputs
        sandbox4.patch("nodepools", "pool-a", {"status": {"nodes": ["node-0003"]}},
                       patch_type="merge", subresource="status")
        assert s.manager.inputs == known and s.manager.not_ready() is None
        sandbox4.compact()
        sandbox4.online()
        wait_for(lambda: s.manager.snapshot.ctx.pool_nodes == frozenset({"node-0003"}),
                 timeout=30, what="the change made while the hub could not watch")
        # The old version was gone (410): listed again.  The sandbox records a request after
        # answering it, so the record may come a moment after the change was seen.
        wait_for(lambda: _lists(sandbox4) > lists, what="the sandbox's record of the relist")


def test_the_cloud_coming_back_ends_every_backoff_at_once(sandbox4, monkeypatch, caplog):
    """A hub started before its network (an edge node's boot) is ready as soon as the cloud
    answers, not after the reflectors' longest backoff."""
    import logging
    monkeypatch.setattr("yurthub.filtersource.BACKOFF", (3600.0,))
    caplog.set_level(logging.DEBUG, "yurthub.filtersource")
    sandbox4.offline()
    with Source(sandbox4) as s:
        waiting = lambda: {r.getMessage().split(":")[0] for r in caplog.records  # noqa: E731
                           if "again in 3600" in r.getMessage()}
        wait_for(lambda: len(waiting()) == len(s.source.reflectors),
                 what="every reflector to wait out its backoff")
        assert s.manager.not_ready() is not None
        sandbox4.online()
        s.source.cloud_healthy()  # what the hub's health checker calls
        wait_for(lambda: s.manager.not_ready() is None,
                 what="the configuration, well before an hour's backoff")


def _lists(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("GET /apis/apps.openyurt.io/v1beta2/nodepools?")
               if "watch=true" not in r.query)


def test_a_404_is_read_to_its_end_before_its_connection_is_reused(tmp_path):
    """A server without the resource (404 with a body, keep-alive): the connection goes
    back to the pool clean, so the next request on it gets its own answer."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            ok = self.path.startswith("/ok")
            body = b'{"kind":"ConfigMap"}' if ok else b'{"kind":"Status","code":404}' * 50
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not ok:
                time.sleep(0.3)  # the body comes later than the headers
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = config.load(None, {"server_addr": f"http://127.0.0.1:{server.server_port}",
                             "node_name": NODE, "disabled_resource_filters": "*"})
    creds = CredentialStore(cfg)
    upstream = up.Upstream(cfg, creds.load())
    manager = FilterManager(cfg)
    source = FilterSource(manager, upstream, NODE, lambda k, b: None)
    source.start()
    try:
        wait_for(lambda: manager.inputs.configmap == {}, what="yurt-hub-cfg known (absent)")
        for _ in range(5):
            resp = upstream.send(upstream.servers[0], "GET", "/ok", {}, None, read_timeout=5)
            assert resp.status == 200 and b"".join(up.stream(resp)) == b'{"kind":"ConfigMap"}'
            up.finish(resp, True)
    finally:
        source.stop()
        upstream.close()
        creds.close()
        server.shutdown()


def test_a_start_with_other_settings_marks_and_persists_them_at_once(sandbox4):
    with Source(sandbox4) as s:
        wait_for(lambda: s.manager.not_ready() is None, what="the filter configuration")
        body = s.persisted[-1][1]
    assert json.loads(body)["own"]["filters"][-1] == "serviceenvupdater"
    same = Source(sandbox4)
    same.source.load(body)
    assert same.changes == [] and same.persisted == []
    older = Source(sandbox4)  # a copy without the settings: taken as this start's
    older.source.load(json.dumps({k: v for k, v in json.loads(body).items()
                                  if k != "own"}).encode())
    assert older.changes == [] and json.loads(older.persisted[0][1])["own"]
    other = Source(sandbox4, disabled_resource_filters="serviceenvupdater")
    other.source.load(body)
    [(clients, why)] = other.changes
    assert ("kubelet", "", "pods") in clients and "serviceenvupdater" in why
    [(key, persisted)] = other.persisted
    assert key == PERSIST_KEY and "serviceenvupdater" not in json.loads(persisted)["own"]["filters"]
    for src in (same, older, other):
        src.upstream.close()
        src.creds.close()


def test_an_outage_is_logged_once_per_reflector_not_at_every_retry(sandbox4, monkeypatch,
                                                                     caplog):
    """Offline, each reflector logged the same failure at every backoff step, then every
    15 s for as long as the cloud was away: four lines a quarter minute, for hours."""
    import logging
    monkeypatch.setattr("yurthub.filtersource.BACKOFF", (0.01,))
    caplog.set_level(logging.DEBUG, "yurthub.filtersource")
    sandbox4.offline()
    with Source(sandbox4) as s:
        names = [r.name for r in s.source.reflectors]

        def failures(name: str) -> list[logging.LogRecord]:
            return [r for r in caplog.records
                    if r.getMessage().startswith(f"{name}: ") and "again in" in r.getMessage()]
        wait_for(lambda: all(len(failures(n)) >= 10 for n in names),
                 what="every reflector to retry ten times")
    for name in names:
        said = [r for r in failures(name) if r.levelno > logging.DEBUG]
        assert [r.levelname for r in said] == ["WARNING"], [r.getMessage() for r in said]


def test_the_cloud_going_away_is_the_health_checkers_line_not_every_reflectors(
        sandbox4, monkeypatch, caplog):
    """Each outage was twelve lines of the four reflectors (the watch broken, the connection
    refused, "no healthy apiserver") around the health checker's one; a watch cut on the
    way while the cloud stays up was a WARNING too.  What only a reflector can see (its
    request refused) is still said."""
    import logging
    monkeypatch.setattr("yurthub.filtersource.BACKOFF", (0.01, 0.01, 0.01, 0.01, 0.01, 0.5))
    caplog.set_level(logging.DEBUG, "yurthub.filtersource")

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "yurthub.filtersource" and r.levelno > logging.DEBUG]

    def retries() -> int:
        return sum("again in" in r.getMessage() for r in caplog.records)

    with Source(sandbox4) as s:
        wait_for(lambda: s.manager.not_ready() is None, what="the configuration")
        sandbox4.cut_connections()  # every watch broken on the way; the cloud is up
        wait_for(lambda: retries() >= len(s.source.reflectors), what="the watches' retries")
        wait_for(lambda: sandbox4.open_watches >= len(s.source.reflectors),
                 what="the watches resumed")
        sandbox4.offline()
        s.upstream.servers[0].healthy = False  # what the health checker decides
        before = retries()
        wait_for(lambda: retries() >= before + 4 * len(s.source.reflectors),
                 what="the reflectors to retry through the outage")
        assert said() == []
        sandbox4.fail_next(50, status=403, match="yurt-hub-cfg")
        sandbox4.online()  # first: a reflector told healthy before would say "cannot connect"
        s.upstream.servers[0].healthy = True
        s.source.cloud_healthy()
        wait_for(lambda: any("HTTP 403" in m for m in said()),
                 what="the refused request named")
    assert all(m.startswith("yurthub-watch-yurt-hub-cfg: ") for m in said()), said()
