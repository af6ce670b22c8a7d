"""Figures for the bounds of issue 13: what a local process can no longer do to the hub.

A sandbox apiserver (in this process) and a real ``python -m yurthub serve`` child; then,
printing figures and asserting nothing (the machine is shared):

- the JSON-patch bomb: 17 ``copy`` operations (under 1 KB) that double the node Lease's
  spec each time (a 138 MB document if applied), sent as kubelet: the answer, its time, and
  the gunicorn worker's RSS (VmRSS, and the peak VmHWM after resetting it) before and after
  ``--bombs`` of them; then whether a list still gets cached;
- a normal JSON patch of the Lease, timed the same way, for comparison;
- ``/metrics`` size after 0, 20, 200 and 2,000 random User-Agents (``--cache-agents '*'``,
  one request each on a kept-alive connection, one in ten a cacheable list).

Usage: python bench/bounds_bench.py [--bombs 5] [--agents 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    KUBELET_UA,
    ROOT,
    HubProcess,
    http_get,
    mem_mb,
    reset_hwm,
    spread,
    stack_banner,
    wait_for,
)

sys.path.insert(0, str(ROOT))
from kubesandbox.server import Sandbox

NODE = "node-0000"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"


def request(port: int, method: str, path: str, body: bytes, ctype: str,
            ua: str = KUBELET_UA) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        t = time.perf_counter()
        conn.request(method, path, body=body, headers={"User-Agent": ua, "Content-Type": ctype})
        r = conn.getresponse()
        data = r.read()
        return r.status, data, time.perf_counter() - t
    finally:
        conn.close()


def bomb() -> bytes:
    ops: list[dict] = [{"op": "add", "path": "/spec/x", "value": "y" * 500}]
    ops += [{"op": "copy", "from": "/spec", "path": f"/spec/c{i}"} for i in range(17)]
    return json.dumps(ops, separators=(",", ":")).encode()


def patch_bomb(hub: HubProcess, sandbox: Sandbox, bombs: int) -> None:
    worker = hub.worker
    assert http_get(hub.proxy_port, LEASE, {"User-Agent": KUBELET_UA})[0] == 200
    wait_for(lambda: (hub.cache_dir / "kubelet/leases.v1.coordination.k8s.io/kube-node-lease"
                      / NODE).exists(), 10, "the lease cached")
    body = bomb()
    print(f"\nJSON-patch bomb: {len(body)} bytes, 17 copy operations, on {LEASE}")
    rss0, _ = mem_mb(worker)
    reset_hwm(worker)
    times, codes = [], set()
    for _ in range(bombs):
        status, data, took = request(hub.proxy_port, "PATCH", LEASE, body,
                                     "application/json-patch+json")
        codes.add(status)
        times.append(took)
    rss1, hwm = mem_mb(worker)
    print(f"  answers: {sorted(codes)} ({json.loads(data).get('reason')}); "
          f"time {spread(times, 1000)} ms")
    print(f"  worker RSS {rss0:.1f} MB before, {rss1:.1f} MB after, peak {hwm:.1f} MB "
          f"(+{hwm - rss0:.1f} MB)")
    ok = json.dumps([{"op": "replace", "path": "/spec/leaseDurationSeconds", "value": 40}])
    normal = [request(hub.proxy_port, "PATCH", LEASE, ok.encode(),
                      "application/json-patch+json")[2] for _ in range(bombs)]
    print(f"  a normal JSON patch of the Lease: {spread(normal, 1000)} ms")
    sandbox.create({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "after-bomb", "namespace": "default"}, "data": {}})
    http_get(hub.proxy_port, "/api/v1/namespaces/default/configmaps",
             {"User-Agent": "kubectl/1"})
    cached = wait_for(lambda: (hub.cache_dir / "kubectl/configmaps.v1.core/default/after-bomb")
                      .exists(), 10, "a list cached after the bombs")
    print(f"  a list after the bombs is cached: {bool(cached)}")


def agents(n: int, rng: random.Random) -> list[str]:
    out = []
    for i in range(n):
        tag = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        out.append(rng.choice([f"agent-{tag}/1.{i}", f"Mozilla/5.0 ({tag}) Gecko/{i}",
                               f"{tag.upper()}-{'x' * rng.randint(1, 200)}/{i}"]))
    return out


def metrics_under_agents(hub: HubProcess, total: int) -> None:
    rng = random.Random(13)
    print("\n/metrics size under random User-Agents (--cache-agents '*'):")
    sent = 0
    conn = http.client.HTTPConnection("127.0.0.1", hub.proxy_port, timeout=30)
    size = len(http_get(hub.serve_port, "/metrics")[1])
    print(f"  {0:>5} agents: {size:>7} bytes")
    for mark in (20, 200, total):
        for i, ua in enumerate(agents(mark - sent, rng)):
            path = "/api/v1/namespaces/default/configmaps" if i % 10 == 0 else "/version"
            conn.request("GET", path, headers={"User-Agent": ua})
            r = conn.getresponse()
            r.read()
        sent = mark
        size = len(http_get(hub.serve_port, "/metrics")[1])
        print(f"  {mark:>5} agents: {size:>7} bytes")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bombs", type=int, default=5)
    ap.add_argument("--agents", type=int, default=2000)
    args = ap.parse_args()
    print(stack_banner())
    work = Path(tempfile.mkdtemp(prefix="yurthub-bounds-", dir="/var/tmp"))
    sandbox = Sandbox(nodes=2, pods_per_node=3, control_port=0).start()
    try:
        hub = HubProcess(work, sandbox.url, work / "cache", node=NODE,
                         extra=["--cache-agents", "*", "--cache-max-collections", "64"]).start()
        try:
            patch_bomb(hub, sandbox, args.bombs)
            metrics_under_agents(hub, args.agents)
        finally:
            hub.stop(15)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
