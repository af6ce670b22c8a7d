"""Upgraded connections (exec, attach, port-forward) go through the hub as YurtHub relays
them: the real kubectl's ``exec`` works through the hub as it works against the cloud."""

from __future__ import annotations

import json
import socket

from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for


def a_pod(sandbox) -> str:
    return next(p["metadata"]["name"] for p in sandbox.list_objects("pods")
                if p["metadata"]["namespace"] == "default")


def test_kubectl_exec_through_the_hub(sandbox, hub, tmp_path):
    pod = a_pod(sandbox)
    direct = Kubectl(tmp_path, sandbox.url)
    through = Kubectl(tmp_path, hub.url)
    for kubectl in (direct, through):
        r = kubectl("exec", pod, "-n", "default", "--", "echo", "hello", "edge")
        assert r.stdout == "hello edge\n", r.stderr
        r = kubectl("exec", pod, "-n", "default", "--", "false", check=False)
        assert r.returncode == 127, r.stderr  # the command's exit code, as the cloud said
    # The session went to the cloud as an upgrade (no fallback to a plain request).
    assert any(r.path.endswith(f"/pods/{pod}/exec") and r.status == 101
               for r in sandbox.requests())


def test_an_upgrade_the_cloud_refuses_is_its_status(sandbox, hub):
    """Without a subprotocol the cloud answers 400; the client gets that answer."""
    with socket.create_connection(("127.0.0.1", hub.proxy_port), timeout=10) as s:
        s.sendall(f"GET /api/v1/namespaces/default/pods/{a_pod(sandbox)}/exec?command=ls "
                  "HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "User-Agent: kubectl/v1.32.4\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["message"] == "Upgrade request required"


def test_kubectl_exec_offline_fails_clearly(sandbox, hub, tmp_path):
    pod = a_pod(sandbox)
    kubectl = Kubectl(tmp_path, hub.url)
    kubectl("get", "pods", "-n", "default", "-o", "name")  # discovery, cached
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")
    r = kubectl("exec", pod, "-n", "default", "--", "echo", "hi", check=False)
    assert r.returncode != 0 and r.stdout == ""
    assert "cloud is unreachable" in r.stderr, r.stderr
