"""A cloud that goes silent (a link that drops packets, an apiserver that hangs): requests
already on their way are answered from the cache once the hub has seen the cloud go, not
after their read timeout.  A real hub, a relay in front of the sandbox that stops passing
bytes, and kubelet's requests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

NODE = "node-0000"
KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PODS = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}"
# A node's components wait this long for an answer; the hub waits 60 s for the cloud's.
CLIENT_TIMEOUT = 30.0
# One failed probe (of 2 s, the default) declares a server gone, not three in a row: what
# these tests check holds for any count, and each retry added 2 s to both.
PROBES = ["--heartbeat-failed-retry", "1"]


class SilentRelay:
    """Passes bytes between its clients and ``target`` until ``silent`` is set; then
    nothing goes either way (connections stay open), as a link dropping packets."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition("//")[2].partition(":")
        self.target = (host, int(port))
        self.silent = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if self.silent.is_set():
                    self.closed.wait()  # dropped; both ends held open, as a dead link does
                if not data or self.closed.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def relay(sandbox) -> Iterator[SilentRelay]:
    r = SilentRelay(sandbox.url)
    yield r
    r.close()


def test_requests_sent_as_the_cloud_went_silent_are_answered_from_the_cache(relay,
                                                                            hub_factory):
    hub = hub_factory(relay.url, node=NODE, extra=PROBES)
    node_path = f"/api/v1/nodes/{NODE}"
    for path in (PODS, node_path):  # kubelet's pods and node are in the cache
        assert hub.get(path, ua=KUBELET)[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet") >= 4, 20,
             "kubelet's pods and node in the cache")

    relay.silent.set()
    answers: dict[str, tuple[int, bytes] | str] = {}

    def ask(path: str) -> None:
        try:
            status, _, body = http(hub.url + path, headers={"User-Agent": KUBELET},
                                   timeout=CLIENT_TIMEOUT)
            answers[path] = (status, body)
        except OSError as e:  # the client gave up waiting
            answers[path] = repr(e)

    askers = [threading.Thread(target=ask, args=(p,)) for p in (PODS, node_path)]
    for t in askers:
        t.start()
    # Sent while the hub still took the cloud for healthy: they went to the cloud.
    assert hub.metric("node_yurthub_server_healthy_status") == 1
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 30,
             "the hub to see the cloud gone")
    for t in askers:
        t.join(CLIENT_TIMEOUT + 5)

    pods = answers[PODS]
    assert isinstance(pods, tuple) and pods[0] == 200, pods
    assert {p["spec"]["nodeName"] for p in json.loads(pods[1])["items"]} == {NODE}
    node = answers[node_path]
    assert isinstance(node, tuple) and node[0] == 200, node
    assert json.loads(node[1])["metadata"]["name"] == NODE


def test_reads_sent_to_a_server_that_went_silent_are_answered_by_the_other(relay, sandbox,
                                                                           hub_factory):
    # Two servers, the silent one first: what was sent to it before the health checker
    # declared it gone is asked again of the other, not left to wait 60 s (and then answered
    # from the cache while a server could answer).
    hub = hub_factory(f"{relay.url},{sandbox.url}", node=NODE,
                      extra=["--lb-mode", "priority", *PROBES])
    node_path = f"/api/v1/nodes/{NODE}"
    for path in (PODS, node_path):
        assert hub.get(path, ua=KUBELET)[0] == 200
    relay.silent.set()
    sandbox.put({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "after-the-silence", "namespace": "default"},
                 "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]}})
    answers: dict[str, tuple[int, dict[str, str], bytes] | str] = {}

    def ask(path: str) -> None:
        try:
            answers[path] = http(hub.url + path, headers={"User-Agent": KUBELET},
                                 timeout=CLIENT_TIMEOUT)
        except OSError as e:  # the client gave up waiting
            answers[path] = repr(e)

    askers = [threading.Thread(target=ask, args=(p,)) for p in (PODS, node_path)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(CLIENT_TIMEOUT + 5)
    # one server declared gone (the silent one), the other healthy all along
    assert hub.metric("node_yurthub_server_healthy_status") == 1

    pods = answers[PODS]
    assert isinstance(pods, tuple) and pods[0] == 200, pods
    assert "yurthub cache" not in pods[1].get("Warning", ""), pods[1]  # the cloud's answer
    assert "after-the-silence" in {p["metadata"]["name"] for p in json.loads(pods[2])["items"]}
    node = answers[node_path]
    assert isinstance(node, tuple) and node[0] == 200, node
    assert json.loads(node[2])["metadata"]["name"] == NODE


def test_a_list_whose_body_stalls_before_its_first_byte_is_cut_with_the_cloud(relay, sandbox,
                                                                             hub_factory):
    # The cloud sent the list's headers, then nothing (an apiserver that hung mid-answer, a
    # link that began dropping packets): once the hub has declared the cloud gone, the list
    # is answered from the cache, not after the hub's 60 s read timeout.
    hub = hub_factory(relay.url, node=NODE, extra=PROBES)
    assert hub.get(PODS, ua=KUBELET)[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_objects", component="kubelet") >= 3, 20,
             "kubelet's pods in the cache")
    sandbox.stall_next(match="/api/v1/pods?fieldSelector")  # headers go out, then silence
    answer: list[tuple[int, bytes] | str] = []

    def ask() -> None:
        try:
            status, _, body = http(hub.url + PODS, headers={"User-Agent": KUBELET},
                                   timeout=CLIENT_TIMEOUT)
            answer.append((status, body))
        except OSError as e:  # the client gave up waiting
            answer.append(repr(e))

    asker = threading.Thread(target=ask)
    asker.start()
    wait_for(lambda: not sandbox.state()["faults"]["rules"], 10, "the list to reach the cloud")
    relay.silent.set()  # the health checker's probes go unanswered too
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 30,
             "the hub to see the cloud gone")
    asker.join(CLIENT_TIMEOUT + 5)
    sandbox.release()

    assert answer and isinstance(answer[0], tuple) and answer[0][0] == 200, answer
    assert {p["spec"]["nodeName"] for p in json.loads(answer[0][1])["items"]} == {NODE}
