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
- watch: 200 concurrent watches, 10 events/s each (2,000 events/s): latency from the
  upstream's stamp to the client's read, p50/p99/max; worker RSS, threads and CPU.
- get: a paced open-loop client, 200 req/s over 8 keep-alive connections, GETting one
  small ConfigMap; latency from the scheduled send time, p50/p99; the hub once as a cache
  agent (kubelet: each answer is also committed to the cache) and once as a plain proxy.

Usage: python bench/proxy_bench.py [--only list,tls,proto,watch,get] [--rounds 3] [--watches 200]
       [--watch-seconds 5] [--get-seconds 4] [--get-rate 200] [--py-spy DIR] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import re
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    KUBELET_UA,
    OUT,
    ROOT,
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
    reset_hwm,
    spread,
    stack_banner,
    threads_of,
    wait_for,
)

PODLIST = OUT / "proxy-podlist-10000.json"
CM_PATH = "/api/v1/namespaces/default/configmaps/cm-0"
CASES = ("direct", "nginx", "hub")


# -- data ---------------------------------------------------------------------------------

def podlist_bytes() -> bytes:
    """A 10,000-pod PodList rendered once by the sandbox (100 nodes x 100 pods), kept in
    bench/out/ (git-ignored)."""
    if PODLIST.exists():
        return PODLIST.read_bytes()
    sys.path.insert(0, str(ROOT))
    from kubesandbox.server import Sandbox

    sb = Sandbox(nodes=100, pods_per_node=100, port=0).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=60)
        conn.request("GET", "/api/v1/pods", headers={"Accept-Encoding": "identity"})
        body = conn.getresponse().read()
        conn.close()
    finally:
        sb.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    PODLIST.write_bytes(body)
    return body


_RV = re.compile(rb'"resourceVersion":"(\d+)"')


def with_new_rvs(base: bytes, generation: int) -> bytes:
    """The same list with every resourceVersion moved up, so the hub rewrites every object."""
    if generation == 0:
        return base
    shift = generation * 10_000_000
    return _RV.sub(lambda m: b'"resourceVersion":"%d"' % (int(m.group(1)) + shift), base)


def publish(data_dir: Path, name: str, body: bytes) -> None:
    tmp = data_dir / f".{name}.tmp"
    tmp.write_bytes(body)
    os.replace(tmp, data_dir / name)


def configmap_json() -> bytes:
    return json.dumps({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "cm-0", "namespace": "default", "resourceVersion": "4242",
                     "uid": "0f0e0d0c-0b0a-4908-8706-050403020100",
                     "creationTimestamp": "2026-11-20T10:00:00Z",
                     "labels": {"app": "bench"}},
        "data": {"config.yaml": "log-level: info\nlisten: 0.0.0.0:8080\n" * 4},
    }, separators=(",", ":")).encode()


def upstream_server_block(port: int, data_dir: Path) -> str:
    """nginx serving the pre-rendered files (gzip_static: pods.json.gz when asked)."""
    return f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        types {{ }}
        default_type application/json;
        location = /readyz {{ default_type text/plain; return 200 "ok"; }}
        location = /api/v1/pods {{ alias {data_dir}/pods.json; gzip_static on; }}
        location = {CM_PATH} {{ alias {data_dir}/cm-0.json; }}
        location / {{ return 404 '{{"kind":"Status","apiVersion":"v1","code":404}}'; }}
    }}
"""


# -- one big GET --------------------------------------------------------------------------

def timed_get(port: int, path: str, headers: dict[str, str], tls: ssl.SSLContext | None = None
              ) -> tuple[float, float, int, int]:
    """(start, end, bytes, status) of one GET on a new connection, body read in 1 MiB reads."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    start = time.monotonic()
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=tls)
            if tls is not None else http.client.HTTPConnection("127.0.0.1", port, timeout=120))
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    size = 0
    while True:
        n = r.readinto(view)
        if not n:
            break
        size += n
    end = time.monotonic()
    conn.close()
    return start, end, size, r.status


