"""Big lists from an HTTPS apiserver through the hub: the body read straight from the TLS
socket reaches the client whole, plain and gzip, and the cache holds the same list."""

from __future__ import annotations

import gzip
import json
import ssl
import urllib.request
from pathlib import Path

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for

TOKEN = "tls-list-token"
# A cache agent no response filter applies to: the hub passes the body through as read.
FLANNEL = "flanneld/v0.26.1"


@pytest.fixture
def secure(tmp_path: Path):
    sb = Sandbox(nodes=3, pods_per_node=150, token=TOKEN,
                 self_signed_dir=str(tmp_path / "pki")).start()
    yield sb
    sb.stop()


def direct(sb: Sandbox, ca: Path, path: str) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(sb.url + path, headers={"Authorization": f"Bearer {TOKEN}",
                                                         "Accept-Encoding": "identity"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return r.read()


def names(body: bytes) -> list[tuple[str, str]]:
    return [(p["metadata"]["name"], p["metadata"]["resourceVersion"])
            for p in json.loads(body)["items"]]


def test_a_big_tls_list_through_the_hub_is_whole_plain_gzip_and_offline(secure, hub_factory,
                                                                         tmp_path):
    ca = tmp_path / "pki" / "ca.crt"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    hub = hub_factory(secure.url, extra=["--token-file", str(token_file), "--ca-file",
                                         str(ca), "--heartbeat-interval-seconds", "1"])
    want = direct(secure, ca, "/api/v1/pods")
    assert len(want) > 256 << 10  # read from the socket directly, in many TLS records
    expected = names(want)
    assert len(expected) == 450

    status, headers, body = hub.get("/api/v1/pods", ua=FLANNEL,
                                    **{"Accept-Encoding": "identity"})
    assert status == 200
    assert int(headers["Content-Length"]) == len(body)
    assert names(body) == expected
    status, headers, packed = hub.get("/api/v1/pods", ua=FLANNEL, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert int(headers["Content-Length"]) == len(packed)
    assert names(gzip.decompress(packed)) == expected
    wait_for(lambda: hub.metric("yurthub_cache_commits_total", kind="list") >= 2,
             timeout=30, what="both lists committed")

    secure.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=15,
             what="the hub sees the cloud gone")
    status, _, body = hub.get("/api/v1/pods", ua=FLANNEL, **{"Accept-Encoding": "identity"})
    assert status == 200
    assert names(body) == expected
