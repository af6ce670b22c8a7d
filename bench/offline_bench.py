"""Figures for serving from the cache while the cloud is away (yurthub edge mode).

A sandbox apiserver (100 nodes x 100 pods, in this process) fills a real
``python -m yurthub serve`` child's cache with 10,000 pods (one ``GET /api/v1/pods`` through
the hub as kubelet); the sandbox then goes offline and the script waits until ``/metrics``
shows ``node_yurthub_server_healthy_status`` 0.  Then, printing median and min-max spread
over several runs and asserting nothing (the machine is shared):

- the client-visible time of an offline list of the 10,000 cached pods (plain, and as the
  Table kubectl asks for, printed by the hub, run by run side by side), and of one node's
  pods (``fieldSelector=spec.nodeName=<node>``, 100 of them), in the hub that filled the
  cache and again after a restart;
- start -> ready with 10,000 cached objects, cloud still offline: process start ->
  ``/v1/readyz`` 200 -> the first successful offline list (kubelet's node-scoped list), and
  the recovery time the hub logs;
- the gunicorn worker's RSS (VmRSS, VmHWM): idle after a restart, with 200 open offline
  watches (``watch=true&resourceVersion=<list rv>&fieldSelector=spec.nodeName=<node>``),
  and the peak while answering full offline lists.

Usage: python bench/offline_bench.py [--nodes 100] [--pods-per-node 100] [--repeat 5]
       [--restarts 3] [--watches 200] [--py-spy DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    KUBELET_UA,
    ROOT,
    HubProcess,
    PySpy,
    http_get,
    med,
    mem_mb,
    reset_hwm,
    spread,
    stack_banner,
    threads_of,
    wait_for,
)
from _proxydata import timed_get, wait_commit

sys.path.insert(0, str(ROOT))
from kubesandbox.server import Sandbox

APOS = "'"
KUBELET = {"User-Agent": KUBELET_UA, "Accept": "application/json",
           "Accept-Encoding": "identity"}
TABLE = {**KUBELET, "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}


def node_path(node: str) -> str:
    return f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"


def offline_lists(hub: HubProcess, nodes: list[str], repeat: int, label: str,
                  out: dict[str, list[float]], notes: list[str]) -> str:
    """Time full and node-scoped offline lists; returns the full list's resourceVersion."""
    worker = hub.worker
    reset_hwm(worker)
    rv = ""
    for i in range(repeat):
        start, end, size, status = timed_get(hub.proxy_port, "/api/v1/pods", KUBELET)
        out.setdefault(f"{label}: all pods", []).append(end - start)
        if status != 200:
            notes.append(f"{label}: full list answered {status}")
        # The same list as kubectl asks for it: a Table the hub prints from the cache.
        start, end, tsize, status = timed_get(hub.proxy_port, "/api/v1/pods", TABLE)
        out.setdefault(f"{label}: all pods as a Table", []).append(end - start)
        out.setdefault("size: all pods as a Table", []).append(tsize)
        if status != 200:
            notes.append(f"{label}: Table answered {status}")
        if i == 0:
            _, body = http_get(hub.proxy_port, "/api/v1/pods", KUBELET, timeout=60)
            doc = json.loads(body)
            rv = doc["metadata"]["resourceVersion"]
            out.setdefault(f"{label}: items (all)", []).append(len(doc["items"]))
            out.setdefault("size: all pods", []).append(size)
    out.setdefault(f"{label}: peak RSS over full lists", []).append(mem_mb(worker)[1])
    for i in range(repeat):
        node = nodes[(i * 37) % len(nodes)]
        start, end, size, status = timed_get(hub.proxy_port, node_path(node), KUBELET)
        out.setdefault(f"{label}: one node's pods", []).append(end - start)
        if status != 200:
            notes.append(f"{label}: node list answered {status}")
        if i == 0:
            _, body = http_get(hub.proxy_port, node_path(node), KUBELET)
            out.setdefault(f"{label}: items (node)", []).append(len(json.loads(body)["items"]))
    return rv


