"""A cache manager on a real DiskStore in tmp_path, fed through real tees."""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub import config
from yurthub.cache.manager import CacheManager
from yurthub.cache.mutation import load_meta
from yurthub.cache.views import parse_selectors
from yurthub.kube.requestinfo import parse_request_info
from yurthub.kube.resources import builtin
from yurthub.metrics import Metrics
from yurthub.storage import CollectionKey, DiskStore, Quota

FIXTURES = K8S_TESTDATA

PODS = CollectionKey("kubelet", "", "v1", "pods", True)
POD_RT = builtin("", "v1", "pods")
NODE_SEL = "fieldSelector=spec.nodeName%3Dnode-a"


def stored(manager: CacheManager) -> dict[tuple[str, str], int]:
    """The cached pods' versions, by (namespace, name)."""
    return {k: e.meta["rv"] for k, e in manager.store.entries(PODS).items()}


def listed(manager: CacheManager, ns: str = "", labels: str = "", fields: str = "",
           limit: int | None = None, cont: str = "") -> tuple[Any, list[dict[str, Any]]]:
    """An offline list of the cached pods: (its page, the decoded items)."""
    want = parse_selectors(ns, labels, fields, POD_RT)
    page = manager.reader.list(PODS, POD_RT, want, limit=limit, continue_token=cont)
    return page, [json.loads(b) for b in manager.reader.bodies(PODS, page.keys)]


def pod(name: str, node: str = "node-a", rv: int = 10, ns: str = "default",
        labels: dict[str, str] | None = None, phase: str = "Running") -> dict[str, Any]:
    """A pod shaped like the Kubernetes project's own serialization of one."""
    base = json.loads((FIXTURES / "core.v1.Pod.json").read_text())
    p = copy.deepcopy(base)
    md = p["metadata"]
    md.update(name=name, namespace=ns, resourceVersion=str(rv), uid=f"uid-{name}",
              labels=labels if labels is not None else {"app": "web"})
    for k in ("generateName", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        md.pop(k, None)
    p["spec"]["nodeName"] = node
    p["status"]["phase"] = phase
    return p


def item_bytes(obj: dict[str, Any]) -> bytes:
    """An item as built-in lists carry it: no kind/apiVersion."""
    return json.dumps({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")},
                      separators=(",", ":")).encode()


def list_body(items: list[dict[str, Any]], rv: int, cont: str = "") -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    head = json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": meta})[:-1]
    return (head + ',"items":[').encode() + b",".join(item_bytes(i) for i in items) + b"]}"


def event_line(etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"


class Feeder:
    """Sends response bodies through the manager exactly as the remote proxy does."""

    def __init__(self, manager: CacheManager) -> None:
        self.manager = manager

    def respond(self, path: str, body: bytes | list[bytes], *, method: str = "GET",
                ua: str = "kubelet/v1.32.0", whole: bool = True, gz: bool = False,
                status: int = 200, accept: str = "application/json",
                content_type: str = "application/json",
                asked_at: float | None = None) -> bool:
        """``asked_at``: when the request was sent (``time.monotonic``; None: now)."""
        p, _, q = path.partition("?")
        info = parse_request_info(method, p, q)
        headers = {"Content-Type": content_type}
        chunks = body if isinstance(body, list) else [body]
        if gz:
            chunks = [gzip.compress(b"".join(chunks))]
            headers["Content-Encoding"] = "gzip"
        tee = self.manager.tee_for(info, ua.split("/")[0], accept, status, headers, asked_at)
        if tee is None:
            return False
        for c in chunks:
            tee.write(c)
        tee.close(whole)
        assert self.manager.writer.wait_idle(10)
        return True


@contextlib.contextmanager
def running_manager(tmp_path: Path, quota: Quota | None = None,
                    **settings: str) -> Iterator[CacheManager]:
    """A started CacheManager on a DiskStore under ``tmp_path`` (node ``node-a``), with any
    extra settings; stopped and closed on exit."""
    cfg = config.load(None, {"node_name": "node-a", "disk_cache_path": str(tmp_path / "c"),
                             **settings})
    store = DiskStore(cfg.disk_cache_path, history_limit=cfg.watch_history_size,
                      meta_loader=load_meta, quota=quota)
    store.open()
    m = CacheManager(cfg, store, Metrics())
    m.start()
    try:
        yield m
    finally:
        m.stop()
        store.close()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[CacheManager]:
    with running_manager(tmp_path, cache_agents="kubectl") as m:
        yield m


@pytest.fixture
def feed(manager: CacheManager) -> Feeder:
    return Feeder(manager)
