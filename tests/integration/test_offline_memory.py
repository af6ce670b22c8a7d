"""What many offline readers of a big collection cost the hub's worker (issue 17).

A watch without a resourceVersion (the Python client's ``Watch().stream`` sends none; a
watch-list asks for the state too) begins with the whole current state as ADDED events.
Served from the cache, those bodies are read as the client takes them: eight such watches
of 10 MB of pods that their clients do not read must not hold 8 x 10 MB in the worker.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.fixtures.sandboxes import Sandbox
from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PODS = 2000


@pytest.fixture
def big_sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(nodes=20, pods_per_node=PODS // 20, bookmark_interval=0.3,
                 control_port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def offline_hub(big_sandbox, hub_factory):
    hub = hub_factory(big_sandbox.url, extra=["--heartbeat-interval-seconds", "1"])
    status, _, body = hub.get("/api/v1/pods")
    assert status == 200 and body.count(b'"nodeName"') == PODS
    wait_for(lambda: hub.metric("yurthub_cache_commits_total", kind="list") >= 1,
             timeout=60, what="the pod list in the cache")
    big_sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=20,
             what="the hub to notice")
    return hub


def worker_rss(hub) -> int:
    out = subprocess.run(["pgrep", "-P", str(hub.proc.pid)], capture_output=True, text=True)
    with open(f"/proc/{int(out.stdout.split()[0])}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_watch(port: int, query: str, rcvbuf: int = 4096) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.sendall(f"GET /api/v1/pods?watch=true&timeoutSeconds=300{query} HTTP/1.1\r\n"
                 f"Host: x\r\nUser-Agent: {KUBELET}\r\nAccept-Encoding: identity\r\n\r\n"
                 .encode())
    return sock


def read_lines(sock: socket.socket, until: bytes) -> list[dict]:
    """The watch's events (chunked framing removed) up to the first line holding ``until``."""
    sock.settimeout(30)
    pieces: list[bytes] = []
    tail = b""
    while until not in tail or b"}\n" not in tail[tail.find(until):]:  # its whole line
        data = sock.recv(1 << 20)
        assert data, "the watch ended early"
        pieces.append(data)
        tail = tail[-4096:] + data
    body = b"".join(pieces).split(b"\r\n\r\n", 1)[1]
    out: list[bytes] = []
    pos = 0
    while pos < len(body):
        end = body.find(b"\r\n", pos)
        if end < 0:
            break
        n = int(body[pos:end], 16)
        out.append(body[end + 2:end + 2 + n])
        pos = end + 4 + n
    return [json.loads(line) for line in b"".join(out).splitlines()
            if line.strip() and line.endswith(b"}")]


def test_watches_of_the_whole_state_read_it_as_their_clients_take_it(offline_hub):
    hub = offline_hub
    before = worker_rss(hub)
    idle = [open_watch(hub.proxy_port, "") for _ in range(8)]
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 8, timeout=30,
             what="eight offline watches")
    grown = worker_rss(hub) - before
    # Read up front, the state was 8 x ~10 MB (and again as the filters' events).
    assert grown < 30 << 20, f"eight unread watches grew the worker by {grown >> 20} MB"
    # A client that reads gets every object, then the bookmark that ends a watch-list.
    reader = open_watch(hub.proxy_port, "&sendInitialEvents=true&allowWatchBookmarks=true"
                                        "&resourceVersionMatch=NotOlderThan", rcvbuf=0)
    events = read_lines(reader, b"k8s.io/initial-events-end")
    added = [e for e in events if e["type"] == "ADDED"]
    assert len({e["object"]["metadata"]["name"] for e in added}) == PODS == len(added)
    assert events[len(added)]["type"] == "BOOKMARK"
    for s in [*idle, reader]:
        s.close()
