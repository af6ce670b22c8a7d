"""A hub under many watches (issue 17), end to end: twin watches of one view cost the
cache writer one application per event, and clients that vanish leave no entry, pipe
or busy thread behind."""

from __future__ import annotations

import os
import socket

from tests.fixtures.hub import _children
from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


def pod(name: str, i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"i": str(i)}},
            "spec": {"nodeName": "node-0000", "containers": [{"name": "c", "image": "x"}]}}


def open_watch(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {KUBELET}\r\n\r\n".encode())
    return sock


def read_events(sock: socket.socket, n: int) -> None:
    """Read until ``n`` events arrived on a watch (each ends with a newline)."""
    got = b""
    sock.settimeout(20)
    while got.count(b"}\n") < n:
        data = sock.recv(65536)
        assert data, f"the watch ended after {got.count(b'}' + bytes([10]))} events"
        got += data


def pipes(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
        except OSError:
            pass  # why: closed while we looked
    return n


def test_twin_watches_feed_the_cache_each_event_once(sandbox, hub):
    rv = sandbox.resource_version
    path = f"/api/v1/pods?watch=true&timeoutSeconds=600&resourceVersion={rv}"
    socks = [open_watch(hub.proxy_port, path) for _ in range(8)]
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 8,
             what="eight watches through the hub")
    before = hub.metric("yurthub_cache_watch_events_total")
    for i in range(5):
        sandbox.put(pod(f"twin-{i}", i))
    for s in socks:
        read_events(s, 5)
    wait_for(lambda: hub.metric("yurthub_cache_watch_events_total") - before == 40,
             what="the writer to read every watch's events")
    assert hub.metric("yurthub_cache_watch_events_total", result="applied") == 5
    assert hub.metric("yurthub_cache_watch_events_total", result="duplicate") == 35
    for s in socks:
        s.close()
    status, _, _ = hub.get("/api/v1/namespaces/default/pods/twin-4")
    assert status == 200


def test_vanished_clients_leave_no_tee_pipe_nor_busy_thread(sandbox, hub):
    worker = _children(hub.proc.pid)[0]
    idle = pipes(worker)
    own = sandbox.open_watches  # the hub's own (the filters' reflectors)
    rv = sandbox.resource_version
    path = f"/api/v1/pods?watch=true&timeoutSeconds=600&resourceVersion={rv}"
    socks = [open_watch(hub.proxy_port, path) for _ in range(20)]
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 20,
             what="twenty watches through the hub")
    sandbox.put(pod("first", 0))
    for s in socks:
        read_events(s, 1)
    wait_for(lambda: pipes(worker) >= idle + 40, what="a tee pipe for every watch")
    for i in range(1, 30):  # events keep flowing while the clients vanish
        sandbox.put(pod(f"more-{i}", i))
        if i == 3:
            for s in socks:
                s.close()
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") == 0
             and hub.metric("node_yurthub_in_flight_requests_total") == 0,
             what="every vanished client's request ended")
    wait_for(lambda: pipes(worker) == idle, what="every tee pipe closed")
    wait_for(lambda: sandbox.open_watches <= own, what="every upstream watch ended")
    assert hub.get("/api/v1/namespaces/default/pods/more-29")[0] == 200
