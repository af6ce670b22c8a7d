"""Shared helpers of the storage tests: keys, object bodies, a meta loader, a tree walk."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from yurthub.storage import CollectionKey, DiskStore, RecoveryReport

PODS = CollectionKey("kubelet", "", "v1", "pods", True)
NODES = CollectionKey("kubelet", "", "v1", "nodes", False)
LEASES = CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True)


def body(name: str, ns: str = "", **extra: Any) -> bytes:
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": md, **extra}).encode()


def meta_loader(ck: CollectionKey, ns: str, name: str, raw: bytes) -> dict[str, Any]:
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


def spares(root: Any) -> list[str]:
    """The spare dirs (``.spare.<id>``: files a big commit replaced, kept for the next)."""
    return [p for p in tree(root) if os.path.basename(p).startswith(".spare.")]


def leftovers(root: Any) -> list[str]:
    """Transient names (staging dirs, temp files, journals) anywhere in the tree; spare
    dirs are not leftovers, but must hold nothing but plain files."""
    found = tree(root)
    kept = spares(root)
    for p, mode in found.items():
        if any(p.startswith(s + "/") for s in kept):
            assert stat.S_ISREG(mode), f"{p} in a spare dir is not a plain file"
    return [p for p in found if not any(p == s or p.startswith(s + "/") for s in kept)
            and (os.path.basename(p).startswith(".") or os.path.basename(p) == "_journal")]
