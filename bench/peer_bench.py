"""Who connects, and connections that freeze nothing: what issue 13 asks to measure.

1. **Peer lookup cost** (in-process): ``owner_of`` on an accepted loopback connection,
   netlink sock_diag and the /proc fallback, with 0, 300 and 2,000 other sockets open
   (/proc lists them all; netlink finds one).  Target: <= 100 us p99.
2. **End to end** (real hubs side by side, ``peer_lookup = auto`` vs ``off``): a request
   on a new connection, and on a kept-alive one (kubelet's Lease, answered by the hub).
   Target: a kept-alive request pays nothing.
3. **300 idle connections** (real hub, and the same hub under gunicorn's stock gthread
   worker for comparison): latency of ``/v1/healthz`` and of kubelet's Lease on new
   connections, with no idle connection and with 300 idle ones held by another user.
   Target: no more than 1 s of delay.

Asserts nothing; prints medians and spreads measured side by side in one run.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import pct, spread, stack_banner, wait_for

from kubesandbox.server import Sandbox
from tests.fixtures.hub import Hub
from tests.fixtures.peers import spawn_as_nobody
from yurthub import peercred

NODE = "node-0000"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
KUBELET = {"User-Agent": "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"}
CLIENT_TIMEOUT = 10.0


# -- 1. the lookup itself ---------------------------------------------------------------------

def lookup_cost(n: int) -> None:
    print("\n1. peer lookup per accepted connection (us): p50 / p99 / max")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    addr = listener.getsockname()
    others: list[socket.socket] = []
    for extra in (0, 300, 2000):
        while len(others) < 2 * extra:
            c = socket.create_connection(addr)
            s, _ = listener.accept()
            others += [c, s]
        row = []
        for mode in ("netlink", "proc"):
            lookup = peercred.open_lookup(mode)
            assert lookup is not None
            times = []
            for _ in range(n if mode == "netlink" else max(50, n // 20)):
                c = socket.create_connection(addr)
                s, _ = listener.accept()
                t0 = time.perf_counter()
                peercred.owner_of(lookup, s)
                times.append((time.perf_counter() - t0) * 1e6)
                s.close()
                c.close()
            lookup.close()
            row.append(f"{mode} {pct(times, .5):7.1f} / {pct(times, .99):7.1f} / "
                       f"{max(times):7.1f}")
        print(f"   {extra:5d} other connections:  " + "   ".join(row))
    for s in others:
        s.close()
    listener.close()


# -- hubs -------------------------------------------------------------------------------------

def timed(port: int, path: str, headers: dict[str, str] | None = None,
          conn: http.client.HTTPConnection | None = None) -> float:
    """Seconds for one request (a new connection unless ``conn``); inf when it timed out."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    t0 = time.perf_counter()
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        r.read()
        ok = r.status == 200
    except OSError:
        ok = False
    took = time.perf_counter() - t0
    if conn is None:
        c.close()
    return took if ok else float("inf")


def hold_lease(hub: Hub) -> None:
    assert timed(hub.proxy_port, LEASE, KUBELET) < float("inf")
    wait_for((hub.cache_dir / "kubelet/leases.v1.coordination.k8s.io/kube-node-lease"
              / NODE).exists, 20, "the hub holding kubelet's Lease")


class StockGthread(Hub):
    """The same hub and settings, under gunicorn's own gthread worker (the 'before')."""

    def args(self) -> list[str]:
        ini = self.tmp / f"stock-{self.proxy_port}.conf"
        ini.write_text("[yurthub]\n" + "".join(
            f"{k} = {v}\n" for k, v in (
                ("server_addr", self.server), ("node_name", self.node),
                ("disk_cache_path", self.cache_dir), ("proxy_port", self.proxy_port),
                ("serve_port", self.serve_port), ("threads", 256),
                ("heartbeat_interval_seconds", 1), ("graceful_timeout", 5))))
        conf = self.tmp / f"stock-{self.proxy_port}.py"
        conf.write_text("from yurthub import service\n"
                        "globals().update(service.gunicorn_settings(service.load_config()))\n"
                        "worker_class = 'gthread'\n")
        self.env_config = str(ini)
        return [sys.executable, "-m", "gunicorn", "--config", str(conf),
                "yurthub.wsgi:application"]

    def start(self, wait: bool = True) -> Hub:
        import os
        self.args()
        os.environ["YURTHUB_CONFIG"] = self.env_config
        try:
            return super().start(wait)
        finally:
            del os.environ["YURTHUB_CONFIG"]


