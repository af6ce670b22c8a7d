"""The multiplexer's cached copy after a full disk: mended once there is room again.

The shared state lives in memory and its copy in the cache (component
``yurthub-multiplexer``) is what a restart without the cloud serves.  A list the cache could
not take while the disk was full was never taken again: the upstream watch kept the state
current, caching resumed and readyz said all was well, yet the copy held nothing, and a
restart without the cloud answered kube-proxy's and coredns's Service lists with 503.
"""

from __future__ import annotations

import pytest

from tests.fixtures.tmpfs import TmpfsHub, can_mount
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

MUX = "yurthub-multiplexer"


def _service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": "default",
                         "annotations": {"note": "y" * 400}},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}}


def test_a_shared_list_the_full_disk_refused_is_cached_once_there_is_room(sandbox, tmp_path):
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    for i in range(600):
        sandbox.put(_service(i))
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=8192, filler_kb=7900,
                   extra=["--watch-bookmark-interval", "1"])
    try:
        hub.start()
        status, _, body = hub.get("/api/v1/services", ua="kube-proxy/v1.32.0")
        assert status == 200 and body.count(b'"svc-') == 600  # answered from the state
        wait_for(lambda: hub.metric("yurthub_cache_stopped", reason="no-space") == 1,
                 what="caching to stop on the full disk")
        _room_again_then_cached(hub, sandbox)
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()



def _room_again_then_cached(hub, sandbox) -> None:
    """Room again on the full disk; the upstream watch breaks (as it does every few
    minutes): the feed watches again, and its copy, which holds no list, is listed again
    first and cached."""
    hub.in_namespace("rm", "-f", str(hub.cache_dir / "_filler"))
    wait_for(lambda: http(hub.hub_url + "/v1/readyz")[0] == 200, timeout=15,
             what="caching to resume")
    sandbox.cut_connections()
    wait_for(lambda: hub.metric("yurthub_cache_objects", component=MUX,
                                resource="services.v1.core") >= 600, timeout=20,
             what="the shared list cached once there is room")

def _pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i}", "namespace": "default",
                         "annotations": {"note": "z" * 400}},
            "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "busybox"}]}}


def test_a_shared_list_that_passed_while_caching_was_stopped_is_cached_once_there_is_room(
        sandbox, tmp_path):
    # The other order: caching stopped already (kubelet's pod list filled the disk) when
    # kube-proxy's first Service list started the feed.  That list passed the cache untouched,
    # which no count of drops or stops saw: the copy, holding no list, was taken for one whose
    # commit is on its way, and never mended.
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    for i in range(600):
        sandbox.put(_service(i))
        sandbox.put(_pod(i))
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=8192, filler_kb=7900,
                   extra=["--watch-bookmark-interval", "1"])
    try:
        hub.start()
        status, _, _ = hub.get("/api/v1/pods", ua="kubelet/v1.32.0")
        assert status == 200
        wait_for(lambda: hub.metric("yurthub_cache_stopped", reason="no-space") == 1,
                 what="caching to stop on the full disk")
        status, _, body = hub.get("/api/v1/services", ua="kube-proxy/v1.32.0")
        assert status == 200 and body.count(b'"svc-') == 600  # answered from the state
        _room_again_then_cached(hub, sandbox)
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()
