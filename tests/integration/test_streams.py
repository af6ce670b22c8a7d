"""Long-lived responses under gunicorn: vanished clients, stalled clients, shutdown, no cloud."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, recv_until, status_line

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


def open_watch(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {KUBELET}\r\n\r\n".encode())
    return sock


def current_rv(sandbox) -> int:
    return int(sandbox.resource_version)


def test_a_client_that_disconnects_ends_its_upstream_watch_within_2s(sandbox, hub):
    sock = open_watch(hub.proxy_port, f"/api/v1/pods?watch=true&timeoutSeconds=600"
                                      f"&resourceVersion={current_rv(sandbox)}")
    wait_for(lambda: sandbox.client_watches == 1, what="the watch to reach the sandbox")
    sock.close()
    gone = time.monotonic()
    wait_for(lambda: sandbox.client_watches == 0, timeout=5,
             what="the upstream watch to end after its client left")
    assert time.monotonic() - gone < 2.5


def test_a_client_that_stops_reading_is_cut_after_the_send_timeout(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--client-send-timeout", "1"])
    sock = open_watch(hub.proxy_port, f"/api/v1/configmaps?watch=true&timeoutSeconds=600"
                                      f"&resourceVersion={current_rv(sandbox)}", rcvbuf=4096)
    wait_for(lambda: sandbox.client_watches == 1, what="the watch to reach the sandbox")
    blob = "x" * 60_000
    for i in range(200):  # 12 MB of events nobody reads: every buffer on the way fills up
        sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"big-{i}", "namespace": "default"},
                     "data": {"blob": blob}})
        if sandbox.client_watches == 0:
            break
    wait_for(lambda: sandbox.client_watches == 0, timeout=15,
             what="the stalled client to be cut and its upstream watch ended")
    # The hub keeps serving everyone else.
    assert http(hub.url + "/version")[0] == 200
    sock.close()


def test_shutdown_ends_open_watches_cleanly_and_exits_0(sandbox, hub):
    sock = open_watch(hub.proxy_port, f"/api/v1/pods?watch=true&timeoutSeconds=600"
                                      f"&resourceVersion={current_rv(sandbox)}")
    wait_for(lambda: sandbox.client_watches == 1, what="the watch to reach the sandbox")
    sock.settimeout(10)
    started = time.monotonic()
    hub.proc.send_signal(15)  # SIGTERM, as systemd stops the service
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.endswith(b"0\r\n\r\n"), "the watch did not end with the terminating chunk"
    assert time.monotonic() - started < 4  # well before the 5 s graceful timeout
    assert hub.proc.wait(15) == 0
    sock.close()


def test_an_unreachable_cloud_gives_a_503_status(tmp_path, hub_factory):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there
    # Without filters: with them, a hub that never reached the cloud is not ready (and
    # answers a 503 of its own to what they would filter).
    hub = hub_factory(f"http://127.0.0.1:{port}", extra=["--working-mode", "cloud",
                                                         "--enable-resource-filter", "false"])
    status, headers, body = hub.get("/api/v1/pods")
    assert status == 503
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable"
    assert "unreachable" in doc["message"]
    assert headers.get("Retry-After") is None or int(headers["Retry-After"]) >= 1


@pytest.mark.parametrize("offline", [False, True])
def test_watch_headers_arrive_before_any_event(sandbox, hub, offline):
    status, _, body = hub.get("/api/v1/pods")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    if offline:
        sandbox.offline()
        wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
                 what="the hub to notice the cloud is gone")
    sock = open_watch(hub.proxy_port, f"/api/v1/pods?watch=true&timeoutSeconds=60"
                                      f"&resourceVersion={rv}")
    sock.settimeout(3)
    head = sock.recv(4096)  # nothing happens upstream: only the headers can come
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Transfer-Encoding: chunked" in head
    sock.close()


def test_open_watches_are_counted_by_source_and_released_when_clients_go(sandbox, hub):
    """yurthub_open_watches counts watches proxied from the cloud (remote) and served from the
    cache (local), and each count goes back down when its client goes, even a client that
    vanished without a word while its watch was idle."""
    status, _, body = hub.get("/api/v1/pods")
    assert status == 200
    rv = json.loads(body)["metadata"]["resourceVersion"]
    path = f"/api/v1/pods?watch=true&timeoutSeconds=600&resourceVersion={rv}"
    remote = [open_watch(hub.proxy_port, path) for _ in range(3)]
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 3,
             what="three remote watches counted")
    assert hub.metric("yurthub_open_watches", source="local") == 0
    remote.pop().close()  # vanishes while idle: the watchdog notices
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 2,
             what="the vanished client's watch uncounted")

    sandbox.offline()  # remote watches end; clients would re-watch from the cache
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 0,
             what="remote watches ended when the cloud went")
    for s in remote:
        s.close()
    local = [open_watch(hub.proxy_port, path) for _ in range(2)]
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 2,
             what="two local watches counted")
    local.pop().close()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 1,
             what="the vanished client's local watch uncounted")
    local.pop().close()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 0,
             what="no local watch left")
    assert hub.metric("yurthub_open_watches", source="remote") == 0


@pytest.mark.parametrize("path", ["/api/v1/pods?watch=true&timeoutSeconds=600",
                                  "/api/v1/services?watch=true&timeoutSeconds=600"])
def test_watches_from_the_cache_and_the_shared_state_are_bounded_too(sandbox, hub_factory,
                                                                     path):
    """max_watches bounds every watch, wherever it is served from: offline, each watch from
    the cache holds a request thread as one from the cloud does (kubelet alone watches one
    ConfigMap or Secret per reference), and without the bound they took every thread and
    the hub answered nothing else.  Services come from the multiplexer's shared state."""
    hub = hub_factory(sandbox.url, extra=["--max-watches", "3"])
    for listing in ("/api/v1/pods", "/api/v1/services"):
        assert hub.get(listing)[0] == 200
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")
    for listing in ("/api/v1/pods", "/api/v1/services"):   # committed by the cache writer
        wait_for(lambda listing=listing: hub.get(listing)[0] == 200, what=f"{listing} cached")
    held = [open_watch(hub.proxy_port, path) for _ in range(3)]
    try:
        assert [status_line(s) for s in held] == [b"HTTP/1.1 200 OK"] * 3
        with open_watch(hub.proxy_port, path) as extra:
            assert status_line(extra).startswith(b"HTTP/1.1 429 ")
        assert hub.get("/api/v1/pods")[0] == 200
    finally:
        for s in held:
            s.close()
    wait_for(lambda: watch_status(hub, path) == b"HTTP/1.1 200 OK",
             what="room again once the watches ended")


