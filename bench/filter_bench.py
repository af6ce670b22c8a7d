"""Figures for the response filters, side by side in one run: filtering hub vs unfiltered.

Two real hubs on node-0001 (pool-a: node-0000..0003), both caching what kube-proxy and
kubelet get: one with YurtHub's default filters ("filtered"), one with
``--enable-resource-filter false`` ("unfiltered pass-through").  The upstream is a private
nginx serving pre-rendered lists; everything else (what the filters depend on:
yurt-hub-cfg, the Node, the NodePools, the Services) comes from ``_eventsource.py
--static``, whose watches stay open and silent, so the hubs are as a node's hub is.

Sections (``--only list,watch``):

- list: ``GET /apis/discovery.k8s.io/v1/endpointslices`` as kube-proxy, 5,000 slices of 50
  endpoints on 16 nodes (~50 MB), every Service with ``openyurt.io/topologyKeys:
  openyurt.io/nodepool``: a quarter of the endpoints are in this node's pool, so every
  slice is rewritten (the worst case).  Also the same list when no Service has a topology
  (the check alone), the worst case again from an upstream sending 125 MB/s (a 1 Gbit/s
  link; ``_pacedfile.py``), as a real apiserver or link does, where the filter's CPU
  overlaps the wait for the next bytes, kubelet's 10,000-pod list (48 MB;
  serviceenvupdater scans it), and the slices when every Service has hostname topology
  (one node's endpoints kept: 1/16).  ``--pool-extra N`` gives pool-a N more members (on no
  endpoint of the lists), as a site's pool of hundreds of nodes.
  Client-visible time (request sent -> last byte, 1 MiB reads, new connection), the
  cache's durable commit after the client's read, the worker's peak RSS (VmHWM reset
  before each list) and its CPU seconds (10 ms ticks) from the request to the last byte
  and to the commit, which a loaded machine disturbs far less than time.  ``--baseline
  SRC`` adds the filtering hub of another source tree (e.g. ``git archive main``)
  interleaved in the same rounds; ``--cases 1,2,3,4,5`` picks the cases.  Every round moves
  the resourceVersions up, so both hubs really rewrite every object.  nginx ``proxy_pass``
  is shown as a reference.
- watch: 200 kube-proxy-like watches of EndpointSlices (one Service each, 20 endpoints),
  10 events/s each = 2,000 events/s; latency from the event source's ``time.time()``
  stamp to the client's read, p50/p99, and what the hub adds to a direct connection.

Usage: python bench/filter_bench.py [--only list,watch] [--rounds 3] [--watches 200]
       [--baseline SRC] [--cases 1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    KUBE_PROXY_UA,
    KUBELET_UA,
    HubProcess,
    Nginx,
    cpu_seconds,
    ensure_nginx,
    free_port,
    mem_mb,
    pct,
    proxy_server_block,
    reset_hwm,
    spread,
    stack_banner,
)
from _proxydata import podlist_bytes, publish, timed_get, wait_commit
from _watchbench import run_watches

SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
PODS = "/api/v1/pods"
NODE = "node-0001"
POOL_A = [f"node-{i:04d}" for i in range(4)]
SERVICES = 5000
ENDPOINTS = 50
LINK_RATE_MB = 125  # a 1 Gbit/s link: faster than most edge nodes' links to the cloud
_RV = re.compile(rb'"resourceVersion":"(\d+)"')
# kube-apiserver sends a big list chunked (Go's server, no Content-Length set): nginx's SSI
# filter (which finds nothing to include in JSON) drops the length the same way.
CHUNKED = " ssi on; ssi_types *;"


# -- data ---------------------------------------------------------------------------------

def slice_list(services: int, endpoints: int, prefix: str) -> bytes:
    """An EndpointSliceList as kube-apiserver renders it: one slice per Service, endpoints
    on node-0000..node-0015 in turn (a quarter in pool-a)."""
    items = []
    ep = (b'{"addresses":["10.%d.%d.%d"],"conditions":{"ready":true,"serving":true,'
          b'"terminating":false},"targetRef":{"kind":"Pod","namespace":"default",'
          b'"name":"%s-%05d-%03d","uid":"6f1b3c2a-%04x-4c1d-9e5f-%012x"},'
          b'"nodeName":"node-%04d","zone":"zone-%s"}')
    pre = prefix.encode()
    for s in range(services):
        name = b"%s-%05d" % (pre, s)
        eps = b",".join(ep % (s // 250, s % 250, e, pre, s, e, e, s * 64 + e, e % 16,
                              b"a" if e % 16 < 8 else b"b") for e in range(endpoints))
        items.append(
            b'{"metadata":{"name":"%s-7kx2p","generateName":"%s-","namespace":"default",'
            b'"uid":"0c5d8e1f-%04x-4b2a-8c3d-%012x","resourceVersion":"%d","generation":3,'
            b'"creationTimestamp":"2026-11-20T10:00:00Z","labels":{'
            b'"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io",'
            b'"kubernetes.io/service-name":"%s"},"annotations":{'
            b'"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-20T10:00:00Z"}},'
            b'"addressType":"IPv4","endpoints":[%s],"ports":[{"name":"http",'
            b'"protocol":"TCP","port":8080}]}' % (name, name, s % 65536, s, 1000 + s, name, eps))
    return (b'{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":'
            b'{"resourceVersion":"99999"},"items":[' + b",".join(items) + b"]}\n")


def with_new_rvs(base: bytes, generation: int) -> bytes:
    shift = generation * 10_000_000
    return _RV.sub(lambda m: b'"resourceVersion":"%d"' % (int(m.group(1)) + shift), base)


def inputs(static: Path, services: int, pool_extra: int = 0) -> None:
    """What the hubs' filters depend on, as the eventsource serves it."""
    def put(path: str, doc: dict) -> None:
        (static / path.replace("/", "_")).write_bytes(json.dumps(doc).encode())

    put("/api/v1/namespaces/kube-system/configmaps", {
        "kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
        "items": [{"metadata": {"name": "yurt-hub-cfg", "namespace": "kube-system",
                                "resourceVersion": "10"}, "data": {"cache_agents": ""}}]})
    put("/api/v1/nodes", {
        "kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
        "items": [{"metadata": {"name": NODE, "resourceVersion": "10", "labels": {
            "apps.openyurt.io/nodepool": "pool-a", "topology.kubernetes.io/zone": "zone-a"}}}]})
    put("/apis/apps.openyurt.io/v1beta2/nodepools", {
        "kind": "NodePoolList", "apiVersion": "apps.openyurt.io/v1beta2",
        "metadata": {"resourceVersion": "10"},
        "items": [{"apiVersion": "apps.openyurt.io/v1beta2", "kind": "NodePool",
                   "metadata": {"name": "pool-a", "resourceVersion": "10"},
                   "status": {"nodes": POOL_A + [f"far-{i:04d}" for i in range(pool_extra)]}}]})
    put("/api/v1/services", {
        "kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
        "items": [{"metadata": {"name": f"{prefix}-{s:05d}", "namespace": "default",
                                "resourceVersion": "10", "annotations": {
                                    "openyurt.io/topologyKeys": topology}},
                   "spec": {"type": "ClusterIP"}} for s in range(services)
                  for prefix, topology in (("svc", "openyurt.io/nodepool"),
                                           ("host", "kubernetes.io/hostname"))]})


