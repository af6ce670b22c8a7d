"""The soak's parts (bench/soak_flap.py): a relay that can go silent or refuse, informers
of any resource, kubelet's other traffic, the driver that changes the cloud, and the
worker's figures.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kubernetes.client as kc

from tests.fixtures.hub import Hub, _children
from tests.fixtures.sandboxes import SandboxProcess
from tests.fixtures.web import http
from tests.integration.informer import Informer
from tests.integration.kubeletlike import UA as KUBELET
from tests.integration.kubeletlike import KubeletLike

NODE = "node-0000"
OPERATOR = "soak-operator/v0.1"
SELECTOR = "soak=yes"


class Relay:
    """Passes bytes both ways; ``pause()`` stops passing them (they wait in the sockets,
    connections stay open, as on a link dropping packets for a while); ``resume()`` goes on."""

    def __init__(self, port: int, target: str) -> None:
        host, _, tport = target.rpartition("//")[2].partition(":")
        self.target = (host, int(tport))
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(conn,), daemon=True).start()

    def _connect(self, conn: socket.socket) -> None:
        self.flowing.wait()  # a SYN on a silent link waits too (the hub times out)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _api(url: str, ua: str) -> kc.ApiClient:
    conf = kc.Configuration()
    conf.host = url
    api = kc.ApiClient(conf)
    api.user_agent = ua
    return api


class AnyInformer(Informer):
    """tests/integration/informer.Informer for any list function."""

    def __init__(self, url: str, ua: str, what: str, **selectors: str) -> None:
        super().__init__(url, ua, "services", **selectors)
        self.what = what
        core, disc = kc.CoreV1Api(self.api), kc.DiscoveryV1Api(self.api)
        self.func = {"services": core.list_service_for_all_namespaces,
                     "endpointslices": disc.list_endpoint_slice_for_all_namespaces,
                     "namespaces": core.list_namespace, "nodes": core.list_node,
                     "configmaps": core.list_config_map_for_all_namespaces}[what]
        self.name = f"{ua.split('/')[0]}:{what}"
        self.errors = _Stamped()


class _Stamped(list):  # type: ignore[type-arg]
    """A list of errors whose entries say when they happened (to match them with flaps)."""

    def append(self, item: Any) -> None:
        super().append(f"{time.strftime('%H:%M:%S')} {item}")


def view(store: dict[Any, dict[str, Any]]) -> dict[Any, str]:
    return {k: o["metadata"]["resourceVersion"] for k, o in store.items()}


def listed(url: str, path: str, ua: str) -> dict[tuple[str, str], str] | None:
    try:
        status, _, body = http(url + path, headers={"User-Agent": ua,
                                                    "Accept": "application/json"}, timeout=10)
    except OSError:
        return None
    if status != 200:
        return None
    doc = json.loads(body)
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]):
            o["metadata"]["resourceVersion"] for o in doc["items"]}


PATHS = {"services": "/api/v1/services",
         "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
         "namespaces": "/api/v1/namespaces", "nodes": "/api/v1/nodes",
         "configmaps": f"/api/v1/configmaps?labelSelector={SELECTOR}"}


class NodeExtras(threading.Thread):
    """What kubelet does besides kubeletlike: node status every 10 s, ConfigMaps and
    TokenRequests of its pods.  Every answer is counted by (what, online?, status)."""

    def __init__(self, url: str, kubelet: KubeletLike, cloud_up: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.kubelet, self.cloud_up = url, kubelet, cloud_up
        self.counts: dict[str, int] = {}
        self.odd: list[str] = []
        self.last_ok_heartbeat = ""  # the node status a 200 acknowledged last
        self.halt = threading.Event()

    def _count(self, what: str, status: int, body: bytes) -> None:
        key = f"{what} {'online' if self.cloud_up.is_set() else 'offline'} {status}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if status >= 500 or status in (400, 409, 422):
            self.odd.append(f"{time.strftime('%H:%M:%S')} {key} {body[:300]!r}")
        if status == 500 or (status >= 400 and not body.lstrip().startswith(b"{")):
            self.odd.append(f"{time.strftime('%H:%M:%S')} NON-STATUS {key} {body[:300]!r}")

    def _do(self, what: str, method: str, path: str, body: Any = None,
            ctype: str = "application/json") -> int:
        headers = {"User-Agent": KUBELET, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = ctype
        try:
            status, _, raw = http(self.url + path, method=method, headers=headers,
                                  body=json.dumps(body).encode() if body is not None else None,
                                  timeout=35)
        except OSError:
            status, raw = 0, b""
        self._count(what, status, raw)
        return status

    def run(self) -> None:
        while not self.halt.wait(10):
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            patch = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                                "reason": "KubeletReady",
                                                "lastHeartbeatTime": stamp}]}}
            if self._do("node-status", "PATCH", f"/api/v1/nodes/{NODE}/status", patch,
                        "application/strategic-merge-patch+json") == 200:
                self.last_ok_heartbeat = stamp
            namespaces = {p["metadata"]["namespace"] for p in list(self.kubelet.pods.values())}
            for ns in sorted(namespaces):
                self._do("configmap", "GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")
                self._do("token", "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": {"audiences": ["https://kubernetes.default.svc"],
                                   "expirationSeconds": 3600}})


class Driver(threading.Thread):
    """Changes the cloud through the sandbox's control port (up even while the API is away)."""

    def __init__(self, sb: SandboxProcess, pod_template: dict[str, Any],
                 slices: list[dict[str, Any]], nodes: list[dict[str, Any]],
                 rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.sb, self.tpl, self.slices, self.rng = sb, pod_template, slices, rng
        self.nodes = nodes
        self.pods: list[str] = []
        self.cms: dict[str, dict[str, Any]] = {}
        self.n = 0
        self.changes = 0
        self.errors: list[str] = []
        self.halt = threading.Event()
        self.go = threading.Event()  # cleared: the cloud holds still (offline checks)
        self.go.set()

    def step(self) -> None:
        self.n += 1
        r = self.rng.random()
        if r < 0.25:
            if len(self.pods) < 6 or self.rng.random() < 0.5:
                name = f"soak-{self.n}"
                pod = json.loads(json.dumps(self.tpl))
                md = pod["metadata"]
                md["name"] = name
                for k in ("uid", "resourceVersion", "generateName", "ownerReferences"):
                    md.pop(k, None)
                self.sb.put(pod)
                self.pods.append(name)
            else:
                name = self.pods.pop(self.rng.randrange(len(self.pods)))
                self.sb.delete("pods", name, self.tpl["metadata"]["namespace"])
        elif r < 0.55:
            es = self.rng.choice(self.slices)
            for ep in es.get("endpoints") or []:
                ep["addresses"] = [f"10.{self.rng.randrange(244, 250)}.{self.rng.randrange(256)}."
                                   f"{self.rng.randrange(1, 255)}"]
            es["metadata"].pop("resourceVersion", None)
            self.sb.put(es)
        elif r < 0.85:
            name = f"soak-cm-{self.rng.randrange(8)}"
            if name in self.cms and self.rng.random() < 0.25:
                del self.cms[name]
                self.sb.delete("configmaps", name, "default")
            else:
                cm = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": name, "namespace": "default",
                                   "labels": {"soak": "yes" if self.rng.random() < 0.8 else "no"}},
                      "data": {"n": str(self.n)}}
                self.cms[name] = cm
                self.sb.put(cm)
        else:
            node = self.rng.choice(self.nodes)  # flannel's view: a label of another node
            node["metadata"].setdefault("labels", {})["soak"] = str(self.n)
            node["metadata"].pop("resourceVersion", None)
            self.sb.put(node)
        self.changes += 1

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(0.3, 1.5)):
            self.go.wait()
            try:
                self.step()
            except Exception as e:
                self.errors.append(repr(e))


def worker_pid(hub: Hub) -> int | None:
    assert hub.proc is not None
    kids = _children(hub.proc.pid)
    return kids[0] if kids else None


def proc_stats(pid: int | None) -> tuple[int, int, int]:
    if pid is None:
        return 0, 0, 0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, AttributeError):
        return 0, 0, 0
    return rss, threads, fds


def free_base(start: int) -> int:
    """The first base from ``start`` (steps of 20) whose ports base+1..base+11 bind now:
    the range is inside the kernel's ephemeral one, so other processes' connections may
    hold some of them."""
    for base in range(start, start + 400, 20):
        try:
            for port in (base + 1, base + 2, base + 3, base + 10, base + 11):
                socket.create_server(("127.0.0.1", port)).close()
        except OSError:
            continue
        return base
    raise SystemExit("no free ports")
