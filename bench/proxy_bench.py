"""Figures for the caching proxy, side by side in one run: direct vs nginx vs yurthub.

The upstream is never the bottleneck: a private nginx serves pre-rendered files (a
10,000-pod PodList of ~48 MB, one small ConfigMap, ``/readyz``), and watch events come
from ``bench/_eventsource.py``, a separate process that stamps each event with
``time.time()``.  The peer is a second private nginx doing ``proxy_pass`` (HTTP/1.1
keep-alive upstream, no response buffering).  yurthub is a real ``python -m yurthub serve``
child in edge mode (gunicorn master + one gthread worker, ``--threads 256``), run by the
same python as this script.  Every case runs several times, interleaved; the script prints
the median, the min-max spread and the ratio or difference to the peers, and asserts
nothing (the machine is shared).

Sections (``--only list,watch,get``):

- list: ``GET /api/v1/pods`` (User-Agent kubelet, so the hub caches it), plain and gzip:
  client-visible time; the hub's commit of the list after the client's read ended
  (``yurthub_cache_commits_total{kind="list"}`` polled on ``/metrics``); objects/s of
  that 10,000-object durable commit; worker RSS idle and peak (VmHWM, reset before each
  list through ``/proc/<pid>/clear_refs``).  Each hub list gets a file with new
  resourceVersions, so every object is really rewritten; a relist of unchanged objects
  is shown apart.
- tls: the same list from a TLS upstream (the cloud's apiserver always speaks TLS): nginx
  and the hub both proxy to an HTTPS nginx; the hub verifies it with its CA.  TLS hands
  a reader one 16 KiB record at a time, which plain TCP hides.
- chunked: the same list from an HTTPS upstream that sends it chunked in Go's small
  chunks (``_chunkedsource.py``), as kube-apiserver does (nginx sends files with a
  length): nginx, the hub not caching and caching as kube-proxy, the worker's CPU.
- watch: 200 concurrent watches, 10 events/s each (2,000 events/s): latency from the
  upstream's stamp to the client's read, p50/p99/max; worker RSS, threads and CPU.
- get: a paced open-loop client, 200 req/s over 8 keep-alive connections, GETting one
  small ConfigMap; latency from the scheduled send time, p50/p99; the hub once as a cache
  agent (kubelet: each answer is also committed to the cache) and once as a plain proxy.

Usage: python bench/proxy_bench.py [--only list,tls,chunked,proto,watch,get] [--rounds 3]
       [--watches 200] [--watch-seconds 5] [--get-seconds 4] [--get-rate 200] [--py-spy DIR]
       [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    KUBELET_UA,
    HubProcess,
    Nginx,
    PySpy,
    cpu_seconds,
    ensure_nginx,
    free_port,
    med,
    mem_mb,
    pct,
    proxy_server_block,
    spread,
    stack_banner,
)
from _proxydata import (
    CASES,
    CM_PATH,
    GZIP,
    PLAIN,
    ListFigures,
    configmap_json,
    fs_banner,
    hub_list,
    paced_gets,
    podlist_bytes,
    publish,
    timed_get,
    upstream_server_block,
    with_new_rvs,
)
from _tlsbench import bench_chunked_list, bench_proto, bench_tls_list
from _watchbench import bench_watch


def list_round(args: argparse.Namespace, fig: ListFigures, hub: HubProcess, rnd: int,
               data_dir: Path, base: bytes, objects: int, ports: dict[str, int]) -> None:
    """One fresh hub's share: idle RSS, two changing lists, a relist, a gzip list; each
    interleaved with the same GET direct, through nginx and through the hub as a plain proxy."""
    time.sleep(1.0)
    rss, hwm = mem_mb(hub.worker)
    fig.idle.append(rss)
    fig.idle_hwm.append(hwm)
    spy = PySpy(args.py_spy, hub.worker, f"list-round{rnd}", 60) if rnd == 0 else None
    try:
        for rep in range(2):
            fig.generation += 1
            publish(data_dir, "pods.json", with_new_rvs(base, fig.generation))
            cases = (*CASES, "hub, not cached")
            for case in cases[rep % 4:] + cases[:rep % 4]:
                if case == "hub":
                    key = "hub (new cache)" if rep == 0 else "hub (all objects changed)"
                    hub_list(hub, fig, key, PLAIN, objects)
                elif case == "hub, not cached":
                    start, end, size, _ = timed_get(hub.proxy_port, "/api/v1/pods",
                                                    {**PLAIN, "User-Agent": "bench/1.0"})
                    fig.add("hub (not a cache agent)", end - start, size)
                else:
                    start, end, size, _ = timed_get(ports[case], "/api/v1/pods", PLAIN)
                    fig.add(case, end - start, size)
        # kubelet relisting after a restart: nothing changed
        hub_list(hub, fig, "hub (relist, unchanged)", PLAIN, objects)
        # gzip: the hub passes the compressed body through and decompresses on the cache side
        fig.generation += 1
        body = with_new_rvs(base, fig.generation)
        gz_body = gzip.compress(body, compresslevel=1)  # kube-apiserver compresses at level 1
        fig.gz_size = len(gz_body)
        publish(data_dir, "pods.json.gz", gz_body)
        publish(data_dir, "pods.json", body)
        for case in CASES[rnd % 3:] + CASES[:rnd % 3]:
            if case == "hub":
                hub_list(hub, fig, "hub gzip (all objects changed)", GZIP, objects)
            else:
                start, end, size, _ = timed_get(ports[case], "/api/v1/pods", GZIP)
                fig.add(f"{case} gzip", end - start, size)
        (data_dir / "pods.json.gz").unlink()
    finally:
        if spy is not None:
            spy.stop()


def bench_list(args: argparse.Namespace, work: Path, up_port: int, peer_port: int,
               data_dir: Path, base: bytes) -> None:
    objects = base.count(b'"kind":"Pod"') or base.count(b'"resourceVersion"') - 1
    print(f"\n== big list: GET /api/v1/pods, {objects} pods, {len(base) / 1e6:.1f} MB "
          f"({len(base) / max(objects, 1) / 1e3:.1f} KB/pod) ==")
    fig = ListFigures()
    ports = {"direct": up_port, "nginx": peer_port}
    caches = []
    for rnd in range(args.rounds):
        cache = work / f"cache-list-{rnd}"
        caches.append(cache)
        hub = HubProcess(work, f"http://127.0.0.1:{up_port}", cache,
                         extra=["--threads", "256"]).start()
        try:
            list_round(args, fig, hub, rnd, data_dir, base, objects, ports)
        finally:
            hub.stop()
    # why: removed at the end, not between rounds: a round's "new cache" fill must not
    # measure the file system digesting the 40,000 files of the round before (on ext4
    # without a journal, freshly freed inodes slow down new ones; see bench/README.md).
    if not args.keep:
        for cache in caches:
            shutil.rmtree(cache, ignore_errors=True)
    print_list(fig, len(base))


def print_list(fig: ListFigures, size_plain: int) -> None:
    def row(key: str, peer: str = "nginx") -> None:
        t = fig.times.get(key)
        if not t:
            return
        size = fig.sizes[key]
        line = (f"  {key:<34} {spread(t, 1000, '{:.0f}'):>26} ms  "
                f"{size / 1e6 / med(t):6.0f} MB/s")
        if key != peer and peer in fig.times:
            line += f"  {med(t) / med(fig.times[peer]):5.2f}x {peer}"
        print(line)

    print(f"client-visible time of the whole body (median (min-max, n)); plain "
          f"{size_plain:,} B, gzip {fig.gz_size:,} B")
    for key in ("direct", "nginx", "hub (not a cache agent)", "hub (new cache)",
                "hub (all objects changed)", "hub (relist, unchanged)"):
        row(key)
    allhub = fig.times.get("hub (new cache)", []) + fig.times.get("hub (all objects changed)",
                                                                  [])
    if allhub and fig.times.get("nginx"):
        print(f"  -> hub/nginx (all changing lists, n={len(allhub)}): "
              f"{med(allhub) / med(fig.times['nginx']):.2f}x  [target <= 1.5x]")
    for key in ("direct gzip", "nginx gzip", "hub gzip (all objects changed)"):
        row(key, "nginx gzip")
    print("cache commit of the list (hub): end of the client's read -> counter "
          "yurthub_cache_commits_total{kind=\"list\"} up  [target <= 3 s]")
    for key in ("hub (new cache)", "hub (all objects changed)", "hub (relist, unchanged)",
                "hub gzip (all objects changed)"):
        if key in fig.commit_after:
            print(f"  {key:<34} {spread(fig.commit_after[key], 1, '{:.2f}'):>26} s   "
                  f"{spread(fig.objects_per_s[key], 1, '{:,.0f}')} objects/s "
                  f"(request start -> durable commit)")
    print("  [target: >= 5,000 objects/s for the 10,000-object commit]")
    print("worker RSS (VmRSS / VmHWM of the gunicorn worker)")
    print(f"  idle after start                   {spread(fig.idle, 1, '{:.1f}'):>26} MB  "
          f"(VmHWM {spread(fig.idle_hwm, 1, '{:.1f}')})  [target <= 40 MB]")
    for key, values in fig.peak.items():
        print(f"  peak, {key:<28} {spread(values, 1, '{:.1f}'):>26} MB  [target <= 150 MB]")
    for note in fig.notes:
        print(f"  note: {note}")


# -- small GETs ---------------------------------------------------------------------------

def bench_get(args: argparse.Namespace, work: Path, up_port: int, peer_port: int) -> None:
    print(f"\n== small GETs: {CM_PATH} ({len(configmap_json())} B), open loop "
          f"{args.get_rate:.0f} req/s for {args.get_seconds:.0f} s over 8 keep-alive "
          f"connections ==")
    hub = HubProcess(work, f"http://127.0.0.1:{up_port}", work / "cache-get",
                     extra=["--threads", "256"]).start()
    kubelet = {"User-Agent": KUBELET_UA, "Accept": "application/json"}
    plain = {"User-Agent": "bench/1.0", "Accept": "application/json"}
    cases: dict[str, tuple[int, dict[str, str]]] = {
        "direct": (up_port, kubelet), "nginx": (peer_port, kubelet),
        "hub": (hub.proxy_port, kubelet), "hub, not cached": (hub.proxy_port, plain)}
    due: dict[str, list[list[float]]] = {c: [] for c in cases}
    svc: dict[str, list[list[float]]] = {c: [] for c in cases}
    errors: dict[str, int] = dict.fromkeys(cases, 0)
    names = list(cases)
    hub_cpu: list[float] = []
    spy = None
    try:
        commits0 = hub.metric("yurthub_cache_commits_total", kind="batch")
        for rep in range(args.rounds):
            for case in names[rep % len(names):] + names[:rep % len(names)]:
                port, headers = cases[case]
                worker = hub.worker
                c0, t0 = cpu_seconds(worker), time.monotonic()
                if case == "hub" and rep == 0:
                    spy = PySpy(args.py_spy, worker, "get", args.get_seconds + 1)
                a, b, e = paced_gets(port, CM_PATH, headers, args.get_rate, args.get_seconds)
                if case.startswith("hub"):
                    hub_cpu.append((cpu_seconds(worker) - c0) / (time.monotonic() - t0))
                if spy is not None:
                    spy.stop()
                    spy = None
                due[case].append(a)
                svc[case].append(b)
                errors[case] += e
        commits = hub.metric("yurthub_cache_commits_total", kind="batch") - commits0
    finally:
        hub.stop()
    print("latency from the scheduled send time, ms (per-run figure: median (min-max))")
    print(f"  {'':16} {'p50':>22} {'p99':>22} {'max':>20}   p50/p99 from the actual send")
    for case in cases:
        runs, sruns = due[case], svc[case]
        print(f"  {case:<16} {spread([pct(r, 0.5) for r in runs], 1000, '{:.2f}'):>22} "
              f"{spread([pct(r, 0.99) for r in runs], 1000, '{:.2f}'):>22} "
              f"{spread([max(r) for r in runs], 1000, '{:.1f}'):>20}   "
              f"{med(pct(r, 0.5) for r in sruns) * 1000:.2f} / "
              f"{med(pct(r, 0.99) for r in sruns) * 1000:.2f}"
              + (f"  ERRORS {errors[case]}" if errors[case] else ""))
    print("added latency, paired per run (case - direct), ms")
    for case in ("nginx", "hub", "hub, not cached"):
        d50 = [pct(a, 0.5) - pct(b, 0.5) for a, b in zip(due[case], due["direct"], strict=True)]
        d99 = [pct(a, 0.99) - pct(b, 0.99) for a, b in zip(due[case], due["direct"],
                                                            strict=True)]
        target = "  [target: p50 <= 1 ms, p99 <= 5 ms]" if case == "hub" else ""
        print(f"  {case:<16} p50 {spread(d50, 1000, '{:+.2f}')}   "
              f"p99 {spread(d99, 1000, '{:+.2f}')}{target}")
    print(f"hub worker CPU during the hub runs: {spread(hub_cpu, 100, '{:.0f}')}% of one core; "
          f"cache batch commits: {commits:.0f} for "
          f"{args.rounds * args.get_rate * args.get_seconds:.0f} cached GETs")


# -- main ---------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="list,tls,chunked,proto,watch,get")
    p.add_argument("--rounds", type=int, default=3, help="runs of each case")
    p.add_argument("--watches", type=int, default=200)
    p.add_argument("--watch-seconds", type=float, default=5.0)
    p.add_argument("--get-rate", type=float, default=200.0)
    p.add_argument("--get-seconds", type=float, default=4.0)
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                   help="record py-spy profiles of the hub worker into DIR")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, caches)")
    p.add_argument("--baseline", type=Path, default=None, metavar="SRC",
                   help="also run the hub of this source tree (e.g. an export of main) side "
                        "by side, in the tls and chunked sections")
    p.add_argument("--dir", default="/var/tmp",
                   help="where the temp dir (and so the hub's caches) goes: the file system "
                        "the cache would live on (default /var/tmp)")
    args = p.parse_args()
    only = set(args.only.split(","))
    started = time.monotonic()
    print(stack_banner())
    print(ensure_nginx())
    print(f"caches under {args.dir}: {fs_banner(args.dir)}")
    work = Path(tempfile.mkdtemp(prefix="yurthub-proxy-bench-", dir=args.dir))
    data_dir = work / "data"
    data_dir.mkdir()
    os.chmod(work, 0o755)
    base = podlist_bytes()
    publish(data_dir, "pods.json", base)
    publish(data_dir, "cm-0.json", configmap_json())
    up_port, peer_port = free_port(), free_port()
    upstream = Nginx(work, "upstream", upstream_server_block(up_port, data_dir))
    peer = Nginx(work, "peer", proxy_server_block(peer_port, up_port, "static"))
    try:
        upstream.start()
        peer.start()
        if "list" in only:
            bench_list(args, work, up_port, peer_port, data_dir, base)
        if "tls" in only:
            bench_tls_list(args, work, data_dir, base)
        if "chunked" in only:
            bench_chunked_list(args, work, base)
        if "proto" in only:
            bench_proto(args, work)
        if "watch" in only:
            bench_watch(args, work)
        if "get" in only:
            bench_get(args, work, up_port, peer_port)
    finally:
        peer.stop()
        upstream.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load {os.getloadavg()[0]:.2f}; "
          "figures only, nothing asserted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
