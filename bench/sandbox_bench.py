"""Figures for the sandbox apiserver: big lists, many watches, memory.

Starts ``yurthub sandbox`` in its own process (so this client does not share its GIL) and
prints, without asserting anything:

- startup and seeding time, and RSS after seeding;
- the time and throughput of a full pod list (plain and gzip) and of a node-scoped list;
- end-to-end latency (write -> event parsed by the client) of N concurrent watches while a
  writer changes an object R times a second, p50/p99/max, and events lost;
- RSS after the watches.

Usage: python bench/sandbox_bench.py [--nodes 100] [--pods-per-node 100] [--watches 200]
       [--rates 20,100] [--seconds 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import urllib3
from _watchbench import WatchReader


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_sandbox(nodes: int, pods_per_node: int) -> tuple[subprocess.Popen[str], str, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "yurthub", "sandbox", "--port", "0", "--nodes", str(nodes),
         "--pods-per-node", str(pods_per_node), "--history-size", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("sandbox apiserver: "):
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, line.split(": ", 1)[1].strip(), time.monotonic() - started


def timed_get(pm: urllib3.PoolManager, url: str, gzip: bool) -> tuple[float, int]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {"Accept-Encoding": "identity"}
    started = time.monotonic()
    r = pm.request("GET", url, headers=headers, preload_content=False, decode_content=False)
    size = sum(len(c) for c in r.stream(1 << 20))
    r.release_conn()
    return time.monotonic() - started, size


def bench_lists(url: str, repeat: int) -> None:
    pm = urllib3.PoolManager()
    plain_size = 0
    for label, path, gzip in (("pods, plain", "/api/v1/pods", False),
                              ("pods, gzip", "/api/v1/pods", True),
                              ("pods of one node (kubelet)",
                               "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0001", False),
                              ("pods, limit=500 first page", "/api/v1/pods?limit=500", False)):
        runs = [timed_get(pm, url + path, gzip) for _ in range(repeat)]
        best = min(t for t, _ in runs)
        median = statistics.median(t for t, _ in runs)
        size = runs[0][1]
        # gzip throughput is counted in uncompressed bytes, what the client gets to decode
        payload = plain_size if gzip else size
        plain_size = plain_size or size
        print(f"  {label:<30} {size / 1e6:8.2f} MB  median {median * 1000:7.1f} ms  "
              f"best {best * 1000:7.1f} ms  {payload / 1e6 / median:8.0f} MB/s")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def bench_watches(url: str, pid: int, watches: int, rates: list[int], seconds: float) -> None:
    pm = urllib3.PoolManager(maxsize=4)
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "tick", "namespace": "default"}, "data": {"ts": "0"}}
    pm.request("POST", url + "/api/v1/namespaces/default/configmaps", body=json.dumps(cm),
               headers={"Content-Type": "application/json"})
    parts = urlsplit(url)
    for rate in rates:
        rv = json.loads(pm.request("GET", url + "/api/v1/namespaces/default/configmaps").data)[
            "metadata"]["resourceVersion"]
        socks = []
        for _ in range(watches):
            s = socket.create_connection((parts.hostname, parts.port))
            s.sendall((f"GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                       f"&fieldSelector=metadata.name%3Dtick HTTP/1.1\r\nHost: x\r\n\r\n")
                      .encode())
            socks.append(s)
        reader = WatchReader(socks)
        reader.record_after = 0.0  # every event counts
        reader.start()
        deadline = time.monotonic() + 10
        while reader.headers_seen < watches and time.monotonic() < deadline:
            time.sleep(0.05)
        writes = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            body = json.dumps({"data": {"ts": repr(time.time())}})
            pm.request("PATCH", url + "/api/v1/namespaces/default/configmaps/tick", body=body,
                       headers={"Content-Type": "application/merge-patch+json"})
            writes += 1
            next_at = started + writes / rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        expected = writes * watches
        deadline = time.monotonic() + 10
        while len(reader.latencies) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        lat = reader.latencies
        print(f"  {watches} watches, {writes / seconds:5.0f} writes/s "
              f"({writes * watches / seconds:7.0f} events/s delivered): "
              f"p50 {pct(lat, 0.5) * 1000:6.1f} ms  p99 {pct(lat, 0.99) * 1000:6.1f} ms  "
              f"max {max(lat, default=float('nan')) * 1000:6.1f} ms  "
              f"lost {expected - len(lat)}  sandbox RSS {rss_mb(pid):.0f} MB")
        reader.stop_event.set()
        reader.join(2)
        for s in socks:
            s.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods-per-node", type=int, default=100)
    p.add_argument("--watches", type=int, default=200)
    p.add_argument("--rates", default="20,100", help="writes per second, comma-separated")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    proc, url, startup = start_sandbox(args.nodes, args.pods_per_node)
    try:
        pods = args.nodes * args.pods_per_node
        print(f"sandbox {url}: {pods} pods on {args.nodes} nodes, up (with seeding) in "
              f"{startup:.2f} s, RSS {rss_mb(proc.pid):.0f} MB")
        print("lists:")
        bench_lists(url, args.repeat)
        print(f"  sandbox RSS after lists {rss_mb(proc.pid):.0f} MB")
        print("watches:")
        bench_watches(url, proc.pid, args.watches, [int(r) for r in args.rates.split(",")],
                      args.seconds)
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
