"""kube-proxy's view of EndpointSlices through the hub, kept by the real ``kubernetes`` client.

An informer as client-go's reflector runs it: list, then watch from the list's
resourceVersion; a watch that ends cleanly is resumed from the last resourceVersion seen
(no relist: only 410 Expired or a failure lists again, as the hub makes a watch end when
what the client should see changed).  The client's User-Agent says
which component it is (``kube-proxy/...`` by default).  Every event and relist is recorded.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client, watch

KUBE_PROXY = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"


def api_client(url: str, user_agent: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = url
    conf.retries = False
    c = client.ApiClient(conf)
    c.user_agent = user_agent
    return c


def addresses(es: Any) -> list[str]:
    return [a for ep in (es.endpoints or []) for a in ep.addresses]


class EndpointSliceInformer:
    """EndpointSlices of every namespace as one client sees them: name -> addresses."""

    def __init__(self, url: str, user_agent: str = KUBE_PROXY) -> None:
        self.api = client.DiscoveryV1Api(api_client(url, user_agent))
        self.slices: dict[str, list[str]] = {}
        self.ports: dict[str, list[int]] = {}
        self.events: list[tuple[str, str, list[str]]] = []
        self.relists = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="informer")

    def start(self) -> EndpointSliceInformer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(15)

    def snapshot(self) -> dict[str, list[str]]:
        with self._lock:
            return dict(self.slices)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self.api.list_endpoint_slice_for_all_namespaces()
            except Exception as e:  # the hub restarting, a 503 while it is not ready
                self.errors.append(f"list: {e}")
                self._stop.wait(0.3)
                continue
            with self._lock:
                self.slices = {s.metadata.name: addresses(s) for s in listed.items}
                self.ports = {s.metadata.name: [p.port for p in (s.ports or [])]
                              for s in listed.items}
                self.relists += 1
            self._watch_from(listed.metadata.resource_version)

    def _watch_from(self, rv: str) -> None:
        """Watch from ``rv`` until the watch fails: a watch that merely ends is resumed from
        the last resourceVersion seen, as client-go's reflector does (no relist); 410
        Expired (or any other failure) returns, and the caller lists again."""
        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for ev in self._watch.stream(self.api.list_endpoint_slice_for_all_namespaces,
                                             resource_version=rv, timeout_seconds=120):
                    obj = ev["object"]
                    with self._lock:
                        name = obj.metadata.name
                        rv = obj.metadata.resource_version
                        if ev["type"] == "DELETED":
                            self.slices.pop(name, None)
                        else:
                            self.slices[name] = addresses(obj)
                        self.events.append((ev["type"], name, addresses(obj)))
            except client.ApiException as e:
                if e.status != 410:
                    self.errors.append(f"watch: {e}")
                return
            except Exception as e:  # a broken stream: relist, as client-go does
                self.errors.append(f"watch: {e}")
                return


def flip_discards(sandbox: Any) -> None:
    """Three changes kube-proxy's filters see as ADDED, DELETED, MODIFIED: web-lb stops being
    discarded, web-lb-kept starts being discarded, web-nodeport gets a new label."""
    sandbox.patch("services", "web-lb", {"metadata": {"annotations": {
        "svc.openyurt.io/discard": "false"}}}, namespace="default")
    sandbox.patch("services", "web-lb-kept", {"metadata": {"annotations": {
        "svc.openyurt.io/discard": "true"}}}, namespace="default")
    sandbox.patch("services", "web-nodeport", {"metadata": {"labels": {"x": "y"}}},
                  namespace="default")
