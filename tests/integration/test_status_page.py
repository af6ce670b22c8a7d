"""``/status`` and ``/v1/status``: what an operator sees on a node whose cloud link is down,
read in a real headless Chromium (rendered text and a screenshot), and the same facts as
JSON."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from tests.fixtures.browser import Browser
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, read_watch_events
from yurthub.statuspage import render

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


def status(hub) -> dict:
    code, headers, body = http(hub.hub_url + "/v1/status")
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    return json.loads(body)


def open_watch(hub, path: str, ua: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {ua}\r\n\r\n".encode())
    threading.Thread(target=read_watch_events, args=(sock, []), daemon=True).start()
    return sock


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.quit()


def test_status_with_the_cloud_cut_in_a_real_browser(sandbox, hub, browser, tmp_path):
    assert hub.get("/api/v1/pods")[0] == 200
    assert hub.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")[0] == 200
    wait_for(lambda: any(c["objects"] == 6 for c in status(hub)["cache"]["collections"]),
             what="pods cached")
    watch = open_watch(hub, "/api/v1/pods?watch=1&resourceVersion=0", KUBELET)
    try:
        wait_for(lambda: status(hub)["watches"] == [
            {"component": "kubelet", "remote": 1, "local": 0, "shared": 0}],
            what="the remote watch")
        doc = status(hub)
        assert doc["cloud"]["online"] is True
        assert doc["cloud"]["servers"][0]["healthy"] is True
        sandbox.offline()
        wait_for(lambda: not status(hub)["cloud"]["online"], what="the hub to see the cut")
        # The hub ends watches on the cloud when it goes: their clients re-watch locally.
        wait_for(lambda: status(hub)["watches"] == [], what="the remote watch ended")
    finally:
        watch.close()
    assert hub.get("/api/v1/pods")[0] == 200                            # from the cache
    assert hub.get("/api/v1/namespaces/default/configmaps")[0] == 503   # never cached
    watch = open_watch(hub, "/api/v1/pods?watch=1&resourceVersion=0", KUBELET)
    try:
        wait_for(lambda: status(hub)["watches"] == [
            {"component": "kubelet", "remote": 0, "local": 1, "shared": 0}], what="the local watch")
    finally:
        watch.close()

    doc = status(hub)
    server = doc["cloud"]["servers"][0]
    assert server["url"] == sandbox.url and server["healthy"] is False
    assert server["reason"] and server["lastProbe"] and doc["cloud"]["since"]
    pods = next(c for c in doc["cache"]["collections"] if c["resource"] == "pods")
    # The cut tore the watch that kept the views current: stale, and the page says why.
    assert (pods["component"], pods["objects"], pods["stale"]) == ("kubelet", 6, True)
    stale_why = next(v["staleReason"] for v in pods["views"] if v["stale"])
    assert pods["staleReason"].endswith(stale_why) and stale_why
    assert pods["bytes"] > 0 and pods["lastSync"]
    assert sorted(v["selector"] for v in pods["views"]) == ["*", "default/l:app=web"]
    assert doc["cache"]["disk"]["freeBytes"] > 0
    kinds = {(e["kind"], e["component"], e["request"], e["code"]) for e in doc["events"]}
    assert ("fallback", "kubelet", "GET /api/v1/pods", 200) in kinds
    assert ("refusal", "kubelet", "GET /api/v1/namespaces/default/configmaps", 503) in kinds
    refusal = next(e for e in doc["events"] if e["kind"] == "refusal")
    assert "holds no complete list of configmaps" in refusal["reason"]
    assert doc["tee"]["overflows"] == 0
    assert doc["identity"]["method"] == "none (anonymous)"

    # The same facts, as a person sees them in a browser.
    code, headers, html = http(hub.hub_url + "/status")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<script" not in html and not re.search(rb'(src|href)="(https?:)?//', html)
    assert b"http-equiv=\"refresh\"" not in html  # auto-refresh is off by default
    browser.open(hub.hub_url + "/status")
    assert browser.title() == "yurthub node-0000: OFFLINE"
    text = browser.text()
    assert "yurthub on node-0000 OFFLINE" in text
    assert "cloud unreachable since" in text
    assert re.search(rf"{re.escape(sandbox.url)}\s+unhealthy", text)
    assert re.search(r"kubelet\s+pods\s+6\s+[\d.]+ KiB\s+\S+ ago\s+stale", text)
    assert f"stale: {stale_why}" in text
    assert "default/l:app=web" in text
    assert re.search(r"refused\s+503\s+kubelet\s+GET /api/v1/namespaces/default/configmaps",
                     text)
    assert re.search(r"from cache\s+200\s+kubelet\s+GET /api/v1/pods", text)
    assert re.search(r"disk [\d.]+ \w+ free of", text)
    # kubelet cached all pods but never listed its node: the node could not restart offline.
    assert doc["autonomy"]["status"] == "False"
    assert "kubelet: nodes not cached" in doc["autonomy"]["message"]
    assert re.search(r"Autonomy\s+False EssentialCacheMissing .*kubelet: nodes not cached", text)
    png = browser.screenshot(tmp_path / "status.png")
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    browser.open(hub.hub_url + "/status?refresh=5")
    assert "auto-refresh every 5s" in browser.text()


def test_a_credential_in_a_request_target_is_not_on_the_page(sandbox, hub):
    """/v1/status and /status answer every local user (nobody included): a token a client
    put in its query was shown there to all of them while the log redacted it."""
    secret = "s3cr3t-query-token"
    sandbox.offline()
    wait_for(lambda: not status(hub)["cloud"]["online"], what="the hub to see the cut")
    assert hub.get(f"/api/v1/namespaces/default/configmaps?access_token={secret}&limit=5"
                   )[0] == 503
    doc = status(hub)
    assert any(e["request"] == "GET /api/v1/namespaces/default/configmaps"
               "?access_token=<redacted>&limit=5" for e in doc["events"])
    for path in ("/v1/status", "/status"):
        assert secret.encode() not in http(hub.hub_url + path)[2]
    assert secret not in hub.log()


def test_status_is_for_loopback_clients_only(hub):
    from werkzeug.test import Client

    from yurthub.hubserver import HubServer
    from yurthub.metrics import Metrics
    server = HubServer(Metrics(), lambda: [], status=lambda: {"node": "n"})
    client = Client(server)
    for path in ("/status", "/v1/status"):
        r = client.get(path, environ_base={"REMOTE_ADDR": "10.0.0.9"})
        assert r.status_code == 403
        assert b"only to clients on this node's loopback interface" in r.get_data()
        assert b"10.0.0.9" in r.get_data()
        assert client.get(path.replace("status", "healthz") if path == "/v1/status" else
                          "/v1/healthz", environ_base={"REMOTE_ADDR": "10.0.0.9"}
                          ).status_code == 200
    assert http(hub.hub_url + "/v1/status")[0] == 200  # the real hub, from 127.0.0.1


def test_a_full_disk_that_stopped_caching_is_on_the_page(sandbox, browser, tmp_path):
    """The cache's file system full (as out of inodes or read-only): readyz and
    yurthub_cache_stopped said so, while /status showed a hub at ease."""
    from tests.fixtures.tmpfs import TmpfsHub, can_mount
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=16384, filler_kb=15700)
    try:
        hub.start()
        for i in range(8):
            sandbox.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": f"fill-{i}", "namespace": "default"},
                            "data": {"blob": "y" * (100 << 10)}})
        assert hub.get("/api/v1/namespaces/default/configmaps")[0] == 200
        wait_for(lambda: status(hub)["cache"]["stopped"], what="caching to stop")
        doc = status(hub)
        assert doc["cache"]["stopped"].startswith("caching stopped (no-space): the disk of ")
        assert doc["ready"]["ready"] is False
        assert doc["ready"]["reasons"] == [doc["cache"]["stopped"]] == [doc["ready"]["reason"]]
        browser.open(hub.hub_url + "/status")
        text = browser.text()
        assert "NOT READY caching stopped (no-space): the disk of" in text
        assert re.search(r"\ncaching stopped caching stopped \(no-space\): the disk of "
                         r".* is full .*; the hub goes on proxying\n", text), text
        hub.in_namespace("rm", "-f", str(hub.cache_dir / "_filler"))
        wait_for(lambda: status(hub)["ready"]["ready"], timeout=15, what="caching to resume")
        assert status(hub)["cache"]["stopped"] is None
        browser.open(hub.hub_url + "/status")
        assert "caching stopped" not in browser.text()
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()


def test_a_disk_out_of_inodes_shows_its_inodes_not_only_its_free_bytes(sandbox, browser,
                                                                      tmp_path):
    """Out of inodes with megabytes free: the page said 'disk 15 MiB free (95%)' and /metrics
    had only free bytes, so nothing hinted at why caching had stopped."""
    from tests.fixtures.tmpfs import TmpfsHub, can_mount
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=16384, filler_kb=0, inodes=40)
    try:
        hub.start()
        for path in ("/api/v1/pods", "/api/v1/configmaps", "/api/v1/nodes",
                     "/api/v1/services", "/api/v1/secrets", "/api/v1/endpoints"):
            assert hub.get(path)[0] == 200
        wait_for(lambda: status(hub)["cache"]["stopped"], what="caching to stop")
        doc = status(hub)
        assert "is out of inodes" in doc["cache"]["stopped"]
        disk = doc["cache"]["disk"]
        assert disk["totalInodes"] == 40 and disk["freeInodes"] < 10
        assert disk["freePercent"] > 50  # bytes alone say all is well
        assert hub.metric("yurthub_cache_disk_free_inodes") == disk["freeInodes"]
        browser.open(hub.hub_url + "/status")
        assert re.search(r"disk [\d.]+ MiB free of 16.0 MiB \([\d.]+%\), \d of 40 inodes "
                         r"free", browser.text()), browser.text()
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()


def test_watches_served_from_the_shared_state_show_under_their_component(hub, browser):
    """kube-proxy's and coredns's watches of Services and EndpointSlices are answered by the
    multiplexer: the page showed them as one row '- 0 0' (no component, and no column for
    them), as if nothing watched."""
    proxy = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
    socks = [open_watch(hub, "/api/v1/services?watch=1&resourceVersion=0", proxy),
             open_watch(hub, "/apis/discovery.k8s.io/v1/endpointslices?watch=1"
                        "&resourceVersion=0", proxy)]
    try:
        rows = wait_for(lambda: (w := {r["component"]: r for r in status(hub)["watches"]})
                        .get("kube-proxy", {}).get("shared") == 2 and w,
                        what="kube-proxy's two shared watches")
        assert rows["kube-proxy"] == {"component": "kube-proxy", "remote": 0, "local": 0,
                                      "shared": 2}
        assert "-" not in rows
        browser.open(hub.hub_url + "/status")
        text = browser.text()
        assert re.search(r"COMPONENT\s+REMOTE \(CLOUD\)\s+LOCAL \(CACHE\)\s+SHARED "
                         r"\(MULTIPLEXER\)", text), text
        assert re.search(r"\nkube-proxy\s+0\s+0\s+2\n", text), text
    finally:
        for s in socks:
            s.close()


def test_the_page_fits_a_1280_pixel_window_whatever_the_requests(browser, tmp_path):
    """Long request URLs (a multiplexer's watch with its query, a field selector) could not
    break, so the table of fallbacks grew past the window and its REASON column, the one
    that says why, was cut off at the right edge."""
    from tests.unit.test_status import doc
    query = "&".join(f"resourceVersion{i}=1234567&allowWatchBookmarks=true" for i in range(4))
    events = [{"kind": "fallback", "time": "2026-12-06T08:42:11Z", "code": 200,
               "component": "yurthub-multiplexer",
               "request": f"GET /apis/discovery.k8s.io/v1/endpointslices?watch=true&{query}",
               "reason": "cloud unreachable: 127.0.0.1:6443: cannot connect: HTTPConnection("
                         "host='127.0.0.1', port=6443): Failed to establish a new connection"}]
    page = tmp_path / "status.html"
    page.write_text(render(doc(events=events, eventCounts={"fallbacks": 1, "refusals": 0})))
    browser.open(page.as_uri())
    width = browser.script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    assert "Failed to establish a new connection" in browser.text()
