"""An informer made of the real ``kubernetes`` Python client, as a node component runs one.

It lists, then watches from the list's resourceVersion (with bookmarks), keeps the objects
in a dict and records every event it applied; a watch that ends is resumed from the last
version seen, a 410 (an ERROR event or an ApiException) makes it list again, as client-go's
reflector does.  Each runs in its own thread with its own User-Agent (its component).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import kubernetes.client as kc
from kubernetes import watch
from kubernetes.client.rest import ApiException

Key = tuple[str, str]


def _key(obj: dict[str, Any]) -> Key:
    md = obj.get("metadata") or {}
    return md.get("namespace", ""), md.get("name", "")


class Informer(threading.Thread):
    def __init__(self, base_url: str, user_agent: str, resource: str, *,
                 label_selector: str = "", field_selector: str = "") -> None:
        super().__init__(name=f"informer-{user_agent}", daemon=True)
        conf = kc.Configuration()
        conf.host = base_url
        self.api = kc.ApiClient(conf)
        self.api.user_agent = user_agent
        if resource == "services":
            self.func = kc.CoreV1Api(self.api).list_service_for_all_namespaces
        else:
            self.func = kc.DiscoveryV1Api(self.api).list_endpoint_slice_for_all_namespaces
        self.selectors = {"label_selector": label_selector, "field_selector": field_selector}
        self.store: dict[Key, dict[str, Any]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []  # every applied event, in order
        self.list_rvs: list[str] = []
        self.errors: list[str] = []
        self.rv = ""
        self.synced = threading.Event()
        self._halt = threading.Event()
        self._watch: watch.Watch | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._list()
                self._watch_loop()
            except ApiException as e:
                if e.status != 410:
                    self.errors.append(f"{e.status}: {e.reason}")
                    self._halt.wait(0.5)
            except Exception as e:  # recorded for the test to see
                self.errors.append(repr(e))
                self._halt.wait(0.5)

    def _list(self) -> None:
        resp = self.func(_preload_content=False, **self.selectors)
        doc = json.loads(resp.data)
        with self._lock:
            self.store = {_key(o): o for o in doc["items"]}
            self.rv = doc["metadata"]["resourceVersion"]
            self.list_rvs.append(self.rv)
        self.synced.set()

    def _watch_loop(self) -> None:
        while not self._halt.is_set():
            self._watch = w = watch.Watch()
            for ev in w.stream(self.func, resource_version=self.rv, allow_watch_bookmarks=True,
                               timeout_seconds=30, **self.selectors):
                etype, obj = ev["type"], ev["raw_object"]
                if etype == "ERROR":
                    if obj.get("code") == 410:
                        return  # list again
                    self.errors.append(f"watch error {obj}")
                    return
                with self._lock:
                    self.rv = obj["metadata"]["resourceVersion"]
                    if etype == "BOOKMARK":
                        continue
                    self.events.append((etype, obj))
                    if etype == "DELETED":
                        self.store.pop(_key(obj), None)
                    else:
                        self.store[_key(obj)] = obj
                if self._halt.is_set():
                    w.stop()

    def snapshot(self) -> dict[Key, dict[str, Any]]:
        with self._lock:
            return dict(self.store)

    def stop(self) -> None:
        self._halt.set()
        if self._watch is not None:
            self._watch.stop()
        self.join(10)