def upstream_block(port: int, data_dir: Path, src_port: int, paced_port: int) -> str:
    return f"""
    upstream inputs {{ server 127.0.0.1:{src_port}; keepalive 64; }}
    upstream paced {{ server 127.0.0.1:{paced_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        types {{ }}
        default_type application/json;
        location = /readyz {{ default_type text/plain; return 200 "ok"; }}
        location = {SLICES} {{
            alias {data_dir}/slices.json;{CHUNKED}
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            if ($http_x_bench_pace) {{ proxy_pass http://paced; }}
        }}
        location = {PODS} {{ alias {data_dir}/pods.json;{CHUNKED} }}
        location / {{
            proxy_pass http://inputs;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 3600s;
        }}
    }}
"""


def start_source(static: Path | None, rate: int, kind: str) -> tuple[subprocess.Popen, int]:
    argv = [sys.executable, str(Path(__file__).parent / "_eventsource.py"), "--rate", str(rate),
            "--kind", kind]
    if static is not None:
        argv += ["--static", str(static)]
    src = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert src.stdout is not None
    return src, int(src.stdout.readline().split()[1])


# -- lists --------------------------------------------------------------------------------

def one_list(hub: HubProcess, path: str, headers: dict[str, str]
             ) -> tuple[float, int, float | None, float, float, float]:
    """(client seconds, bytes, commit seconds after the read or None, peak RSS MB, the
    worker's CPU seconds to the last byte and to the commit)."""
    worker = hub.worker
    before = hub.metric("yurthub_cache_commits_total", kind="list")
    reset_hwm(worker)
    cpu0 = cpu_seconds(worker)
    start, end, size, status = timed_get(hub.proxy_port, path, {
        **headers, "Accept": "application/json", "Accept-Encoding": "identity"})
    cpu_sent = cpu_seconds(worker) - cpu0
    if status != 200:
        raise SystemExit(f"{path}: HTTP {status} (log {hub.log_path})")
    committed, why = wait_commit(hub, before)
    cpu_all = cpu_seconds(worker) - cpu0
    peak = mem_mb(worker)[1]
    if committed is None:
        print(f"  note: not committed ({why})")
    return end - start, size, (committed - end) if committed else None, peak, cpu_sent, \
        cpu_all


