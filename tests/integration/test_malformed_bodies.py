"""A request body the HTTP layer cannot read (a chunk size that is not hex, a chunk with no
terminator) is the client's error: a 400 Status, one log line at most, never a 500 with a
traceback, and never held against the cloud."""

from __future__ import annotations

import json
import socket

import pytest

from tests.fixtures.waiting import wait_for

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
BAD_BODIES = [b"zz\r\n{}\r\n0\r\n\r\n",          # not a hex chunk size
              b"2\r\n{}XX0\r\n\r\n"]               # a chunk without its CRLF


def send(port: int, method: str, path: str, body: bytes) -> tuple[int, dict]:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {KUBELET}\r\n"
            "Content-Type: application/merge-patch+json\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    if b"Transfer-Encoding: chunked" in rest.partition(b"\r\n\r\n")[0]:
        payload = payload.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(status_line.split()[1]), json.loads(payload)


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_malformed_chunked_body_is_a_400_online_and_offline(sandbox, hub, body):
    node = "/api/v1/nodes/node-0000"
    assert hub.get("/api/v1/nodes")[0] == 200  # kubelet's Node cached: it may patch offline
    status, answer = send(hub.proxy_port, "PATCH", node + "/status", body)
    assert (status, answer["kind"], answer["code"]) == (400, "Status", 400), answer
    assert hub.metric("node_yurthub_server_healthy_status") == 1
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, what="offline")
    status, answer = send(hub.proxy_port, "PATCH", node + "/status", body)
    assert (status, answer["kind"], answer["code"]) == (400, "Status", 400), answer
    assert "Traceback" not in hub.log()
