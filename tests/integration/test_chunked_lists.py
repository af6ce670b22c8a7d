"""A big list sent chunked by an HTTPS upstream, in the few-KiB chunks kube-apiserver's Go
server writes, through the hub: the client gets it whole (plain and gzip), the cache
commits it and serves it offline."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesandbox import tls
from tests.fixtures.waiting import wait_for

FLANNEL = "flanneld/v0.26.1"  # a cache agent no filter applies to


def pod_list(n: int) -> bytes:
    items = [{"metadata": {"name": f"pod-{i:05d}", "namespace": "default",
                           "resourceVersion": str(1000 + i), "uid": f"uid-{i}"},
              "spec": {"nodeName": f"node-{i % 7}", "containers": [{"name": "c", "image": "x"}]},
              "status": {"phase": "Running"}} for i in range(n)]
    return json.dumps({"kind": "PodList", "apiVersion": "v1",
                       "metadata": {"resourceVersion": "99999"}, "items": items},
                      separators=(",", ":")).encode()


def chunked(body: bytes, size: int) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
           for i in range(0, len(body), size)]
    return b"".join(out) + b"0\r\n\r\n"


class ChunkedUpstream:
    """An HTTPS apiserver stand-in: /readyz, and /api/v1/pods chunked (gzip when asked)."""

    def __init__(self, pki: tls.TLSMaterial, body: bytes) -> None:
        self.ctx = tls.server_context(pki.server_cert, pki.server_key, None)
        self.plain = chunked(body, 2048)
        self.packed = chunked(gzip.compress(body, 1), 2048)
        self.online = True
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.lsock.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as s:
                f = s.makefile("rb")
                while self.online:
                    head = f.readline()
                    if not head:
                        return
                    fields = {}
                    while (line := f.readline()) not in (b"\r\n", b""):
                        k, _, v = line.decode().partition(":")
                        fields[k.strip().lower()] = v.strip()
                    path = head.split()[1].decode()
                    if path.startswith("/api/v1/pods") and "watch" not in path:
                        gz = "gzip" in fields.get("accept-encoding", "")
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  + (b"Content-Encoding: gzip\r\n" if gz else b"")
                                  + b"Transfer-Encoding: chunked\r\n\r\n"
                                  + (self.packed if gz else self.plain))
                    elif path.startswith(("/readyz", "/healthz", "/livez")):
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    else:
                        body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}'
                        s.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ssl.SSLError):
            return

    def close(self) -> None:
        self.online = False
        self.lsock.close()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[ChunkedUpstream, bytes, Path]]:
    pki = tls.make_self_signed(tmp_path / "pki")
    body = pod_list(3000)
    up = ChunkedUpstream(pki, body)
    yield up, body, Path(pki.ca_cert)
    up.close()


def test_a_list_in_small_chunks_comes_whole_plain_and_gzip_and_is_cached(upstream,
                                                                          hub_factory):
    up, body, ca = upstream
    assert up.plain.count(b"\r\n800\r\n") > 250  # hundreds of 2 KiB chunks
    hub = hub_factory(up.url, extra=["--ca-file", str(ca), "--heartbeat-interval-seconds", "1"])
    status, _, got = hub.get("/api/v1/pods", ua=FLANNEL, **{"Accept-Encoding": "identity"})
    assert status == 200
    assert got == body
    status, headers, packed = hub.get("/api/v1/pods", ua=FLANNEL, **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(packed) == body
    wait_for(lambda: hub.metric("yurthub_cache_commits_total", kind="list") >= 2,
             timeout=30, what="both lists committed")

    up.close()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=20,
             what="the hub sees the cloud gone")
    status, _, offline = hub.get("/api/v1/pods", ua=FLANNEL, **{"Accept-Encoding": "identity"})
    assert status == 200
    assert [p["metadata"]["name"] for p in json.loads(offline)["items"]] == \
        [p["metadata"]["name"] for p in json.loads(body)["items"]]
