"""proxy_bench.py's watch section: 200 watches through the hub, nginx and direct."""

from __future__ import annotations

import argparse
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    KUBELET_UA,
    HubProcess,
    Nginx,
    PySpy,
    cpu_seconds,
    free_port,
    mem_mb,
    pct,
    proxy_server_block,
    spread,
    threads_of,
    wait_for,
)
from _proxydata import CASES

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


def configmap_watch(i: int) -> bytes:
    """Watch number ``i`` as kubelet: one ConfigMap of the event source."""
    return (f"GET /api/v1/namespaces/default/configmaps?watch=true&"
            f"allowWatchBookmarks=true&resourceVersion=1000&timeoutSeconds=300&"
            f"fieldSelector=metadata.name%3Dcm-{i} HTTP/1.1\r\nHost: bench\r\n"
            f"User-Agent: {KUBELET_UA}\r\nAccept: application/json\r\n\r\n").encode()


def run_watches(port: int, watches: int, seconds: float, warmup: float = 1.0,
                request: Callable[[int], bytes] = configmap_watch
                ) -> tuple[list[float], int, str]:
    """Open ``watches`` watches (``request(i)`` each), record each event's latency for
    ``seconds`` after ``warmup``: (latencies, responses seen, problems)."""
    socks = []
    for i in range(watches):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(request(i))
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


def _stop(hubs: list[HubProcess], nginxes: list[Nginx], src: subprocess.Popen[str]) -> None:
    for h in hubs:
        h.stop()
    for n in nginxes:
        n.stop()
    src.kill()
    src.wait()


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
        _stop(hubs, nginxes, src)
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
        _stop(hubs, nginxes, src)
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