def wait_commit(hub: HubProcess, before: float, timeout: float = 120.0
                ) -> tuple[float | None, str]:
    """Poll /metrics until yurthub_cache_commits_total{kind="list"} passes ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = hub.metrics_text()
        if hub.metric("yurthub_cache_commits_total", text, kind="list") > before:
            return time.monotonic(), ""
        dropped = hub.metric("yurthub_cache_entries_dropped_total", text)
        if dropped:
            return None, f"dropped ({dropped:.0f} entries dropped: {text.count('dropped')})"
        time.sleep(0.02)
    return None, "timeout"


class ListFigures:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.sizes: dict[str, int] = {}
        self.commit_after: dict[str, list[float]] = {}
        self.objects_per_s: dict[str, list[float]] = {}
        self.peak: dict[str, list[float]] = {}
        self.idle: list[float] = []
        self.idle_hwm: list[float] = []
        self.notes: list[str] = []
        self.generation = 0   # of the resourceVersions published last
        self.gz_size = 0

    def add(self, key: str, seconds: float, size: int) -> None:
        self.times.setdefault(key, []).append(seconds)
        self.sizes[key] = size


def hub_list(hub: HubProcess, fig: ListFigures, key: str, headers: dict[str, str],
             objects: int) -> None:
    worker = hub.worker
    before = hub.metric("yurthub_cache_commits_total", kind="list")
    reset_hwm(worker)
    start, end, size, status = timed_get(hub.proxy_port, "/api/v1/pods", headers)
    if status != 200:
        fig.notes.append(f"{key}: HTTP {status}")
    fig.add(key, end - start, size)
    committed, why = wait_commit(hub, before)
    _, hwm = mem_mb(worker)
    fig.peak.setdefault(key, []).append(hwm)
    if committed is None:
        fig.notes.append(f"{key}: list not committed: {why}")
        return
    fig.commit_after.setdefault(key, []).append(committed - end)
    fig.objects_per_s.setdefault(key, []).append(objects / (committed - start))


PLAIN = {"User-Agent": KUBELET_UA, "Accept": "application/json", "Accept-Encoding": "identity"}
GZIP = {**PLAIN, "Accept-Encoding": "gzip"}


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


# -- the list over TLS --------------------------------------------------------------------

def bench_tls_list(args: argparse.Namespace, work: Path, data_dir: Path, base: bytes) -> None:
    """Direct (this client speaking TLS to the upstream), nginx proxying it (two workers,
    keep-alive, 256 KiB buffers, as issue 15 states its peer) and the hub, as a plain proxy
    and caching; with ``--baseline DIR`` also the hub of that source tree, side by side."""
    from kubesandbox import tls  # the sandbox's self-signed CA and server certificate

    objects = base.count(b'"kind":"Pod"') or base.count(b'"resourceVersion"') - 1
    print(f"\n== big list over TLS: GET /api/v1/pods from an HTTPS upstream, "
          f"{len(base) / 1e6:.1f} MB ==")
    pki = tls.make_self_signed(work / "pki")
    client_tls = ssl.create_default_context(cafile=pki.ca_cert)
    up_port, peer_port = free_port(), free_port()
    plain = f"listen 127.0.0.1:{up_port} backlog=4096;"
    upstream = Nginx(work, "upstream-tls", upstream_server_block(up_port, data_dir).replace(
        plain, f"listen 127.0.0.1:{up_port} ssl backlog=4096; ssl_certificate "
               f"{pki.server_cert}; ssl_certificate_key {pki.server_key};"))
    peer = Nginx(work, "peer-tls", proxy_server_block(peer_port, up_port, "tls", "https", 256),
                 workers=2)
    fig = ListFigures()
    upstream.start()
    peer.start()
    hubs: dict[str, HubProcess] = {}
    cpu: dict[str, list[float]] = {}  # CPU seconds of a hub's worker per list
    roots = {"hub": ROOT, **({"baseline hub": args.baseline} if args.baseline else {})}
    try:
        for name, root in roots.items():
            hubs[name] = HubProcess(work, f"https://127.0.0.1:{up_port}", work / f"cache-{name}",
                                    extra=["--threads", "256", "--ca-file", pki.ca_cert],
                                    root=root).start()
        cases = ["direct", "nginx"] + [f"{name}{kind}" for name in hubs
                                       for kind in (" not cached", "")]
        for rep in range(2 * args.rounds):
            fig.generation += 1
            publish(data_dir, "pods.json", with_new_rvs(base, fig.generation))
            k = rep % len(cases)
            for case in cases[k:] + cases[:k]:
                name = case.removesuffix(" not cached")
                worker = hubs[name].worker if name in hubs else 0
                cpu0 = cpu_seconds(worker) if worker else 0.0
                if case in hubs:
                    key = f"{case} caching (all objects changed)"
                    hub_list(hubs[case], fig, key, PLAIN, objects)
                    # the worker's CPU until the durable commit (the writer's share too)
                    cpu.setdefault(key, []).append(cpu_seconds(worker) - cpu0)
                    continue
                if case == "direct":
                    port, ua, ctx = up_port, KUBELET_UA, client_tls
                elif case == "nginx":
                    port, ua, ctx = peer_port, KUBELET_UA, None
                else:
                    port, ua, ctx = hubs[name].proxy_port, "bench/1.0", None
                start, end, size, status = timed_get(port, "/api/v1/pods",
                                                     {**PLAIN, "User-Agent": ua}, ctx)
                if worker:
                    cpu.setdefault(case, []).append(cpu_seconds(worker) - cpu0)
                if status != 200:
                    fig.notes.append(f"{case}: HTTP {status}")
                fig.add(case, end - start, size)
    finally:
        for hub in hubs.values():
            hub.stop()
        peer.stop()
        upstream.stop()
    print("client-visible time of the whole body (median (min-max, n)); nginx: 2 workers, "
          "256 KiB buffers")
    for key in fig.times:
        t = fig.times[key]
        ratio = f"  {med(t) / med(fig.times['nginx']):5.2f}x nginx" if key != "nginx" else ""
        print(f"  {key:<40} {spread(t, 1000, '{:.0f}'):>24} ms  "
              f"{fig.sizes[key] / 1e6 / med(t):6.0f} MB/s{ratio}")
    print("CPU of the hub's worker per list (user + system; less sensitive to a loaded machine "
          "than the time)")
    for key, values in cpu.items():
        print(f"  {key:<40} {spread(values, 1000, '{:.0f}'):>24} ms CPU"
              + ("  (until the durable commit)" if "caching" in key else ""))
    for key in fig.commit_after:
        print(f"  {key}: commit {spread(fig.commit_after[key], 1, '{:.2f}')} s after the "
              f"response, {spread(fig.objects_per_s[key], 1, '{:,.0f}')} objects/s")
    print("  [targets: caching <= 1.5x nginx, not cached <= 1.2x]")
    for note in fig.notes:
        print(f"  note: {note}")


# -- protobuf passed through ---------------------------------------------------------------

def bench_proto(args: argparse.Namespace, work: Path) -> None:
    """Cloud bytes of a request the hub neither caches nor filters, asked with client-go's
    protobuf Accept: 1,000 ConfigMaps from the sandbox (which answers protobuf for the kinds
    in its table), through the hub (and the ``--baseline`` hub), as kube-controller-manager."""
    from kubesandbox.server import Sandbox

    print("\n== protobuf Accept passed through: GET 1,000 ConfigMaps as a component the hub "
          "neither caches nor filters ==")
    sb = Sandbox(nodes=1, pods_per_node=1, port=0).start()
    hubs: dict[str, HubProcess] = {}
    try:
        for i in range(1000):
            sb.put({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i:04d}", "namespace": "default",
                                 "labels": {"app": "bench", "tier": "edge"}},
                    "data": {"config.yaml": "log-level: info\nlisten: 0.0.0.0:8080\n" * 4}})
        roots = {"hub": ROOT, **({"baseline hub": args.baseline} if args.baseline else {})}
        for name, root in roots.items():
            hubs[name] = HubProcess(work, sb.url, work / f"cache-proto-{name}", root=root).start()
        path = "/api/v1/namespaces/default/configmaps"
        accept = "application/vnd.kubernetes.protobuf, application/json"
        ua = "kube-controller-manager/v1.32.4 (linux/amd64) kubernetes/abc"
        rows = [("direct, Accept: application/json", sb.port, "application/json"),
                ("direct, client-go's protobuf Accept", sb.port, accept)]
        rows += [(f"{name}, client-go's protobuf Accept", hub.proxy_port, accept)
                 for name, hub in hubs.items()]
        for label, port, acc in rows:
            for enc in ("identity", "gzip"):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", path, headers={"Accept": acc, "User-Agent": ua,
                                                   "Accept-Encoding": enc})
                r = conn.getresponse()
                body = r.read()
                conn.close()
                print(f"  {label + ', ' + enc:<56} {len(body):>9,} B  "
                      f"{r.getheader('Content-Type')}")
    finally:
        for hub in hubs.values():
            hub.stop()
        sb.stop()
    print("  (the hub passes the body through: the cloud link carries these bytes)")


# -- watches ------------------------------------------------------------------------------

class WatchReader(threading.Thread):
    """Reads many chunked watch streams on one thread; latency = arrival - the event's ts."""

    def __init__(self, socks: list[socket.socket]) -> None:
        super().__init__(name="watch-reader", daemon=True)
        self.sel = selectors.DefaultSelector()
        self.state: dict[socket.socket, list[Any]] = {}
        for s in socks:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.state[s] = [bytearray(), False, bytearray()]  # raw, headers seen, de-chunked
        self.latencies: list[float] = []
        self.record_after = float("inf")
        self.headers_seen = 0
        self.bad_status = 0
        self.closed = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for key, _ in self.sel.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(sock)
                    self.closed += 1
                    continue
                self._feed(sock, data, time.time())

    def _feed(self, sock: socket.socket, data: bytes, now: float) -> None:
        st = self.state[sock]
        raw: bytearray = st[0]
        raw += data
        if not st[1]:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return
            if not raw.startswith(b"HTTP/1.1 200"):
                self.bad_status += 1
            del raw[:end + 4]
            st[1] = True
            self.headers_seen += 1
        body: bytearray = st[2]
        while True:
            nl = raw.find(b"\r\n")
            if nl < 0:
                break
            size = int(raw[:nl].split(b";")[0], 16)
            if len(raw) < nl + 2 + size + 2:
                break
            body += raw[nl + 2:nl + 2 + size]
            del raw[:nl + 2 + size + 2]
        record = now >= self.record_after
        while True:
            nl = body.find(b"\n")
            if nl < 0:
                return
            line = bytes(body[:nl])
            del body[:nl + 1]
            i = line.find(b'"ts":"')
            if i >= 0 and record:
                ts = float(line[i + 6:line.index(b'"', i + 6)])
                self.latencies.append(now - ts)