def bench_list(args: argparse.Namespace, work: Path) -> None:
    data_dir = work / "data"
    data_dir.mkdir()
    static = work / "static"
    static.mkdir()
    inputs(static, SERVICES, args.pool_extra)
    topo = slice_list(SERVICES, ENDPOINTS, "svc")
    plain = slice_list(SERVICES, ENDPOINTS, "plain")
    host = slice_list(SERVICES, ENDPOINTS, "host")
    pods = podlist_bytes()
    src, src_port = start_source(static, 1, "endpointslice")
    pacer = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_pacedfile.py"),
                              str(data_dir / "slices.json"), "--rate", str(LINK_RATE_MB)],
                             stdout=subprocess.PIPE, text=True)
    assert pacer.stdout is not None
    paced_port = int(pacer.stdout.readline().split()[1])
    up_port, peer_port = free_port(), free_port()
    upstream = Nginx(work, "upstream", upstream_block(up_port, data_dir, src_port, paced_port))
    peer = Nginx(work, "peer", proxy_server_block(peer_port, up_port, "static"))
    hubs: dict[str, HubProcess] = {}
    try:
        publish(data_dir, "slices.json", topo)
        publish(data_dir, "pods.json", pods)
        upstream.start()
        peer.start()
        server = f"http://127.0.0.1:{up_port}"
        # The multiplexer is off: its shared state needs a watchable upstream (nginx serves
        # files) and answers from memory; this measures the filters on the proxied stream.
        no_mux = ["--pool-scope-resources", ""]
        hubs["filtered"] = HubProcess(work, server, work / "cache-f", node=NODE,
                                      extra=no_mux).start()
        hubs["unfiltered"] = HubProcess(work, server, work / "cache-u", node=NODE,
                                        extra=["--enable-resource-filter", "false", *no_mux]
                                        ).start()
        if args.baseline is not None:
            hubs["baseline"] = HubProcess(work, server, work / "cache-b", node=NODE,
                                          extra=no_mux, root=args.baseline.resolve()).start()
        time.sleep(1.0)
        print(f"\n== lists as kube-proxy / kubelet, node {NODE} in pool-a "
              f"({len(topo) / 1e6:.1f} MB of EndpointSlices: {SERVICES} x {ENDPOINTS} "
              f"endpoints; {len(pods) / 1e6:.1f} MB of pods) ==")
        proxy, kubelet = {"User-Agent": KUBE_PROXY_UA}, {"User-Agent": KUBELET_UA}
        # An upstream sending at a link's pace (X-Bench-Pace: nginx hands the list to
        # _pacedfile.py): the filter's CPU then overlaps the wait for the next bytes, as it
        # does behind a real apiserver or an edge node's link.
        paced = {**proxy, "X-Bench-Pace": "1"}
        cases = [("slices, every Service pool topology", topo, SLICES, proxy),
                 ("slices, no Service with a topology", plain, SLICES, proxy),
                 (f"slices, every Service pool topology, upstream sending {LINK_RATE_MB} MB/s",
                  topo, SLICES, paced),
                 ("kubelet's 10,000 pods", pods, PODS, kubelet),
                 ("slices, every Service hostname topology", host, SLICES, proxy)]
        picked = {int(c) for c in args.cases.split(",")}
        generation = 0
        names = ["nginx", "unfiltered", "filtered", *(["baseline"] if "baseline" in hubs
                                                      else [])]
        for number, (label, body, path, headers) in enumerate(cases, 1):
            if number not in picked:
                continue
            times: dict[str, list[float]] = {}
            commits: dict[str, list[float]] = {}
            peaks: dict[str, list[float]] = {}
            cpus: dict[str, list[tuple[float, float]]] = {}
            sizes: dict[str, int] = {}
            for rnd in range(args.rounds):
                generation += 1
                publish(data_dir, "slices.json" if path == SLICES else "pods.json",
                        with_new_rvs(body, generation))
                k = rnd % len(names)
                order = names[k:] + names[:k]
                for case in order:
                    if case == "nginx":
                        s, e, size, _ = timed_get(peer_port, path, headers)
                        times.setdefault(case, []).append(e - s)
                        sizes[case] = size
                        continue
                    t, size, commit, peak, cpu_sent, cpu_all = one_list(hubs[case], path,
                                                                         headers)
                    cpus.setdefault(case, []).append((cpu_sent, cpu_all))
                    times.setdefault(case, []).append(t)
                    sizes[case] = size
                    if commit is not None:
                        commits.setdefault(case, []).append(commit)
                    peaks.setdefault(case, []).append(peak)
            print(f"{label}:")
            for case in names:
                extra = ""
                if case != "nginx":
                    sent = [c[0] for c in cpus[case]]
                    total = [c[1] for c in cpus[case]]
                    extra = (f"; committed {spread(commits.get(case, []), 1, '{:.2f}')} s "
                             f"after; peak RSS {spread(peaks[case], 1, '{:.0f}')} MB; "
                             f"CPU {spread(sent, 1000, '{:.0f}')} ms to the last byte, "
                             f"{spread(total, 1000, '{:.0f}')} ms to the commit")
                print(f"  {case:<11} {spread(times[case], 1000, '{:.0f}')} ms, "
                      f"{sizes[case] / 1e6:.1f} MB{extra}")
            ratio = [f / u for f, u in zip(times["filtered"], times["unfiltered"],
                                           strict=True)]
            target = "  [target <= 1.5x, commit <= 3 s, peak <= 150 MB]" \
                if label == cases[0][0] else ""
            print(f"  filtered / unfiltered, paired per round: {spread(ratio, 1, '{:.2f}')}x"
                  f"{target}")
            if "baseline" in times:
                ratio = [f / u for f, u in zip(times["baseline"], times["unfiltered"],
                                               strict=True)]
                print(f"  baseline / unfiltered, paired per round: "
                      f"{spread(ratio, 1, '{:.2f}')}x")
    finally:
        for hub in hubs.values():
            hub.stop()
        peer.stop()
        upstream.stop()
        src.kill()
        src.wait()
        pacer.kill()
        pacer.wait()


