"""The operator's tools on a big cache: ``yurthub cache ls`` and ``verify`` on a tree of
10,000 pods (the real command, a child process), and the status document and page built
from the open store, as ``/v1/status`` and ``/status`` build them.

Prints figures only (median, min-max over the rounds).  The tree is written once by the
store itself, under /var/tmp (the disk a cache would be on).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, spread, stack_banner

sys.path.insert(0, str(ROOT))
from kubesandbox.seed import pod_entries
from yurthub.cache.inventory import store_rows
from yurthub.cache.mutation import load_meta
from yurthub.cache.views import CollectionState, ViewKey
from yurthub.storage import CollectionKey, DiskStore

PODS = CollectionKey("kubelet", "", "v1", "pods", True)


def build(root: Path, n: int) -> int:
    total = 0
    with DiskStore(str(root), meta_loader=load_meta) as store:
        state = CollectionState("Pod", "v1", "PodList")
        state.synced(ViewKey("", "", ""), 100)
        with store.transaction(PODS) as txn:
            entries, _ = pod_entries(max(1, -(-n // 100)), 100, 1)
            for e in entries[:n]:
                data = e.data  # a PodList item as the sandbox renders it, kind and apiVersion first
                total += len(data)
                txn.put(e.namespace, e.name, data, load_meta(PODS, e.namespace, e.name, data))
            txn.set_state(state.to_json())
            txn.commit()
    return total


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{cmd[3:]} failed: {r.stdout[-500:]} {r.stderr[-500:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(stack_banner())
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        root = Path(tmp) / "cache"
        t0 = time.perf_counter()
        size = build(root, args.objects)
        print(f"tree: {args.objects} pods, {size / 2**20:.1f} MiB, written in "
              f"{time.perf_counter() - t0:.1f}s")
        base = [sys.executable, "-m", "yurthub", "cache", "--disk-cache-path", str(root)]
        cases: dict[str, list[float]] = {"python -m yurthub --version": [], "cache ls": [],
                                         "cache verify": []}
        for _ in range(args.rounds):
            cases["python -m yurthub --version"].append(
                timed([sys.executable, "-m", "yurthub", "--version"]))
            cases["cache ls"].append(timed([*base, "ls"]))
            cases["cache verify"].append(timed([*base, "verify"]))
        for name, values in cases.items():
            print(f"{name:<30} {spread(values, 1000, '{:.0f}')} ms")
        with DiskStore(str(root), meta_loader=load_meta) as store:
            doc_t, page_t = [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                rows = store_rows(store)
                doc = {"collections": [r.to_json(time.time()) for r in rows]}
                doc_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                json.dumps(doc)
                page_t.append(time.perf_counter() - t0)
            print(f"{'status rows from the store':<30} {spread(doc_t, 1000, '{:.2f}')} ms")
            print(f"{'  as JSON':<30} {spread(page_t, 1000, '{:.2f}')} ms")


if __name__ == "__main__":
    main()
