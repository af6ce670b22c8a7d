"""Benchmark of yurthub.storage: big list commits, single-object commit latency, startup time.

Prints figures, asserts nothing.  Run: ``.venv/bin/python bench/storage_bench.py [--dir D]``
(the directory should be on the disk the cache will live on; default: a temp dir).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

from yurthub.storage import CollectionKey, DiskStore

PODS = CollectionKey("kubelet", "", "v1", "pods", True)
LEASES = CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True)


def pod(i: int, gen: int, size: int) -> tuple[str, str, bytes, dict[str, Any]]:
    ns, name = f"ns-{i % 100}", f"pod-{i}"
    obj = {"kind": "Pod", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": ns, "resourceVersion": str(gen * 100000 + i),
                        "labels": {"app": f"app-{i % 37}", "gen": str(gen)}},
           "spec": {"nodeName": f"node-{i % 10}", "containers": [{"name": "c", "image": "x"}]},
           "status": {"phase": "Running"}}
    raw = json.dumps(obj)
    raw = raw[:-1] + ', "pad": "' + "x" * max(0, size - len(raw) - 12) + '"}'
    meta = {"rv": gen * 100000 + i, "labels": obj["metadata"]["labels"],
            "fields": {"spec.nodeName": f"node-{i % 10}"}}
    return ns, name, raw.encode(), meta


def meta_loader(ck: CollectionKey, body: bytes) -> dict[str, Any]:
    obj = json.loads(body)
    md = obj["metadata"]
    return {"rv": int(md["resourceVersion"]), "labels": md.get("labels", {}),
            "fields": {"spec.nodeName": obj.get("spec", {}).get("nodeName", "")}}


def big_commits(root: str, durability: str, n: int, size: int, rounds: int) -> None:
    store = DiskStore(root, durability=durability, meta_loader=meta_loader)
    store.open()
    for gen in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        with store.transaction(PODS) as txn:
            for i in range(n):
                txn.put(*pod(i, gen, size))
            t1 = time.perf_counter()
            txn.set_state({"rv": gen})
            txn.commit()
        t2 = time.perf_counter()
        cpu = time.process_time() - c0
        store.flush()  # frees the spares beyond those kept (storage.shared.Shared), timed apart
        t3 = time.perf_counter()
        what = "new" if gen == 0 else "replace"
        print(f"  {durability:6} {what:7} {n} objects ({n * size / 1e6:.0f} MB): "
              f"{t2 - t0:.2f}s = {n / (t2 - t0):,.0f} objects/s "
              f"(staging {t1 - t0:.2f}s, commit {t2 - t1:.2f}s, cpu {cpu:.2f}s; "
              f"later flush() {t3 - t2:.2f}s)")
    store.close()


def single_commits(root: str, durability: str, count: int) -> None:
    store = DiskStore(root, durability=durability)
    store.open()
    for label, with_history in (("put", False), ("put+state+history", True)):
        times = []
        for i in range(count):
            ns, name, raw, meta = pod(i % 50, i, 2000)
            t0 = time.perf_counter()
            with store.transaction(LEASES) as txn:
                txn.put(ns, name, raw, meta)
                if with_history:
                    txn.set_state({"rv": i})
                    txn.append_history([{"rv": i, "type": "MODIFIED", "object": raw.decode()}])
                txn.commit()
            times.append(time.perf_counter() - t0)
        times.sort()
        p99 = times[int(len(times) * 0.99)]
        print(f"  {durability:6} single {label:18}: p50 {statistics.median(times) * 1e3:.2f} ms, "
              f"p99 {p99 * 1e3:.2f} ms ({count} commits)")
    store.close()


def startup(root: str) -> None:
    for label, drop_index in (("warm index", False), ("cold (no _index)", True)):
        if drop_index:
            for comp in os.listdir(root):
                p = os.path.join(root, comp, PODS.dirname, "_index")
                if os.path.exists(p):
                    os.unlink(p)
        store = DiskStore(root, meta_loader=meta_loader)
        t0 = time.perf_counter()
        report = store.open()
        dt = time.perf_counter() - t0
        store.close()
        print(f"  open() {label:17}: {dt:.2f}s for {report.objects} objects "
              f"(reindexed {report.reindexed})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=None, help="where to create the test cache")
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=5000, help="bytes per object")
    ap.add_argument("--singles", type=int, default=500)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="yurthub-bench-", dir=args.dir)
    try:
        print(f"storage benchmark in {base}")
        for durability in ("syncfs", "fsync"):
            root = os.path.join(base, durability)
            big_commits(root, durability, args.objects, args.size, rounds=2)
            single_commits(root, durability, args.singles)
        startup(os.path.join(base, "syncfs"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