# -- watches ------------------------------------------------------------------------------

def slice_watch(i: int) -> bytes:
    """Watch number ``i`` as kube-proxy: the EndpointSlice of Service ``svc-<i>``."""
    return (f"GET {SLICES}?watch=true&allowWatchBookmarks=true&resourceVersion=1000&"
            f"timeoutSeconds=300&fieldSelector=metadata.name%3Dsvc-{i:05d} HTTP/1.1\r\n"
            f"Host: bench\r\nUser-Agent: {KUBE_PROXY_UA}\r\nAccept: application/json"
            "\r\n\r\n").encode()


def bench_watch(args: argparse.Namespace, work: Path) -> None:
    rate = 10
    static = work / "static-watch"
    static.mkdir()
    inputs(static, args.watches)
    src, src_port = start_source(static, rate, "endpointslice")
    hubs: dict[str, HubProcess] = {}
    try:
        server = f"http://127.0.0.1:{src_port}"
        hubs["filtered"] = HubProcess(work, server, work / "cache-wf", node=NODE).start()
        hubs["unfiltered"] = HubProcess(work, server, work / "cache-wu", node=NODE,
                                        extra=["--enable-resource-filter", "false"]).start()
        print(f"\n== watch latency: {args.watches} kube-proxy watches of EndpointSlices x "
              f"{rate} events/s = {args.watches * rate} events/s (20 endpoints each, pool "
              f"topology: 5 kept), {args.watch_seconds:.0f} s per run ==")
        lat: dict[str, list[list[float]]] = {"direct": [], "unfiltered": [], "filtered": []}
        notes = []
        for rep in range(args.rounds):
            order = ["direct", "unfiltered", "filtered"]
            for case in order[rep % 3:] + order[:rep % 3]:
                port = src_port if case == "direct" else hubs[case].proxy_port
                values, _opened, why = run_watches(port, args.watches, args.watch_seconds,
                                                   request=slice_watch)
                lat[case].append(values)
                if why:
                    notes.append(f"{case} run {rep + 1}: {why}")
                time.sleep(0.5)
        print("latency, ms: p50 / p99 per run, median (min-max)")
        for case, runs in lat.items():
            print(f"  {case:<11} p50 {spread([pct(r, 0.5) for r in runs], 1000, '{:.2f}')}"
                  f"   p99 {spread([pct(r, 0.99) for r in runs], 1000, '{:.2f}')}"
                  f"   events {spread([len(r) for r in runs], 1, '{:.0f}')}")
        for case in ("unfiltered", "filtered"):
            d99 = [pct(a, 0.99) - pct(b, 0.99) for a, b in zip(lat[case], lat["direct"],
                                                                strict=True)]
            d50 = [pct(a, 0.5) - pct(b, 0.5) for a, b in zip(lat[case], lat["direct"],
                                                              strict=True)]
            target = "  [target: p99 added <= 5 ms]" if case == "filtered" else ""
            print(f"  {case:<11} added p50 {spread(d50, 1000, '{:+.2f}')}   p99 "
                  f"{spread(d99, 1000, '{:+.2f}')}{target}")
        for n in notes:
            print(f"  note: {n}")
    finally:
        for hub in hubs.values():
            hub.stop()
        src.kill()
        src.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="list,watch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--watches", type=int, default=200)
    p.add_argument("--watch-seconds", type=float, default=5.0)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--dir", default="/var/tmp")
    p.add_argument("--baseline", type=Path, default=None, metavar="SRC",
                   help="also run the filtering hub of this source tree side by side")
    p.add_argument("--pool-extra", type=int, default=0, metavar="N",
                   help="N more members of pool-a (on no endpoint of the lists): a big pool")
    p.add_argument("--cases", default="1,2,3,4,5",
                   help="the list cases: 1 every Service pool topology, 2 none, 3 the first "
                        "from an upstream at 125 MB/s, 4 kubelet's pods, 5 every Service "
                        "hostname topology (one node's endpoints kept)")
    args = p.parse_args()
    only = set(args.only.split(","))
    started = time.monotonic()
    print(stack_banner())
    print(ensure_nginx())
    work = Path(tempfile.mkdtemp(prefix="yurthub-filter-bench-", dir=args.dir))
    os.chmod(work, 0o755)
    try:
        if "list" in only:
            bench_list(args, work)
        if "watch" in only:
            bench_watch(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load {os.getloadavg()[0]:.2f}; "
          "figures only, nothing asserted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