def open_watches(hub: HubProcess, nodes: list[str], n: int, rv: str
                 ) -> tuple[list[socket.socket], float, int, int]:
    """n offline watches, open once the hub counts them (``yurthub_open_watches``).

    Returns (sockets, seconds until the hub counted n, responses whose headers arrived
    within 2 s more, of which with status 200).
    """
    socks = []
    t0 = time.monotonic()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", hub.proxy_port))
        s.sendall((f"GET /api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
                   f"&fieldSelector=spec.nodeName%3D{nodes[i % len(nodes)]}&timeoutSeconds=300"
                   f" HTTP/1.1\r\nHost: bench\r\nUser-Agent: {KUBELET_UA}\r\n"
                   f"Accept: application/json\r\n\r\n").encode())
        socks.append(s)
    wait_for(lambda: hub.metric("yurthub_open_watches", source="local") >= n, 60,
             f"{n} open local watches", interval=0.05)
    counted = time.monotonic() - t0
    sel = selectors.DefaultSelector()
    heads: dict[socket.socket, bytes] = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        heads[s] = b""
    seen = ok = 0
    deadline = time.monotonic() + 2.0
    while seen < n and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            heads[s] += data
            if b"\r\n\r\n" in heads[s] or not data:
                sel.unregister(s)
                seen += 1
                ok += heads[s].startswith(b"HTTP/1.1 200")
    sel.close()
    return socks, counted, seen, ok