def watch_status(hub, path: str) -> bytes:
    with open_watch(hub.proxy_port, path) as sock:
        return status_line(sock)


def test_upgraded_sessions_count_among_the_watches(sandbox, hub_factory):
    """An exec or port-forward session holds a request thread for as long as it lasts, as a
    watch does: past ``max_watches`` it gets a 429, and once room is made it is relayed."""
    hub = hub_factory(sandbox.url, extra=["--max-watches", "2"])
    pod = json.loads(hub.get("/api/v1/pods?limit=1")[2])["items"][0]["metadata"]
    path = "/api/v1/pods?watch=true&timeoutSeconds=600"
    upgrade = (f"GET /api/v1/namespaces/{pod['namespace']}/pods/{pod['name']}/exec?"
               "command=echo&command=hi&stdout=1 HTTP/1.1\r\nHost: x\r\n"
               "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n"
               "User-Agent: kubectl/v1.32.4\r\n\r\n").encode()

    def exec_status() -> bytes:
        with socket.create_connection(("127.0.0.1", hub.proxy_port), timeout=10) as s:
            s.sendall(upgrade)
            return status_line(s)

    held = [open_watch(hub.proxy_port, path) for _ in range(2)]
    try:
        assert [status_line(s) for s in held] == [b"HTTP/1.1 200 OK"] * 2
        assert exec_status().startswith(b"HTTP/1.1 429 ")
    finally:
        for s in held:
            s.close()
    wait_for(lambda: exec_status().startswith(b"HTTP/1.1 101 "),
             what="the session relayed once the watches ended")


def test_watches_that_arrive_together_are_bounded_too(sandbox, hub_factory):
    """The bound was checked when a watch arrived and counted once its answer streamed: a
    burst of watches (a restarted kubelet's informers, or another user's loop) all passed
    the check while the cloud was answering the first, and every request thread ended up
    held, the node's GETs queued behind them."""
    hub = hub_factory(sandbox.url, extra=["--max-watches", "3"])
    sandbox.set_latency(1000)   # every watch is still on its way while the others arrive
    try:
        burst = [open_watch(hub.proxy_port, "/api/v1/pods?watch=true&timeoutSeconds=600")
                 for _ in range(10)]
        answers = [status_line(s) for s in burst]
    finally:
        sandbox.set_latency(0)
    try:
        assert answers.count(b"HTTP/1.1 200 OK") == 3, answers
        assert all(a == b"HTTP/1.1 200 OK" or a.startswith(b"HTTP/1.1 429 ") for a in answers)
        assert hub.get("/api/v1/pods")[0] == 200
    finally:
        for s in burst:
            s.close()
    # The slots of the refused ones were given back: room again once the watches ended.
    wait_for(lambda: watch_status(hub, "/api/v1/pods?watch=true&timeoutSeconds=1")
             == b"HTTP/1.1 200 OK", what="room again once the watches ended")


@pytest.mark.parametrize("follow", ["True", "1", ""])
def test_a_followed_log_asked_as_the_python_client_asks_streams_at_once(sandbox, hub, follow):
    # Debian 12's python3-kubernetes (on urllib3 1.26) sends follow=True, which
    # kube-apiserver reads as true, as it reads "1" or no value: the hub took it for a
    # short answer, kept the head back until the log's first byte and cut a quiet log
    # after its 60 s read timeout.  The cloud's head here, then nothing (a quiet log).
    sandbox.stall_next(match="/log")
    sock = socket.create_connection(("127.0.0.1", hub.proxy_port))
    try:
        sock.settimeout(20)
        sock.sendall(f"GET /api/v1/namespaces/default/pods/p/log?follow={follow} HTTP/1.1\r\n"
                     "Host: x\r\nUser-Agent: OpenAPI-Generator/22.6.0/python\r\n\r\n".encode())
        head = recv_until(sock, b"\r\n\r\n")  # (before the fix: nothing until the hub gave up)
        assert b"\r\n\r\n" in head, head
        assert head.startswith(b"HTTP/1.1 ")
    finally:
        sandbox.release()
        sock.close()
