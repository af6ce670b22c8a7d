"""proxy_bench.py's TLS, chunked and protobuf sections: the big list from an HTTPS upstream
(with a length, and chunked as kube-apiserver sends it), and protobuf passed through
untouched."""

from __future__ import annotations

import argparse
import http.client
import ssl
import time
from pathlib import Path

from _common import (
    KUBE_PROXY_UA,
    KUBELET_UA,
    ROOT,
    HubProcess,
    Nginx,
    cpu_seconds,
    free_port,
    med,
    proxy_server_block,
    spread,
)
from _proxydata import (
    PLAIN,
    ListFigures,
    hub_list,
    publish,
    timed_get,
    upstream_server_block,
    with_new_rvs,
)

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
                                       for kind in (" not cached", "", " unfiltered")]
        for rep in range(2 * args.rounds):
            fig.generation += 1
            publish(data_dir, "pods.json", with_new_rvs(base, fig.generation))
            k = rep % len(cases)
            for case in cases[k:] + cases[:k]:
                name = case.removesuffix(" not cached").removesuffix(" unfiltered")
                worker = hubs[name].worker if name in hubs else 0
                cpu0 = cpu_seconds(worker) if worker else 0.0
                if case in hubs or case.endswith(" unfiltered"):
                    # kubelet's list goes through serviceenvupdater's scan; kube-proxy's is
                    # cached too, with no filter on pods: the difference is the filter's
                    key = (f"{name} caching (all objects changed)" if case in hubs else
                           f"{name} caching, no filter (kube-proxy)")
                    ua = KUBELET_UA if case in hubs else KUBE_PROXY_UA
                    hub_list(hubs[name], fig, key, {**PLAIN, "User-Agent": ua}, objects)
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


# -- the list sent chunked, as kube-apiserver sends it -------------------------------------

CHUNK_SIZES = (2048, 16384)


def bench_chunked_list(args: argparse.Namespace, work: Path, base: bytes) -> None:
    """The list from an HTTPS upstream that sends it chunked in small chunks
    (``_chunkedsource.py``), as kube-apiserver does: nginx proxying it, the hub as a plain
    proxy and caching as kube-proxy (no filter on pods); with ``--baseline DIR`` also that
    tree's hub.  Client-visible time and the worker's CPU per list."""
    import subprocess
    import sys

    from kubesandbox import tls

    print(f"\n== big list sent chunked by an HTTPS upstream (Go's chunks: "
          f"{', '.join(str(c) for c in CHUNK_SIZES)} bytes), {len(base) / 1e6:.1f} MB ==")
    pki = tls.make_self_signed(work / "pki-chunked")
    body = work / "pods-chunked.json"
    body.write_bytes(base)
    roots = {"hub": ROOT, **({"baseline hub": args.baseline} if args.baseline else {})}
    fig = ListFigures()
    cpu: dict[str, list[float]] = {}
    for size in CHUNK_SIZES:
        src = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_chunkedsource.py"),
                                pki.server_cert, pki.server_key, str(body), "--chunk",
                                str(size)], stdout=subprocess.PIPE, text=True)
        assert src.stdout is not None
        up_port = int(src.stdout.readline().split()[1])
        peer_port = free_port()
        peer = Nginx(work, f"peer-chunked-{size}",
                     proxy_server_block(peer_port, up_port, "chunked", "https", 256), workers=2)
        hubs: dict[str, HubProcess] = {}
        try:
            peer.start()
            for name, root in roots.items():
                hubs[name] = HubProcess(work, f"https://127.0.0.1:{up_port}",
                                        work / f"cache-chunked-{size}-{name}",
                                        extra=["--threads", "256", "--ca-file", pki.ca_cert],
                                        root=root).start()
            cases = ["nginx"] + [f"{n}{k}" for n in hubs for k in (" not cached", " caching")]
            for rep in range(2 * args.rounds):
                k = rep % len(cases)
                for case in cases[k:] + cases[:k]:
                    name = case.removesuffix(" not cached").removesuffix(" caching")
                    key = f"{size} B chunks, {case}"
                    if case == "nginx":
                        port, ua, worker = peer_port, KUBE_PROXY_UA, 0
                    else:
                        port, worker = hubs[name].proxy_port, hubs[name].worker
                        ua = KUBE_PROXY_UA if case.endswith("caching") else "bench/1.0"
                    cpu0 = cpu_seconds(worker) if worker else 0.0
                    start, end, size_read, status = timed_get(
                        port, "/api/v1/pods", {**PLAIN, "User-Agent": ua})
                    if worker:
                        cpu.setdefault(key, []).append(cpu_seconds(worker) - cpu0)
                    if status != 200:
                        fig.notes.append(f"{key}: HTTP {status}")
                    fig.add(key, end - start, size_read)
                    if case.endswith("caching"):
                        time.sleep(1.5)  # the commit (not measured here) ends first
        finally:
            for hub in hubs.values():
                hub.stop()
            peer.stop()
            src.kill()
            src.wait()
    print("client-visible time of the whole body; CPU of the hub's worker until the response "
          "ended (10 ms ticks)")
    for key, t in fig.times.items():
        nginx = fig.times[key.split(", ")[0] + ", nginx"]
        ratio = f"  {med(t) / med(nginx):5.2f}x nginx" if not key.endswith("nginx") else ""
        extra = f"   CPU {spread(cpu[key], 1000, '{:.0f}')} ms" if key in cpu else ""
        print(f"  {key:<46} {spread(t, 1000, '{:.0f}'):>24} ms{ratio}{extra}")
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
