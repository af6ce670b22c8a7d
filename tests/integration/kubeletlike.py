"""A client that does what kubelet does through the hub, and notes every error it would act on.

kubelet lists its pods by ``spec.nodeName``, watches them, patches their status, renews its
node Lease, and gets its Node.  An empty pod list, a failed status patch, a failed Lease
renewal or a missing Node would make the real kubelet act (kill pods, fail to report, let the
node go NotReady); each is recorded.  A watch that ends is simply re-established, as
client-go's reflector does; a 410 leads to a relist.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from tests.fixtures.web import http, read_watch_events

UA = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
# client-go's maxRetries for answers that carry Retry-After
RETRIES = 10


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeletLike:
    def __init__(self, base_url: str, node: str) -> None:
        self.base = base_url
        self.node = node
        self.errors: list[str] = []
        self.unreachable = 0   # the hub itself was down (restarting): kubelet just retries
        self.gone: set[str] = set()  # pods a status patch found deleted (tests check upstream)
        self.pods: dict[str, dict[str, Any]] = {}
        self.rv = ""
        self.rounds = 0
        self.answered = 0  # calls answered 2xx (from the cloud or from the hub's cache)
        self.watch_events = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None,
              content_type: str = "application/json") -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"User-Agent": UA, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for _ in range(RETRIES + 1):
            try:
                status, answer, raw = http(self.base + path, method=method, headers=headers,
                                           body=data, timeout=10)
            except OSError as e:
                return 0, str(e)
            # client-go's checkWait: a 429 or 5xx with Retry-After is tried again (a hub
            # still recovering its cache at start answers so).
            wait = answer.get("Retry-After", "")
            if not (status == 429 or status >= 500) or not wait.isdigit() \
                    or self._stop.wait(int(wait)):
                break
        if 200 <= status < 300:
            self.answered += 1
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def _error(self, what: str) -> None:
        self.errors.append(f"{time.strftime('%H:%M:%S')} {what}")

    def _failed(self, status: int, what: str, doc: Any, *, write: bool = False) -> None:
        """A non-2xx answer is an error; no answer at all (status 0) is retried, and so is a
        write answered 502: the cloud went away while it was in flight, so the hub cannot
        know whether it arrived and says so (kubelet retries it at its next sync)."""
        if status == 0 or (write and status == 502):
            self.unreachable += 1
        else:
            self._error(f"{what}: {status} {doc}")

    # -- what kubelet does ------------------------------------------------------------------

    def relist(self) -> None:
        status, doc = self._call("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.node}")
        if status != 200:
            self._failed(status, "list pods", doc)
            return
        if not doc["items"]:
            self._error("list pods: EMPTY (kubelet would kill every pod)")
        self.pods = {p["metadata"]["name"]: p for p in doc["items"]}
        self.rv = doc["metadata"]["resourceVersion"]

    def heartbeat(self) -> None:
        status, lease = self._call("GET", f"{LEASES}/{self.node}")
        if status == 404:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.node, "namespace": "kube-node-lease"},
                     "spec": {"holderIdentity": self.node, "leaseDurationSeconds": 40}}
            status, lease = self._call("POST", LEASES, lease)
            if status != 201:
                self._failed(status, "create lease", lease, write=True)
            return
        if status != 200:
            self._failed(status, "get lease", lease)
            return
        lease["spec"]["renewTime"] = _now()
        status, doc = self._call("PUT", f"{LEASES}/{self.node}", lease)
        if status != 200:
            self._failed(status, "renew lease", doc, write=True)

    def report(self) -> None:
        status, node = self._call("GET", f"/api/v1/nodes/{self.node}")
        if status != 200:
            self._failed(status, "get node", node)
        if not self.pods:
            return
        name = sorted(self.pods)[self.rounds % len(self.pods)]
        ns = self.pods[name]["metadata"]["namespace"]
        patch = {"metadata": {"uid": self.pods[name]["metadata"].get("uid")},
                 "status": {"$setElementOrder/conditions": [{"type": "Ready"}],
                            "conditions": [{"type": "Ready", "status": "True",
                                            "lastProbeTime": _now()}]}}
        status, doc = self._call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", patch,
                                 "application/strategic-merge-patch+json")
        if status == 404:
            # Deleted upstream: kubelet drops its status.  The test checks it really is gone.
            self.gone.add(name)
            self.pods.pop(name, None)
        elif status != 200:
            self._failed(status, f"patch pod status {name}", doc, write=True)

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            if not self.rv:
                self.relist()
                time.sleep(0.2)
                continue
            host, port = self.base.rsplit("//", 1)[1].split(":")
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                time.sleep(0.2)
                continue
            sock.settimeout(None)
            try:
                sock.sendall((f"GET /api/v1/pods?watch=true&resourceVersion={self.rv}"
                              f"&allowWatchBookmarks=true&timeoutSeconds=20"
                              f"&fieldSelector=spec.nodeName%3D{self.node} HTTP/1.1\r\n"
                              f"Host: x\r\nUser-Agent: {UA}\r\n\r\n").encode())
            except OSError:  # the hub went away between accept and send: retry, as kubelet does
                sock.close()
                time.sleep(0.2)
                continue
            events: list[tuple[float, dict]] = []
            reader = threading.Thread(target=read_watch_events, args=(sock, events), daemon=True)
            reader.start()
            watched = False
            while reader.is_alive() and not self._stop.is_set():
                reader.join(0.2)
                watched = watched or bool(events)
                self._apply(events)
            watched = watched or bool(events)
            self._apply(events)
            sock.close()
            if not watched:
                self._stop.wait(0.2)  # no watch (the hub still starting): back off, as kubelet

    def _apply(self, events: list[tuple[float, dict]]) -> None:
        while events:
            _, ev = events.pop(0)
            obj = ev["object"]
            if ev["type"] == "ERROR":
                self.rv = ""  # 410: relist, as the reflector does
                continue
            self.watch_events += 1
            self.rv = obj["metadata"]["resourceVersion"]
            if ev["type"] == "DELETED":
                self.pods.pop(obj["metadata"]["name"], None)
            elif ev["type"] in ("ADDED", "MODIFIED"):
                self.pods[obj["metadata"]["name"]] = obj

    def _main_loop(self) -> None:
        while not self._stop.is_set():
            self.heartbeat()
            self.report()
            if self.rounds % 10 == 0:
                self.relist()
            self.rounds += 1
            self._stop.wait(0.3)

    def start(self) -> KubeletLike:
        self.relist()
        for target in (self._main_loop, self._watch_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