def run_watches(port: int, watches: int, seconds: float, warmup: float = 1.0
                ) -> tuple[list[float], int, str]:
    socks = []
    for i in range(watches):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall((f"GET /api/v1/namespaces/default/configmaps?watch=true&"
                   f"allowWatchBookmarks=true&resourceVersion=1000&timeoutSeconds=300&"
                   f"fieldSelector=metadata.name%3Dcm-{i} HTTP/1.1\r\nHost: bench\r\n"
                   f"User-Agent: {KUBELET_UA}\r\nAccept: application/json\r\n\r\n").encode())
        socks.append(s)
    reader = WatchReader(socks)
    reader.start()
    try:
        wait_for(lambda: reader.headers_seen >= watches, 30, f"{watches} watch responses")
        reader.record_after = time.time() + warmup
        time.sleep(warmup + seconds)
        reader.record_after = float("inf")
        problems = []
        if reader.bad_status:
            problems.append(f"{reader.bad_status} non-200")
        if reader.closed:
            problems.append(f"{reader.closed} closed early")
        return list(reader.latencies), reader.headers_seen, ", ".join(problems)
    finally:
        reader.stop_event.set()
        reader.join(2)
        for s in socks:
            s.close()


def bench_watch(args: argparse.Namespace, work: Path) -> None:
    """Also over TLS: an nginx terminating TLS in front of the event source is the upstream
    of a second hub and of an nginx proxying it (``proxy_pass https://``), as the cloud's
    apiserver would be."""
    from kubesandbox import tls

    rate = 10
    print(f"\n== watch latency: {args.watches} watches x {rate} events/s = "
          f"{args.watches * rate} events/s, {args.watch_seconds:.0f} s per run "
          f"(+1 s warm-up) ==")
    src = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_eventsource.py"),
                            "--rate", str(rate)], stdout=subprocess.PIPE, text=True)
    assert src.stdout is not None
    nginxes: list[Nginx] = []
    hubs: list[HubProcess] = []
    cases = (*CASES, "nginx over TLS", "hub over TLS")
    try:
        src_port = int(src.stdout.readline().split()[1])
        peer_port, tls_port, tls_peer_port = free_port(), free_port(), free_port()
        pki = tls.make_self_signed(work / "pki-watch")
        plain = f"listen 127.0.0.1:{tls_port} backlog=4096;"
        nginxes.append(Nginx(work, "watch-peer",
                             proxy_server_block(peer_port, src_port, "events")).start())
        nginxes.append(Nginx(work, "watch-tls", proxy_server_block(
            tls_port, src_port, "events").replace(plain, f"listen 127.0.0.1:{tls_port} ssl "
                                                  f"backlog=4096; ssl_certificate "
                                                  f"{pki.server_cert}; ssl_certificate_key "
                                                  f"{pki.server_key};")).start())
        nginxes.append(Nginx(work, "watch-tls-peer", proxy_server_block(
            tls_peer_port, tls_port, "eventstls", "https")).start())
        hub = HubProcess(work, f"http://127.0.0.1:{src_port}", work / "cache-watch",
                         extra=["--threads", "256"]).start()
        hubs.append(hub)
        tls_hub = HubProcess(work, f"https://127.0.0.1:{tls_port}", work / "cache-watch-tls",
                             extra=["--threads", "256", "--ca-file", pki.ca_cert]).start()
        hubs.append(tls_hub)
    except BaseException:
        for h in hubs:
            h.stop()
        for n in nginxes:
            n.stop()
        src.kill()
        src.wait()
        raise
    lat: dict[str, list[list[float]]] = {c: [] for c in cases}
    counts: dict[str, list[int]] = {c: [] for c in cases}
    hub_rss: list[float] = []
    hub_threads: list[int] = []
    hub_cpu: list[float] = []
    src_cpu: list[float] = []
    problems: list[str] = []
    spy = None
    try:
        batches0 = hub.metric("yurthub_cache_commits_total", kind="batch")
        for rep in range(args.rounds):
            for case in cases[rep % 5:] + cases[:rep % 5]:
                port = {"direct": src_port, "nginx": peer_port, "hub": hub.proxy_port,
                        "nginx over TLS": tls_peer_port,
                        "hub over TLS": tls_hub.proxy_port}[case]
                worker = (tls_hub if case == "hub over TLS" else hub).worker
                c0, s0, t0 = cpu_seconds(worker), cpu_seconds(src.pid), time.monotonic()
                if case == "hub" and rep == 0:
                    spy = PySpy(args.py_spy, worker, "watch", args.watch_seconds + 3)
                result: dict[str, Any] = {}

                def sample(result: dict[str, Any] = result, worker: int = worker) -> None:
                    time.sleep(1.0 + args.watch_seconds / 2)
                    result["rss"] = mem_mb(worker)[0]
                    result["threads"] = threads_of(worker)

                sampler = threading.Thread(target=sample, daemon=True)
                if case == "hub":
                    sampler.start()
                values, _opened, why = run_watches(port, args.watches, args.watch_seconds)
                elapsed = time.monotonic() - t0
                if case == "hub":
                    sampler.join()
                    hub_rss.append(result["rss"])
                    hub_threads.append(result["threads"])
                    hub_cpu.append((cpu_seconds(worker) - c0) / elapsed)
                    if spy is not None:
                        spy.stop()
                        spy = None
                src_cpu.append((cpu_seconds(src.pid) - s0) / elapsed)
                lat[case].append(values)
                counts[case].append(len(values))
                if why:
                    problems.append(f"{case} run {rep + 1}: {why}")
                time.sleep(0.5)  # let the closed watches end on every side
        batches = hub.metric("yurthub_cache_commits_total", kind="batch") - batches0
        dropped = hub.metric("yurthub_cache_entries_dropped_total")
    finally:
        for h in hubs:
            h.stop()
        for n in nginxes:
            n.stop()
        src.kill()
        src.wait()
    expected = args.watches * rate * args.watch_seconds
    print(f"latency from the upstream's time.time() stamp to the client's read, ms "
          f"(per-run figure: median (min-max) over {args.rounds} runs)")
    print(f"  {'':14} {'p50':>22} {'p99':>22} {'max':>22}  events/run (expected ~{expected:.0f})")
    for case in cases:
        runs = lat[case]
        print(f"  {case:<14} {spread([pct(r, 0.5) for r in runs], 1000, '{:.2f}'):>22} "
              f"{spread([pct(r, 0.99) for r in runs], 1000, '{:.2f}'):>22} "
              f"{spread([max(r, default=float('nan')) for r in runs], 1000, '{:.1f}'):>22}  "
              f"{spread(counts[case], 1, '{:.0f}')}")
    print("added latency, paired per run (case - direct), ms; over TLS the upstream is an "
          "nginx terminating TLS in front of the same source")
    for case in ("nginx", "hub", "nginx over TLS", "hub over TLS"):
        d50 = [pct(a, 0.5) - pct(b, 0.5) for a, b in zip(lat[case], lat["direct"], strict=True)]
        d99 = [pct(a, 0.99) - pct(b, 0.99) for a, b in zip(lat[case], lat["direct"],
                                                            strict=True)]
        target = "  [target: hub p99 added <= 5 ms]" if case.startswith("hub") else ""
        print(f"  {case:<14} p50 {spread(d50, 1000, '{:+.2f}')}   "
              f"p99 {spread(d99, 1000, '{:+.2f}')}{target}")
    print(f"hub worker with {args.watches} watches: RSS {spread(hub_rss, 1, '{:.1f}')} MB, "
          f"{spread(hub_threads, 1, '{:.0f}')} threads, CPU "
          f"{spread(hub_cpu, 100, '{:.0f}')}% of one core; event source CPU "
          f"{spread(src_cpu, 100, '{:.0f}')}%")
    print(f"hub cache: {batches:.0f} batch commits for {sum(counts['hub']):,} events recorded "
          f"(~{batches / max(1, args.rounds * (args.watch_seconds + 1.5)):.0f} commits/s), "
          f"{dropped:.0f} entries dropped")
    for p in problems:
        print(f"  note: {p}")


