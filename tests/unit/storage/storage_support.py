"""Shared helpers of the storage tests: keys, object bodies, a meta loader, a tree walk."""

from __future__ import annotations

import json
import os
from typing import Any

from yurthub.storage import CollectionKey, DiskStore, RecoveryReport

PODS = CollectionKey("kubelet", "", "v1", "pods", True)
NODES = CollectionKey("kubelet", "", "v1", "nodes", False)
LEASES = CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True)


def body(name: str, ns: str = "", **extra: Any) -> bytes:
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": md, **extra}).encode()


def meta_loader(ck: CollectionKey, raw: bytes) -> dict[str, Any]:
    """Rebuilds what the tests put as meta: the object's "tx" and "labels"."""
    obj = json.loads(raw)
    if "metadata" not in obj:
        raise ValueError("not a Kubernetes object")
    return {"tx": obj.get("tx"), "labels": obj["metadata"].get("labels", {})}


def open_store(root: Any, **kw: Any) -> DiskStore:
    kw.setdefault("meta_loader", meta_loader)
    store = DiskStore(str(root), **kw)
    store.open()
    return store


def reopen(root: Any, **kw: Any) -> tuple[DiskStore, RecoveryReport]:
    """A store on root, opened, and the report of that open."""
    kw.setdefault("meta_loader", meta_loader)
    store = DiskStore(str(root), **kw)
    return store, store.open()


def tree(root: Any) -> dict[str, int]:
    """Every path under root (relative) -> st_mode, without following symlinks."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, str(root))] = os.lstat(p).st_mode
    return out


def leftovers(root: Any) -> list[str]:
    """Transient names (staging dirs, temp files, journals) anywhere in the tree."""
    return [p for p in tree(root)
            if os.path.basename(p).startswith(".") or os.path.basename(p) == "_journal"]