def restart(work: Path, server: str, cache_dir: Path, node: str, nodes: list[str]
            ) -> tuple[HubProcess, float, float, float]:
    """A new hub on the filled cache: (hub, start->ready, start->first list, recovery s)."""
    hub = HubProcess(work, server, cache_dir, node=node,
                     extra=["--threads", "256", "--heartbeat-interval-seconds", "1"])
    hub.start(wait=False)
    t0 = hub.started

    def listed() -> bool:
        try:
            status, _ = http_get(hub.proxy_port, node_path(nodes[0]), KUBELET, timeout=10)
        except OSError:
            return False
        return status == 200

    try:
        wait_for(hub.ready, 30, "the restarted hub's /v1/readyz", interval=0.005)
        ready = time.monotonic() - t0
        wait_for(listed, 30, "the first offline list after the restart", interval=0.005)
        first = time.monotonic() - t0
    except BaseException:
        hub.stop(5)
        raise
    # "cache tree <dir> ready: <summary> (<seconds>s)" (RecoveryReport.summary)
    m = re.findall(r"cache tree .* ready: .*\(([0-9.]+)s\)$", hub.log(), re.MULTILINE)
    return hub, ready, first, float(m[-1]) if m else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods-per-node", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5, help="runs of each offline list")
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--watches", type=int, default=200)
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                   help="record py-spy profiles of the hub worker into DIR")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, cache)")
    args = p.parse_args()
    started = time.monotonic()
    print(stack_banner())
    work = Path(tempfile.mkdtemp(prefix="yurthub-offline-bench-", dir="/var/tmp"))
    cache_dir = work / "cache"
    sandbox = Sandbox(nodes=args.nodes, pods_per_node=args.pods_per_node, port=0,
                      control_port=0).start()
    server = sandbox.url
    hub: HubProcess | None = None
    fig: dict[str, list[float]] = {}
    notes: list[str] = []
    try:
        hub = HubProcess(work, server, cache_dir, node="node-0000",
                         extra=["--threads", "256", "--heartbeat-interval-seconds", "1"]).start()
        before = hub.metric("yurthub_cache_commits_total", kind="list")
        t0 = time.monotonic()
        _, body = http_get(hub.proxy_port, "/api/v1/pods", KUBELET, timeout=120)
        t1 = time.monotonic()
        committed, why = wait_commit(hub, before)
        nodes = sorted(set(re.findall(r'"nodeName":"([^"]+)"', body.decode())))
        pods = body.count(b'"nodeName"')
        print(f"\nfilled the cache: {pods} pods on {len(nodes)} nodes, {len(body) / 1e6:.1f} MB "
              f"listed through the hub in {t1 - t0:.2f} s, committed "
              + (f"{committed - t1:.2f} s later" if committed else f"NOT ({why})"))
        del body
        sandbox.offline()
        t_off = time.monotonic()
        wait_for(lambda: hub is not None and hub.metric(
            "node_yurthub_server_healthy_status") == 0 and "node_yurthub_server_healthy_status"
            in hub.metrics_text(), 60, "the hub to see the cloud unhealthy", interval=0.05)
        print(f"cloud offline; the hub's /metrics showed node_yurthub_server_healthy_status 0 "
              f"after {time.monotonic() - t_off:.2f} s (heartbeat 1 s)")
        spy = PySpy(args.py_spy, hub.worker, "offline-lists", 30)
        rv = offline_lists(hub, nodes, args.repeat, "same process", fig, notes)
        spy.stop()
        same_rss = mem_mb(hub.worker)[0]
        hub.stop()
        hub = None

        ready_t, first_t, recovery_t = [], [], []
        idle_rss: list[float] = []
        for i in range(args.restarts):
            hub, ready, first, recovery = restart(work, server, cache_dir, "node-0000", nodes)
            ready_t.append(ready)
            first_t.append(first)
            recovery_t.append(recovery)
            time.sleep(1.0)
            idle_rss.append(mem_mb(hub.worker)[0])
            if i < args.restarts - 1:
                hub.stop()
                hub = None
        assert hub is not None
        worker = hub.worker
        base_rss, _ = mem_mb(worker)
        reset_hwm(worker)
        socks, counted, seen, ok = open_watches(hub, nodes, args.watches, rv)
        time.sleep(2.0)
        w_rss, w_hwm = mem_mb(worker)
        w_threads = threads_of(worker)
        for s in socks:
            s.close()
        time.sleep(1.0)
        offline_lists(hub, nodes, args.repeat, "after a restart", fig, notes)
    finally:
        if hub is not None:
            hub.stop()
        sandbox.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    size = fig["size: all pods"][0]
    print(f"\noffline lists (client-visible time, median (min-max, n)); full list {size:,} B")
    for label in ("same process", "after a restart"):
        n_all = fig[f"{label}: items (all)"][0]
        n_node = fig[f"{label}: items (node)"][0]
        print(f"  {label + ': all ' + str(int(n_all)) + ' pods':<36} "
              f"{spread(fig[f'{label}: all pods'], 1000, '{:.0f}'):>24} ms  "
              f"{size / 1e6 / med(fig[f'{label}: all pods']):5.0f} MB/s"
              f"  [target <= 500 ms]")
        tables = fig[f"{label}: all pods as a Table"]
        print(f"  {label + ': the same as a Table':<36} "
              f"{spread(tables, 1000, '{:.0f}'):>24} ms  "
              f"x{med(tables) / med(fig[f'{label}: all pods']):.2f} of the plain list, "
              f"{fig['size: all pods as a Table'][0]:,} B")
        print(f"  {label + ': one node, ' + str(int(n_node)) + ' pods':<36} "
              f"{spread(fig[f'{label}: one node{APOS}s pods'], 1000, '{:.1f}'):>24} ms"
              f"  [target <= 200 ms]")
    print(f"start -> ready with {pods} cached objects, cloud offline ({args.restarts} restarts)")
    print(f"  process start -> /v1/readyz 200       {spread(ready_t, 1, '{:.2f}'):>24} s  "
          f"(cache recovery logged: {spread(recovery_t, 1, '{:.2f}')} s)")
    print(f"  process start -> first offline list   {spread(first_t, 1, '{:.2f}'):>24} s  "
          f"[target <= 2 s]")
    print("gunicorn worker memory")
    print(f"  the hub that filled the cache, after the offline lists   {same_rss:.1f} MB")
    print(f"  idle after a restart, {pods} cached       {spread(idle_rss, 1, '{:.1f}'):>20} MB")
    print(f"  with {args.watches} open offline watches (counted by the hub after "
          f"{counted:.2f} s): RSS {w_rss:.1f} MB (was {base_rss:.1f}), VmHWM {w_hwm:.1f} MB, "
          f"{w_threads} threads  [target <= 80 MB]")
    if seen < args.watches or ok < seen:
        notes.append(f"only {seen} of {args.watches} offline watches had their response "
                     f"headers {counted + 2:.1f} s after the requests ({ok} with 200): a "
                     "watch with nothing to replay sends its headers with its first BOOKMARK")
    for label in ("same process", "after a restart"):
        print(f"  peak while answering full offline lists ({label}): VmHWM "
              f"{fig[f'{label}: peak RSS over full lists'][0]:.1f} MB")
    for note in notes:
        print(f"  note: {note}")
    print(f"\ntotal {time.monotonic() - started:.0f} s; load {os.getloadavg()[0]:.2f}; "
          "figures only, nothing asserted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
