"""The hub under saturation (issue 17): 200 pod watches, the cloud patching one pod every
50 ms, small GETs alongside; two rounds per case, side by side with 1,000 events/s.

Every process is separate, so no client is the bottleneck: the cloud (``_podcloud.py``,
one event per patch fanned out to every watch), the hub (``python -m yurthub serve``, one
gthread worker), four watch-client processes of 50 watches each (two as ``kubelet``, two
spreading the other seven cached components) and one small-GET process (20/s, open loop,
latency from each request's due time).  Per round: the worker's RSS (peak sampled every
0.25 s, and 5 s after the clients left), its open fds 5 s after the clients left (and
when they return to idle), the writer's events/s and lag (events the clients had received
minus events the cache writer had read, when they left; the tee backlog's peak), drops,
and the GETs' p50/p99/max and how many were answered.

    .venv/bin/python bench/saturation_bench.py               # 2 cases x 2 rounds x 120 s
    .venv/bin/python bench/saturation_bench.py --seconds 30 --intervals 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import KUBELET_UA, HubProcess, http_get, mem_mb, pct, stack_banner, wait_for

HERE = Path(__file__).resolve().parent
AGENTS = ["kube-proxy/v1.32.4", "flanneld/0.25", "coredns/1.11", "raven-agent-ds/1.4",
          "yurttunnel-agent/1.4", "yurthub/1.4", "bench-agent/1.0"]
WATCH_PATH = ("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000&watch=true"
              "&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3600")


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def fd_kinds(pid: int, proxy_port: int = 0, cloud_port: int = 0) -> dict[str, int]:
    """Open fds by kind: pipe, file, anon_inode; sockets split into client (to the proxy
    port), upstream (to the cloud) and other (listeners, the hub's own)."""
    tcp: dict[str, tuple[int, int]] = {}  # socket inode -> (local port, remote port)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    tcp[parts[9]] = (int(parts[1].rsplit(":", 1)[1], 16),
                                     int(parts[2].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    out: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for n in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        if target.startswith("socket:["):
            local, remote = tcp.get(target[8:-1], (0, 0))
            kind = ("client" if local == proxy_port and remote else
                    "upstream" if remote == cloud_port else "socket")
        elif ":" in target:
            kind = target.split(":")[0]
        else:
            kind = "file" if target.startswith("/") else "other"
        out[kind] = out.get(kind, 0) + 1
    return out


def released(hub: HubProcess, pid: int, idle: dict[str, int]) -> bool:
    """No client socket, no pipe beyond idle, no watch open, nothing in flight."""
    kinds = fd_kinds(pid, hub.proxy_port)
    if kinds.get("client", 0) or kinds.get("pipe", 0) > idle.get("pipe", 0):
        return False
    text = hub.metrics_text()
    return (hub.metric("yurthub_open_watches", text) == 0
            and hub.metric("node_yurthub_in_flight_requests_total", text) == 0)


class Sampler:
    """The worker's peak RSS and the tee backlog's peak while a round runs."""

    def __init__(self, hub: HubProcess, pid: int) -> None:
        self.hub, self.pid = hub, pid
        self.rss_peak = 0.0
        self.backlog_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.25):
            try:
                self.rss_peak = max(self.rss_peak, mem_mb(self.pid)[0])
            except OSError:
                return
            n += 1
            if n % 4 == 0:
                try:
                    b = self.hub.metric("yurthub_cache_tee_backlog_bytes")
                except OSError:
                    continue
                self.backlog_peak = max(self.backlog_peak, b)


def cloud_stats(port: int) -> dict:
    return json.loads(http_get(port, "/_cloud/stats", timeout=10)[1])


def run_round(hub: HubProcess, pid: int, cloud_port: int, seconds: float,
              idle: dict[str, int], watches: int, distinct: bool) -> dict:
    py = sys.executable
    rv = cloud_stats(cloud_port)["rv"]
    path = WATCH_PATH.format(rv=rv)
    if distinct:  # every watch its own view: nothing for the writer to share
        path += "&labelSelector=bench%21%3D{i}"
    per = watches // 4
    groups = [KUBELET_UA, KUBELET_UA, ",".join(AGENTS), ",".join(reversed(AGENTS))]
    before = hub.metrics_text()
    ev0 = hub.metric("yurthub_cache_watch_events_total", before)
    dropped0 = hub.metric("yurthub_cache_entries_dropped_total", before)
    clients = [subprocess.Popen([py, str(HERE / "_loadclients.py"), "watch",
                                 "--port", str(hub.proxy_port), "--count", str(per),
                                 "--agents", agents, "--path", path,
                                 "--first", str(n * per)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
               for n, agents in enumerate(groups)]
    wait_for(lambda: hub.metric("yurthub_open_watches", source="remote") >= per * 4, 60,
             "all watches open")
    out: dict = {}
    with Sampler(hub, pid) as sampler:
        getter = subprocess.Popen([py, str(HERE / "_loadclients.py"), "get", "--port",
                                   str(hub.proxy_port), "--seconds", str(seconds),
                                   "--agents", KUBELET_UA], stdout=subprocess.PIPE)
        # The same GETs straight to the cloud, at the same time: what the machine's load
        # alone costs a request (the machine is shared).
        direct = subprocess.Popen([py, str(HERE / "_loadclients.py"), "get", "--port",
                                   str(cloud_port), "--seconds", str(seconds),
                                   "--agents", KUBELET_UA], stdout=subprocess.PIPE)
        t0 = time.monotonic()
        s0 = cloud_stats(cloud_port)
        got = json.loads(getter.communicate()[0])
        base = json.loads(direct.communicate()[0])
        elapsed = time.monotonic() - t0
        s1 = cloud_stats(cloud_port)
        # The clients go away, all at once.
        results = []
        for c in clients:
            assert c.stdin is not None
            c.stdin.close()
        for c in clients:
            assert c.stdout is not None
            results.append(json.loads(c.stdout.read()))
            c.wait()
        gone = time.monotonic()
        text = hub.metrics_text()
    received = sum(r["events"] for r in results)
    read = hub.metric("yurthub_cache_watch_events_total", text) - ev0
    released_at = None
    while time.monotonic() - gone < 30:
        if released(hub, pid, idle):
            released_at = time.monotonic() - gone
            break
        time.sleep(0.05)
    time.sleep(max(0.0, gone + 5 - time.monotonic()))
    out["fds_5s"] = fds(pid)
    out["fd_kinds_5s"] = fd_kinds(pid, hub.proxy_port, cloud_port)
    out["released_s"] = released_at
    out["rss_peak"] = sampler.rss_peak
    out["rss_after"] = mem_mb(pid)[0]
    out["events_per_s"] = (s1["events_sent"] - s0["events_sent"]) / elapsed
    out["writer_per_s"] = read / elapsed
    out["writer_lag_events"] = received - read
    out["backlog_peak_mb"] = sampler.backlog_peak / 2**20
    text = hub.metrics_text()
    out["dropped"] = hub.metric("yurthub_cache_entries_dropped_total", text) - dropped0
    out["applied"] = hub.metric("yurthub_cache_watch_events_total", text, result="applied")
    out["duplicate"] = hub.metric("yurthub_cache_watch_events_total", text,
                                  result="duplicate")
    lat = sorted(got["latencies"])
    out["gets"] = f"{got['answered']}/{got['asked']}"
    out["get_p50"] = pct(lat, 0.50) * 1000 if lat else float("nan")
    out["get_p99"] = pct(lat, 0.99) * 1000 if lat else float("nan")
    out["get_max"] = lat[-1] * 1000 if lat else float("nan")
    out["get_dropped"] = got["dropped"][:3]
    blat = sorted(base["latencies"])
    out["direct_p50"] = pct(blat, 0.50) * 1000 if blat else float("nan")
    out["direct_p99"] = pct(blat, 0.99) * 1000 if blat else float("nan")
    out["cloud_backlog_kb"] = s1["max_backlog"] / 1024
    return out


def run_case(interval: float, seconds: float, rounds: int, watches: int,
             extra: list[str], distinct: bool, keep_log: str) -> list[dict]:
    py = sys.executable
    cloud = subprocess.Popen([py, str(HERE / "_podcloud.py"), "--interval", str(interval)],
                             stdout=subprocess.PIPE, text=True)
    assert cloud.stdout is not None
    cloud_port = int(cloud.stdout.readline().split()[1])
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="satbench-") as tmp:
        hub = HubProcess(Path(tmp), f"http://127.0.0.1:{cloud_port}", Path(tmp) / "cache",
                         extra=["--threads", "256", "--cache-agents", "bench-agent", *extra])
        hub.start()
        try:
            pid = hub.worker
            time.sleep(1.0)
            idle_rss, idle_fds = mem_mb(pid)[0], fds(pid)
            idle = fd_kinds(pid, hub.proxy_port, cloud_port)
            print(f"  idle: RSS {idle_rss:.0f} MB, {idle_fds} fds {idle}", flush=True)
            out = []
            for r in range(rounds):
                res = run_round(hub, pid, cloud_port, seconds, idle, watches, distinct)
                res["idle_rss"], res["idle_fds"] = idle_rss, idle_fds
                k = res["fd_kinds_5s"]
                res["client_5s"] = k.get("client", 0)
                res["pipes_5s"] = k.get("pipe", 0) - idle.get("pipe", 0)
                res["upstream_5s"] = k.get("upstream", 0)
                res["files_5s"] = k.get("file", 0)
                out.append(res)
                print(f"  round {r + 1}: {json.dumps(res)}", flush=True)
            drops = [line for line in hub.log().splitlines()
                     if "dropping cache entry" in line or "tee memory" in line]
            print(f"  hub log: {len(drops)} drop lines", flush=True)
            if keep_log:
                shutil.copy(hub.log_path, keep_log)
                print(f"  hub log kept in {keep_log}", flush=True)
            for line in drops[:3]:
                print(f"    {line[:200]}")
            return out
        finally:
            hub.stop()
            cloud.terminate()
            cloud.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0, help="length of one round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--watches", type=int, default=200)
    p.add_argument("--intervals", default="0.05,0.2",
                   help="seconds between patches, one case each (0.05: ~4,000 events/s)")
    p.add_argument("--hub-arg", action="append", default=[], help="extra flag for the hub")
    p.add_argument("--keep-log", default="", metavar="PATH",
                   help="copy the hub's log to PATH.<interval> (with --hub-arg=--log-level=DEBUG "
                        "it times every request inside the hub)")
    p.add_argument("--distinct", action="store_true",
                   help="every watch its own label selector (200 views): the worst case "
                        "for the writer, where no two watches share events")
    args = p.parse_args()
    print(stack_banner(), flush=True)
    cases = {}
    for interval in (float(x) for x in args.intervals.split(",")):
        print(f"case: a patch every {interval * 1000:.0f} ms, {args.watches} watches", flush=True)
        cases[interval] = run_case(interval, args.seconds, args.rounds, args.watches,
                                   args.hub_arg, args.distinct,
                                   args.keep_log and f"{args.keep_log}.{interval}")
    rows = [("events/s leaving the hub", "events_per_s", "{:.0f}"),
            ("writer events read/s", "writer_per_s", "{:.0f}"),
            ("writer lag at the end (events)", "writer_lag_events", "{:.0f}"),
            ("tee backlog peak (MB)", "backlog_peak_mb", "{:.1f}"),
            ("entries dropped", "dropped", "{:.0f}"),
            ("worker RSS idle (MB)", "idle_rss", "{:.0f}"),
            ("worker RSS peak (MB)", "rss_peak", "{:.0f}"),
            ("worker RSS 5 s after (MB)", "rss_after", "{:.0f}"),
            ("fds idle", "idle_fds", "{}"),
            ("fds 5 s after clients left", "fds_5s", "{}"),
            ("  of which client sockets", "client_5s", "{}"),
            ("  of which tee pipes (beyond idle)", "pipes_5s", "{}"),
            ("  upstream keep-alive (pool)", "upstream_5s", "{}"),
            ("  collection dirs, files", "files_5s", "{}"),
            ("clients' resources released (s)", "released_s", "{:.2f}"),
            ("small GETs answered", "gets", "{}"),
            ("small GET p50 (ms)", "get_p50", "{:.1f}"),
            ("small GET p99 (ms)", "get_p99", "{:.1f}"),
            ("small GET max (ms)", "get_max", "{:.1f}"),
            ("same GETs to the cloud p50 (ms)", "direct_p50", "{:.1f}"),
            ("same GETs to the cloud p99 (ms)", "direct_p99", "{:.1f}")]
    heads = [f"{1 / i * args.watches:.0f} ev/s r{r + 1}" for i in cases
             for r in range(args.rounds)]
    print()
    print(f"| {'':36} | " + " | ".join(f"{h:>14}" for h in heads) + " |")
    print(f"|{'-' * 38}|" + "|".join("-" * 16 for _ in heads) + "|")
    for label, key, fmt in rows:
        cells = []
        for res in cases.values():
            for r in res:
                v = r.get(key)
                cells.append("-" if v is None else fmt.format(v))
        print(f"| {label:36} | " + " | ".join(f"{c:>14}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
