"""The log an operator ships from thousands of nodes: a line per change of state, never a
line per request, however many watches a cut of the link ends."""

from __future__ import annotations

import http.client
import threading

from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PATHS = ("/api/v1/pods", "/api/v1/nodes", "/api/v1/namespaces/default/configmaps")


def open_watch(port: int, path: str, done: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path + "?watch=true&allowWatchBookmarks=true&timeoutSeconds=300",
                 headers={"User-Agent": KUBELET})
    resp = conn.getresponse()
    assert resp.status == 200
    try:
        while resp.read(4096):
            pass
    except (OSError, http.client.HTTPException):
        pass
    conn.close()
    done.append(1)


def test_a_cut_that_ends_twenty_watches_adds_a_few_lines_not_one_per_watch(sandbox, hub):
    for path in PATHS:  # listed once, so the cache holds them and watches are cached too
        assert hub.get(path)[0] == 200
    done: list[int] = []
    threads = [threading.Thread(target=open_watch, args=(hub.proxy_port, PATHS[i % 3], done),
                                daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 20,
             what="20 watches open upstream")
    before = len(hub.log().splitlines())
    sandbox.offline()
    for t in threads:
        t.join(60)
    assert len(done) == 20
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, what="offline")
    wait_for(lambda: "cloud is now UNHEALTHY" in hub.log(), what="the state change logged")
    added = hub.log().splitlines()[before:]
    assert len(added) < 10, "\n".join(added)
    # Their clients watch from the cache now; the cloud's return moves them back upstream.
    threads = [threading.Thread(target=open_watch, args=(hub.proxy_port, PATHS[i % 3], done),
                                daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 20,
             what="20 watches open on the cache")
    before = len(hub.log().splitlines())
    sandbox.online()
    for t in threads:
        t.join(60)
    assert len(done) == 40
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 1, what="online")
    added = hub.log().splitlines()[before:]
    assert len(added) < 10, "\n".join(added)
