"""Fault injection on a live socket: offline and online, cut watches, fail, stall, reset, drop,
latency, from Python and over the HTTP control plane."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
from sandbox_wire_helpers import (
    connect,
    parse,
    read_response,
    recv_all,
    recv_until,
    request,
    send,
)

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for

PODS = "/api/v1/namespaces/default/pods"


def open_watch(url: str, path: str = PODS) -> socket.socket:
    rv = request(url, "GET", path).json()["metadata"]["resourceVersion"]
    sock = connect(url)
    send(sock, "GET", f"{path}?watch=1&resourceVersion={rv}")
    return sock


def test_offline_refuses_connects_and_cuts_open_watches_then_online_again(sandbox):
    port = sandbox.port
    watch = open_watch(sandbox.url)
    wait_for(lambda: sandbox.open_watches == 1)
    sandbox.offline()
    assert not sandbox.is_online
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    watch.settimeout(5)
    cut = read_response(watch)  # the stream ends without its terminal chunk
    assert cut.status == 200 and not cut.complete
    watch.close()
    wait_for(lambda: sandbox.open_watches == 0)
    # the control port still answers while the API port is closed
    state = request(sandbox.control_url, "GET", "/_sandbox/state").json()
    assert state["online"] is False and state["openWatches"] == 0
    assert request(sandbox.control_url, "GET", "/api/v1/pods").status == 404
    sandbox.online()
    assert sandbox.port == port and sandbox.is_online
    assert request(sandbox.url, "GET", "/api/v1/nodes").status == 200


def test_offline_and_online_over_the_control_port(sandbox):
    assert request(sandbox.control_url, "POST", "/_sandbox/offline").json()["ok"]
    with pytest.raises(ConnectionRefusedError):
        request(sandbox.url, "GET", "/version")
    request(sandbox.control_url, "POST", "/_sandbox/online")
    assert request(sandbox.url, "GET", "/version").status == 200


def test_cut_connections_ends_watches_but_stays_online(sandbox):
    watch = open_watch(sandbox.url)
    wait_for(lambda: sandbox.open_watches == 1)
    assert sandbox.cut_connections() >= 1
    watch.settimeout(5)
    try:
        whole = read_response(watch).complete
    except ConnectionError:  # cut before its head went out (a watch counts from its start)
        whole = False
    assert not whole
    assert sandbox.is_online and request(sandbox.url, "GET", "/version").status == 200


def test_fail_the_next_n_requests(sandbox):
    sandbox.fail_next(2, 503, retry_after=3)
    for _ in range(2):
        r = request(sandbox.url, "GET", PODS)
        assert r.status == 503 and r.headers["retry-after"] == "3"
        body = r.json()
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "ServiceUnavailable",
                                                               503)
        assert body["details"] == {"retryAfterSeconds": 3}
    assert request(sandbox.url, "GET", PODS).status == 200
    # only matching requests, and over HTTP
    request(sandbox.control_url, "POST", "/_sandbox/fail?count=1&status=500&match=/nodes")
    assert request(sandbox.url, "GET", PODS).status == 200
    r = request(sandbox.url, "GET", "/api/v1/nodes")
    assert (r.status, r.json()["reason"]) == (500, "InternalError")
    assert request(sandbox.url, "GET", "/api/v1/nodes").status == 200


def test_stall_mid_body_until_released(sandbox):
    whole = request(sandbox.url, "GET", PODS).body
    sandbox.stall_next(after_bytes=1000, match=PODS)
    with connect(sandbox.url) as sock:
        send(sock, "GET", PODS)
        first = recv_until(sock, 1)
        while b"\r\n\r\n" not in first:
            first += recv_until(sock, 1)
        head_len = first.index(b"\r\n\r\n") + 4
        got = first + recv_until(sock, head_len + 1000 - len(first))
        assert len(got) == head_len + 1000
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # nothing more comes while stalled
            sock.recv(1)
        assert sandbox.state()["faults"]["stalled"]
        sandbox.release()
        got += recv_all(sock)
    r = parse(io.BytesIO(got))
    assert r.complete and r.body == whole


def test_stall_then_release_delivers_the_rest_of_a_watch(sandbox):
    sandbox.stall_next(after_bytes=10, match="watch=1")
    rv = request(sandbox.url, "GET", PODS).json()["metadata"]["resourceVersion"]
    with connect(sandbox.url) as sock:
        send(sock, "GET", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                          "&timeoutSeconds=2")
        sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "s", "namespace": "default"}})
        got = recv_until(sock, 1)
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 12:
            got += recv_until(sock, 1)
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sandbox.release()
        got += recv_all(sock)
    r = parse(io.BytesIO(got))
    assert r.complete
    assert [json.loads(c)["type"] for c in r.chunks] == ["ADDED"]


def test_reset_mid_body_truncates_a_list(sandbox):
    whole = request(sandbox.url, "GET", PODS).body
    sandbox.reset_next(after_bytes=2000, match=PODS)
    u = urlsplit(sandbox.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    conn.request("GET", PODS)
    resp = conn.getresponse()
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        resp.read()
    conn.close()
    assert len(whole) > 2000
    assert request(sandbox.url, "GET", PODS).body == whole


def test_reset_mid_watch_leaves_a_truncated_chunked_body(sandbox):
    sandbox.reset_next(after_bytes=50, match="watch=1")
    sock = connect(sandbox.url)
    send(sock, "GET", f"{PODS}?watch=1")  # initial ADDED events, then the reset
    r = read_response(sock)
    sock.close()
    assert r.status == 200 and r.headers["transfer-encoding"] == "chunked"
    assert not r.complete and len(r.chunks) == 1 and len(r.chunks[0]) == 50


def test_drop_resets_before_any_response(sandbox):
    sandbox.drop_next(match="/api/v1/nodes")
    with pytest.raises((ConnectionError, OSError)):
        read_response_after(sandbox.url, "/api/v1/nodes")
    assert request(sandbox.url, "GET", "/api/v1/nodes").status == 200


def read_response_after(url, path):
    with connect(url) as sock:
        send(sock, "GET", path)
        return read_response(sock)


def test_latency(sandbox):
    sandbox.set_latency(150)
    started = time.monotonic()
    assert request(sandbox.url, "GET", "/version").status == 200
    assert time.monotonic() - started >= 0.14
    sandbox.clear_faults()
    assert sandbox.faults.latency == 0


def test_control_plane_objects_requests_and_errors(sandbox):
    ctl = sandbox.control_url
    created = request(ctl, "POST", "/_sandbox/objects", body={
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "via-control", "namespace": "default"}})
    assert created.status == 201 and created.json()["metadata"]["uid"]
    assert sandbox.get("configmaps", "via-control", "default") is not None
    request(ctl, "DELETE", "/_sandbox/requests")
    request(sandbox.url, "GET", "/api/v1/nodes?limit=1")
    # The record lands once the response went out: the client may ask before that.
    logged = wait_for(lambda: request(ctl, "GET", "/_sandbox/requests?match=nodes")
                      .json()["items"], what="the request record")
    assert [(r["method"], r["path"], r["query"], r["status"]) for r in logged] == [
        ("GET", "/api/v1/nodes", "limit=1", 200)]
    gone = request(ctl, "DELETE", "/_sandbox/objects?resource=configmaps&namespace=default"
                                  "&name=via-control")
    assert gone.status == 200 and sandbox.get("configmaps", "via-control", "default") is None
    assert request(ctl, "POST", "/_sandbox/explode").status == 404
    assert request(ctl, "GET", "/_sandbox/offline").status == 405
    assert request(ctl, "POST", "/_sandbox/fail?count=x").status == 400
    assert request(ctl, "POST", "/_sandbox/fail?status=42").status == 400
    rv = request(ctl, "POST", "/_sandbox/compact").json()["result"]
    assert rv == sandbox.resource_version
    state = request(sandbox.url, "GET", "/_sandbox/state").json()  # also on the API port
    assert state["historyFloor"] == rv
    json.dumps(state)


def test_stop_ends_open_watches_cleanly():
    sb = Sandbox().start()
    watch = open_watch(sb.url, "/api/v1/namespaces/default/configmaps")
    wait_for(lambda: sb.open_watches == 1)
    sb.stop()
    watch.settimeout(5)
    r = read_response(watch)
    watch.close()
    assert r.status == 200 and r.complete  # the terminal chunk: client-go re-watches at once
    with pytest.raises(ConnectionRefusedError):
        request(sb.url, "GET", "/version")