# -- small GETs ---------------------------------------------------------------------------

def paced_gets(port: int, path: str, headers: dict[str, str], rate: float, seconds: float,
               conns: int = 8) -> tuple[list[float], list[float], int]:
    """Open loop: request j is due at t0 + j/rate, on connection j % conns (keep-alive).

    Returns (latency from the due time, latency from the actual send, errors).
    """
    n = int(rate * seconds)
    results: list[tuple[float, float] | None] = [None] * n
    errors = [0]
    t0 = time.monotonic() + 0.3
    barrier = threading.Barrier(conns)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers=headers)  # opens the connection
        conn.getresponse().read()
        barrier.wait()
        for j in range(k, n, conns):
            due = t0 + j / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            try:
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            done = time.monotonic()
            if not ok:
                errors[0] += 1
            results[j] = (done - due, done - sent)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [r for r in results if r is not None]
    return [r[0] for r in got], [r[1] for r in got], errors[0]


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

def fs_banner(path: str) -> str:
    """The file system holding ``path``, and whether ext4 journals it (which changes how
    fast new files are created right after many were deleted: see bench/README.md)."""
    best = ("", "?", "")
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if (path + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    mnt, fstype, dev = best
    if fstype == "ext4":
        name = os.path.basename(os.path.realpath(dev))
        journal = any(d.startswith(name + "-") for d in os.listdir("/proc/fs/jbd2")) \
            if os.path.isdir("/proc/fs/jbd2") else False
        return f"ext4 on {dev} at {mnt}, {'with' if journal else 'WITHOUT'} a journal"
    return f"{fstype} on {dev} at {mnt}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="list,tls,proto,watch,get")
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
                        "by side, in the tls section")
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
