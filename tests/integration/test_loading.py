"""While the hub recovers a big cache at start (a node's reboot), it already answers.

A big cache on a slow disk (an SD card, a cold page cache) takes a long time to recover; the
worker used to recover it before it served anything, so kubelet's requests and the probes
waited in the listen backlog, and past gunicorn's ``timeout`` (60 s) gunicorn 20.1 killed the
worker and booted another, which started recovering again: the hub never served.  Here the
recovery is held at a FIFO the test opens when it is done looking, so nothing depends on time.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

from tests.fixtures.hub import Hub
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PODS = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000"

# The hub exactly as `python -m yurthub serve` runs it, but its cache's recovery waits for
# the test: it opens the FIFO for reading, which blocks until the test opens it for writing.
HELD = """\
import sys
from yurthub.storage import disk
from yurthub.cli import main

opening = disk.DiskStore.open
gate = sys.argv.pop(1)

def held_open(self):
    with open(gate, "rb") as fifo:
        fifo.read()
    return opening(self)

disk.DiskStore.open = held_open
sys.exit(main(sys.argv[1:]))
"""


class HeldHub(Hub):
    def __init__(self, tmp: Path, server: str) -> None:
        super().__init__(tmp, server)
        self.fifo = tmp / "recovery-gate"
        os.mkfifo(self.fifo)

    def args(self) -> list[str]:
        argv = super().args()
        assert argv[1:4] == ["-m", "yurthub", "serve"]
        # -c: the modules come from the working directory, as with -m
        return [argv[0], "-c", HELD, str(self.fifo), "serve", *argv[4:]]

    def release(self) -> None:
        with open(self.fifo, "wb"):
            pass


def test_the_hub_answers_while_it_recovers_its_cache(sandbox, tmp_path):
    hub = HeldHub(tmp_path, sandbox.url)
    hub.start(wait=False)
    released = False
    try:
        # The probes answer: alive, and not ready saying why.
        wait_for(lambda: _healthz(hub), 30, what="healthz while the cache is recovered")
        status, _, body = http(hub.hub_url + "/v1/readyz", timeout=10)
        assert status == 503 and b"starting" in body, body
        assert http(hub.hub_url + "/metrics", timeout=10)[0] == 200
        # kubelet gets a Status it retries (client-go honours Retry-After on a 503), never a
        # hang and never an empty list.
        for path in (PODS, "/api/v1/nodes/node-0000",
                     "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0000"):
            status, headers, raw = http(hub.url + path, headers={"User-Agent": KUBELET},
                                        timeout=10)
            doc = json.loads(raw)
            assert status == 503 and headers.get("Retry-After") == "1", (path, raw)
            assert doc["kind"] == "Status" and doc["code"] == 503, doc
            assert doc["reason"] == "ServiceUnavailable" and "starting" in doc["message"], doc
            assert doc["details"]["retryAfterSeconds"] == 1
        threading.Thread(target=hub.release, daemon=True).start()
        released = True
        wait_for(hub.ready, 30, what="the hub ready once its cache is recovered")
        status, _, raw = hub.get(PODS)
        assert status == 200 and [p["spec"]["nodeName"] for p in json.loads(raw)["items"]] \
            == ["node-0000"] * 3
    finally:
        if not released:
            threading.Thread(target=hub.release, daemon=True).start()
        hub.stop()
    assert "WORKER TIMEOUT" not in hub.log() and "Traceback" not in hub.log()


def _healthz(hub: Hub) -> bool:
    try:
        return http(hub.hub_url + "/v1/healthz", timeout=10)[0] == 200
    except OSError:
        return False  # gunicorn is not listening yet, or (before) the worker never answered


PROBE_TIMEOUT = 6  # seconds; the restarted hub waits that long for its first probe


def test_a_restart_with_a_silent_cloud_answers_kubelet_from_the_cache_at_once(sandbox,
                                                                              tmp_path):
    """After a reboot the cloud may take connections and answer none (a dead link behind a
    load balancer).  The hub knows that before it serves (YurtHub probes at construction):
    kubelet's first list is answered from the cache, not held until the read timeout."""
    # A probe timeout longer than kubelet waits: the old hub served before its first probe
    # had decided, and held the list it sent upstream until the probe failed.
    hub = Hub(tmp_path, sandbox.url,
              extra=["--heartbeat-timeout-seconds", str(PROBE_TIMEOUT)]).start()
    assert hub.get(PODS)[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet",
                                resource="pods.v1.core") == 3, what="kubelet's pods cached")
    assert hub.stop() == 0
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # takes connections, answers none
    try:
        hub.server = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hub.start(wait=False)
        wait_for(hub.started, 30, what="the restarted hub's start")
        status, headers, raw = http(hub.url + PODS, headers={"User-Agent": KUBELET},
                                    timeout=PROBE_TIMEOUT - 2)
        assert status == 200 and len(json.loads(raw)["items"]) == 3, raw[:300]
        assert "served from the yurthub cache" in headers.get("Warning", "")
    finally:
        hub.stop()
        silent.close()
