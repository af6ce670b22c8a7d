"""The filter hook: a filter changes what the client sees and, identically, what is cached.

No filter ships yet, so this runs an in-process hub with a test filter (the hub's
composition root takes filters), behind werkzeug's threaded server.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http, read_watch_events
from yurthub import config
from yurthub.app import Hub

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


class HideSecretPods:
    name = "hidesecretpods"

    def applies(self, component: str, verb: str, resource: str) -> bool:
        return component == "kubelet" and resource == "pods"

    def filter(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        md = obj.get("metadata") or {}
        if (md.get("labels") or {}).get("secret") == "yes":
            return None
        md.setdefault("annotations", {})["filtered"] = "yes"
        return obj


@pytest.fixture
def filtered_hub(sandbox, tmp_path):
    cfg = config.load(None, {"server_addr": sandbox.url, "node_name": "node-0000",
                             "disk_cache_path": str(tmp_path / "cache"),
                             "heartbeat_interval_seconds": "1"})
    hub = Hub(cfg, filters=[HideSecretPods()])
    hub.start()
    server = make_server("127.0.0.1", 0, hub.proxy_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hub, f"http://127.0.0.1:{server.port}", server.port, tmp_path / "cache"
    server.shutdown()
    hub.stop()


def pod(name: str, secret: bool) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"secret": "yes" if secret else "no"}},
            "spec": {"nodeName": "node-0000", "containers": [{"name": "c", "image": "x"}]}}


def test_lists_gets_and_watches_are_filtered_for_client_and_cache(sandbox, filtered_hub):
    hub, url, port, cache = filtered_hub
    sandbox.put(pod("hidden", secret=True))
    sandbox.put(pod("shown", secret=False))
    status, headers, body = http(url + "/api/v1/pods", headers={"User-Agent": KUBELET,
                                                                "Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers
    items = {i["metadata"]["name"]: i for i in json.loads(body)["items"]}
    assert "hidden" not in items and items["shown"]["metadata"]["annotations"]["filtered"] == "yes"
    path = cache / "kubelet/pods.v1.core/default/shown"
    wait_for(path.exists, what="the filtered list in the cache")
    assert json.loads(path.read_bytes())["metadata"]["annotations"]["filtered"] == "yes"
    assert not (cache / "kubelet/pods.v1.core/default/hidden").exists()
    # Other components are not filtered.
    body = http(url + "/api/v1/pods", headers={"User-Agent": "curl/8"})[2]
    assert "hidden" in {i["metadata"]["name"] for i in json.loads(body)["items"]}
    # A get of a dropped object is a 404 for the filtered client.
    assert http(url + "/api/v1/namespaces/default/pods/hidden",
                headers={"User-Agent": KUBELET})[0] == 404
    # In a watch, an object that a filter starts dropping is DELETED for the client.
    rv = json.loads(http(url + "/api/v1/pods", headers={"User-Agent": KUBELET})[2])[
        "metadata"]["resourceVersion"]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=5 "
                 f"HTTP/1.1\r\nHost: x\r\nUser-Agent: {KUBELET}\r\n\r\n".encode())
    events: list = []
    threading.Thread(target=read_watch_events, args=(sock, events), daemon=True).start()
    sandbox.patch("pods", "shown", {"metadata": {"labels": {"secret": "yes"}}},
                  namespace="default")
    wait_for(lambda: events, what="the watch event")
    assert events[0][1]["type"] == "DELETED"
    assert events[0][1]["object"]["metadata"]["name"] == "shown"
    wait_for(lambda: not path.exists(), what="the cache to follow the filtered watch")
    sock.close()
