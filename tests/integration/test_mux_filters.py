"""Filters per client on the multiplexer's answers: each component gets its own view of the
one shared state, which no filter changes (it is cached unfiltered, once).

No filter ships on this branch's base yet, so this runs an in-process hub with a test
filter (the composition root takes filters) behind werkzeug's threaded server, as
test_filters.py does.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.test_mux import SVC, service, watch_lines
from yurthub import config
from yurthub.app import Hub


class HideSecretServices:
    """For kube-proxy only: drops Services labelled secret=yes, annotates the others (in
    place: the multiplexer must hand it a copy)."""

    name = "hidesecretservices"

    def applies(self, component: str, verb: str, resource: str) -> bool:
        return component == "kube-proxy" and resource == "services"

    def filter(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        md = obj.get("metadata") or {}
        if (md.get("labels") or {}).get("secret") == "yes":
            return None
        md.setdefault("annotations", {})["filtered"] = "yes"
        return obj


@pytest.fixture
def filtered_mux(sandbox, tmp_path):
    cfg = config.load(None, {"server_addr": sandbox.url, "node_name": "node-0000",
                             "disk_cache_path": str(tmp_path / "cache"),
                             "heartbeat_interval_seconds": "1",
                             "watch_bookmark_interval": "1"})
    hub = Hub(cfg, filters=[HideSecretServices()])
    hub.start()
    server = make_server("127.0.0.1", 0, hub.proxy_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}", tmp_path / "cache"
    hub.begin_shutdown()
    server.shutdown()
    hub.stop()


def names(body: bytes) -> dict[str, dict[str, Any]]:
    return {i["metadata"]["name"]: i for i in json.loads(body)["items"]}


def test_each_client_gets_its_filters_the_shared_state_none(sandbox, filtered_mux):
    url, cache = filtered_mux
    sandbox.put(service("hidden", secret="yes"))
    sandbox.put(service("shown", secret="no"))
    proxy = names(http(url + SVC, headers={"User-Agent": "kube-proxy/1"})[2])
    assert "hidden" not in proxy and proxy["shown"]["metadata"]["annotations"] == \
        {"filtered": "yes"}
    other = names(http(url + SVC, headers={"User-Agent": "coredns/1"})[2])
    assert "hidden" in other and "annotations" not in other["shown"]["metadata"]
    # The filter changed kube-proxy's copy, never the shared object: ask again.
    again = names(http(url + SVC, headers={"User-Agent": "coredns/1"})[2])
    assert again == other
    shared = cache / "yurthub-multiplexer/services.v1.core/default/shown"
    wait_for(shared.exists, what="the shared list in the cache")
    assert "annotations" not in json.loads(shared.read_bytes())["metadata"]
    assert not (cache / "kube-proxy").exists()

    rv = json.loads(http(url + SVC, headers={"User-Agent": "coredns/1"})[2])[
        "metadata"]["resourceVersion"]
    got: dict[str, list[tuple[str, str, dict]]] = {"kube-proxy/1": [], "coredns/1": []}

    def follow(ua: str) -> None:
        with watch_lines(url, SVC, ua, resourceVersion=rv, timeoutSeconds="20") as lines:
            for ev in lines:
                got[ua].append((ev["type"], ev["object"]["metadata"]["name"],
                                ev["object"]["metadata"].get("annotations") or {}))
                if len(got[ua]) == 3:
                    return
    threads = [threading.Thread(target=follow, args=(ua,), daemon=True) for ua in got]
    for t in threads:
        t.start()
    wait_for(lambda: http(url + "/api/v1/namespaces/default/services/shown",
                          headers={"User-Agent": "x/1"})[0] == 200, what="hub up")
    sandbox.put(service("shown", secret="yes"))     # kube-proxy: it goes away
    sandbox.put(service("hidden", secret="no"))     # kube-proxy: it appears
    sandbox.put(service("hidden", secret="no", v="2"))
    for t in threads:
        t.join(20)
    assert got["kube-proxy/1"] == [
        ("DELETED", "shown", {}), ("ADDED", "hidden", {"filtered": "yes"}),
        ("MODIFIED", "hidden", {"filtered": "yes"})]
    assert got["coredns/1"] == [("MODIFIED", "shown", {}), ("MODIFIED", "hidden", {}),
                                ("MODIFIED", "hidden", {})]
