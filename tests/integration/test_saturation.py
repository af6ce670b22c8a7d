"""A hub under many watches (issue 17), end to end: twin watches of one view cost the
cache writer one application per event, and clients that vanish leave no entry, pipe
or busy thread behind."""

from __future__ import annotations

import os
import socket
import threading
import time

from tests.fixtures.hub import _children
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

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


def configmap(i: int, size: int) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"big-{i}", "namespace": "default"},
            "data": {"blob": "x" * size}}


class Trickle:
    """Clients that read a little of their answer now and then, always before the send
    timeout: each one's connection is open until the hub closes it."""

    def __init__(self, port: int, path: str, n: int) -> None:
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle/1.0\r\n\r\n"
                      .encode())
            s.setblocking(False)
            self.socks.append(s)
        self.got = [0] * n
        self.closed = [False] * n
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            for i, s in enumerate(self.socks):
                if self.closed[i]:
                    continue
                try:
                    data = s.recv(1024)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    self.got[i] += len(data)
                else:
                    self.closed[i] = True

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def test_clients_reading_lists_slowly_cannot_hold_every_thread(sandbox, hub_factory):
    # What a user saw: a few local processes reading big lists a kilobyte at a time (always
    # within the send timeout) held every request thread for as long as they liked, and
    # every other request (kubelet's pod status, a kubectl get) waited behind them, for
    # hours.  kube-apiserver sends a list within its --request-timeout or cuts it.
    for i in range(40):
        sandbox.put(configmap(i, 200_000))  # an 8 MB list: far more than socket buffers
    # A send timeout far longer than the test: only request_timeout may cut the readers.
    hub = hub_factory(sandbox.url, extra=["--threads", "8", "--request-timeout", "2",
                                          "--client-send-timeout", "600"])
    readers = Trickle(hub.proxy_port, "/api/v1/configmaps", 8)
    try:
        wait_for(lambda: all(readers.got), what="every slow reader got the start of its list")
        status, _, body = http(hub.url + "/api/v1/namespaces/default/pods", timeout=60,
                               headers={"User-Agent": KUBELET})
        assert status == 200 and b'"PodList"' in body
        wait_for(lambda: all(readers.closed), 30, what="the hub to cut every slow reader")
        assert max(readers.got) < 8_000_000  # cut before the end, never told it was whole
    finally:
        readers.close()
    # The log says why: they read all along, each write ran into the request's time (it
    # once blamed the clients: "client stopped sending or reading").
    log = hub.log()
    assert "its answer was not sent within request_timeout; connection reset" in log
    assert "client stopped sending or reading" not in log


def test_watches_outlast_the_request_timeout(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--request-timeout", "1"])
    rv = sandbox.resource_version
    sock = open_watch(hub.proxy_port,
                      f"/api/v1/pods?watch=true&timeoutSeconds=600&resourceVersion={rv}")
    try:
        sandbox.put(pod("early", 0))
        read_events(sock, 1)
        time.sleep(2.5)  # why: past the request timeout, which must not end a watch
        sandbox.put(pod("late", 1))
        read_events(sock, 1)
    finally:
        sock.close()