def end_to_end(sandbox: Sandbox, tmp: Path, rounds: int, n: int) -> None:
    print("\n2. lookup on vs off, end to end (ms): kubelet's Lease answered by the hub")
    hubs = {}
    for name, extra in (("peer_lookup=auto", []), ("peer_lookup=off", ["--peer-lookup", "off"])):
        d = tmp / name
        d.mkdir()
        hubs[name] = Hub(d, sandbox.url, node=NODE, extra=["--threads", "256", *extra]).start()
        hold_lease(hubs[name])
    fresh: dict[str, list[float]] = {k: [] for k in hubs}
    kept: dict[str, list[float]] = {k: [] for k in hubs}
    try:
        for _ in range(rounds):
            for name, hub in hubs.items():
                fresh[name] += [timed(hub.proxy_port, LEASE, KUBELET) for _ in range(n)]
                c = http.client.HTTPConnection("127.0.0.1", hub.proxy_port, timeout=10)
                timed(hub.proxy_port, LEASE, KUBELET, c)
                kept[name] += [timed(hub.proxy_port, LEASE, KUBELET, c) for _ in range(n)]
                c.close()
        for label, series in (("new connection", fresh), ("kept-alive", kept)):
            for name in hubs:
                v = series[name]
                print(f"   {label:15s} {name:17s} p50 {pct(v, .5) * 1e3:6.3f}  "
                      f"p99 {pct(v, .99) * 1e3:6.3f}  (n={len(v)})")
            d50 = (pct(series["peer_lookup=auto"], .5) - pct(series["peer_lookup=off"], .5))
            print(f"   {label:15s} difference of the medians: {d50 * 1e6:+.0f} us")
    finally:
        for hub in hubs.values():
            hub.stop()


def series(n: int, one: Callable[[], float]) -> list[float]:
    """``n`` timings, stopping after 3 timeouts in a row (a frozen server)."""
    out: list[float] = []
    for _ in range(n):
        out.append(one())
        if out[-3:] == [float("inf")] * 3:
            break
    return out


_HOLD = r"""
import socket, sys
proxy, hub, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = [socket.create_connection(("127.0.0.1", proxy)) for _ in range(n)]
print("holding", len(held), flush=True)
sys.stdin.read()
"""


def idle_flood(sandbox: Sandbox, tmp: Path, n: int, idle: int) -> None:
    print(f"\n3. /v1/healthz and kubelet's Lease on new connections (ms), {idle} idle "
          "connections of another user (nobody) to the proxy port; threads = 256")
    for name, cls in (("yurthub worker", Hub), ("stock gthread", StockGthread)):
        d = tmp / name.replace(" ", "-")
        d.mkdir()
        hub = cls(d, sandbox.url, node=NODE, extra=["--threads", "256"]).start()
        try:
            hold_lease(hub)
            for held in (0, idle):
                flood = None
                if held:
                    flood = spawn_as_nobody(_HOLD, str(hub.proxy_port), str(hub.serve_port),
                                            str(held))
                    assert flood.stdout is not None
                    flood.stdout.readline()
                    time.sleep(0.5)   # the worker accepts them (gthread: hands them threads)
                try:
                    hz = series(n, lambda h=hub: timed(h.serve_port, "/v1/healthz"))
                    lease = series(n, lambda h=hub: timed(h.proxy_port, LEASE, KUBELET))
                finally:
                    if flood is not None:
                        flood.kill()
                        flood.wait()
                for what, v in (("healthz", hz), ("Lease", lease)):
                    lost = sum(1 for x in v if x == float("inf"))
                    ok = [x for x in v if x != float("inf")]
                    tail = (f"; {lost}/{len(v)} timed out after {CLIENT_TIMEOUT:g} s (stopped "
                            "after 3 in a row)") if lost else ""
                    print(f"   {name:15s} {held:4d} idle  {what:8s} "
                          f"{spread(ok, 1e3, '{:.2f}')}  p99 {pct(ok, .99) * 1e3:.2f}{tail}")
        finally:
            if hub.proc is not None and hub.proc.poll() is None:
                hub.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="lookup,e2e,idle")
    p.add_argument("--n", type=int, default=200, help="requests per case and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--idle", type=int, default=300)
    args = p.parse_args()
    only = set(args.only.split(","))
    print(stack_banner(), flush=True)
    if "lookup" in only:
        lookup_cost(args.n * 10)
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="peer-bench-") as tmp:
        sandbox = Sandbox(nodes=2, pods_per_node=3, control_port=0).start()
        try:
            if "e2e" in only:
                (Path(tmp) / "e2e").mkdir()
                end_to_end(sandbox, Path(tmp) / "e2e", args.rounds, args.n)
            if "idle" in only:
                (Path(tmp) / "idle").mkdir()
                idle_flood(sandbox, Path(tmp) / "idle", max(20, args.n // 10), args.idle)
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main()
