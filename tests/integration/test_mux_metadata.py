"""Metadata-only lists and watches (PartialObjectMetadata) of a pool-scoped resource offline.

Online they go to the cloud as before.  Offline the cache held no copy of them but a
component's own, made only if that component had asked for them online: a metadata
informer (client-go's metadatainformer, the controller-runtime's metadata-only watches)
of Services got a 503 from a hub whose shared state held every Service, while a plain list,
a get and kubectl's Table were answered from it.
"""

from __future__ import annotations

import http.client as httpclient
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.test_mux import HUB_ARGS, SVC, direct, service

LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


@contextmanager
def watch_lines(base: str, path: str, ua: str, accept: str, **query: str
                ) -> Iterator[Iterator[dict[str, Any]]]:
    u = urlsplit(base)
    conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=30)
    qs = "&".join(f"{k}={quote(v)}" for k, v in {"watch": "true", **query}.items())
    conn.request("GET", f"{path}?{qs}", headers={"User-Agent": ua, "Accept": accept})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()

    def events() -> Iterator[dict[str, Any]]:
        while line := resp.readline():
            yield json.loads(line)
    try:
        yield events()
    finally:
        conn.close()


def metadata_list(base: str, path: str, ua: str) -> tuple[int, dict[str, Any]]:
    status, _, body = http(base + path, headers={"User-Agent": ua, "Accept": LIST})
    return status, json.loads(body)


def test_offline_metadata_lists_and_watches_come_from_the_shared_state(sandbox: Sandbox,
                                                                        hub_factory):
    sandbox.put(service("web-a", app="web"))
    sandbox.put(service("db-a", app="db"))
    hub = hub_factory(sandbox.url, extra=HUB_ARGS)
    status, _, _ = hub.get(SVC, ua="proxy-agent/1")  # the shared state is made
    assert status == 200
    cloud = direct(sandbox, SVC, labelSelector="app=web")
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 20,
             what="the hub sees the cloud gone")
    status, got = metadata_list(hub.url, SVC + "?labelSelector=app%3Dweb", "meta-agent/1")
    assert status == 200, got
    assert (got["kind"], got["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert got["metadata"]["resourceVersion"] == cloud["metadata"]["resourceVersion"]
    assert got["items"] == [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]} for o in cloud["items"]]
    with watch_lines(hub.url, SVC, "meta-agent/1", accept=ONE,
                     resourceVersion=got["metadata"]["resourceVersion"],
                     allowWatchBookmarks="true", timeoutSeconds="30") as lines:
        first = next(lines)
        assert first["type"] == "BOOKMARK"
        assert first["object"]["kind"] == "PartialObjectMetadata"
    with watch_lines(hub.url, SVC, "meta-agent/1", accept=ONE, timeoutSeconds="30",
                     labelSelector="app=db") as lines:
        ev = next(lines)
        assert (ev["type"], ev["object"]["kind"], ev["object"]["metadata"]["name"]) == \
            ("ADDED", "PartialObjectMetadata", "db-a")
        assert "spec" not in ev["object"]
