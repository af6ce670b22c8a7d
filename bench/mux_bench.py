"""Cloud traffic of the node-level multiplexer: N components list+watching Services and
EndpointSlices through one hub, during a run of updates (issue 15 §3 and §5).

A sandbox apiserver runs in a child process (``--services`` Services, each with an
EndpointSlice); a byte-counting TCP relay in this process sits between the hub and it, so
"bytes from the cloud" are the bytes the hub really received.  Each case starts a fresh
``python -m yurthub serve`` child (edge mode, one heartbeat an hour so probes do not count),
starts its clients (each lists, then watches from the list's resourceVersion, both
resources, over HTTP with its own User-Agent), makes ``--updates`` changes (four in five
change an EndpointSlice's addresses, one in five a Service's labels), waits until every
client has seen the last one, and prints the bytes the hub received meanwhile:

- ``1 client, no multiplexer``: the reference (kube-proxy alone, the hub proxying it);
- ``5 clients, no multiplexer``: what a node's components cost without it;
- ``5 clients, multiplexer``: the same five served from one upstream list+watch.

The ratio of the last to the first is the figure issue 15 asks for (<= 1.2).  Then every
client's event stream through the multiplexer is compared with what a direct watch of the
apiserver sends from the same resourceVersion (decoded events, in order): "identical" or the
first difference.  Nothing is asserted.

Usage: python bench/mux_bench.py [--services 100] [--updates 1000] [--clients 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import HubProcess, stack_banner, wait_for  # (puts the repository on sys.path)

from tests.fixtures.sandboxes import SandboxProcess

SVC = "/api/v1/services"
EPS = "/apis/discovery.k8s.io/v1/endpointslices"
AGENTS = ["kube-proxy", "coredns", "cilium-agent", "nginx-ingress", "node-local-dns"]


class Relay:
    """A TCP relay to ``target`` that counts the bytes coming back from it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.down = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def bytes(self) -> int:
        with self.lock:
            return self.down


class Client(threading.Thread):
    """One component's list+watch of one resource; records the events after its list."""

    def __init__(self, port: int, path: str, ua: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.ua = port, path, ua
        self.list_rv = 0
        self.rv = 0
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.listed = threading.Event()
        self.error = ""

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            conn.request("GET", self.path, headers={"User-Agent": self.ua})
            doc = json.loads(conn.getresponse().read())
            self.list_rv = self.rv = int(doc["metadata"]["resourceVersion"])
            self.listed.set()
            conn.request("GET", f"{self.path}?watch=true&resourceVersion={self.list_rv}"
                         "&allowWatchBookmarks=true&timeoutSeconds=600",
                         headers={"User-Agent": self.ua})
            resp = conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    return
                ev = json.loads(line)
                self.rv = int(ev["object"]["metadata"]["resourceVersion"])
                if ev["type"] != "BOOKMARK":
                    self.events.append((ev["type"], ev["object"]))
        except Exception as e:  # printed with the results
            self.error = repr(e)
            self.listed.set()


def service(i: int, gen: int = 0) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": "default",
                         "labels": {"app": f"svc-{i}", "gen": str(gen)}},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}}


def slice_(i: int, gen: int = 0) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-abcde", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.{gen % 250}.{i % 250}.{k}"],
                           "conditions": {"ready": True}, "nodeName": f"node-{k}"}
                          for k in range(1, 4)],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


def run_case(sb: SandboxProcess, relay: Relay, work: Path, *, clients: int, mux: bool,
             services: int, updates: int, gen0: int) -> tuple[int, list[Client]]:
    extra = ["--heartbeat-interval-seconds", "3600", "--threads", "64"]
    if not mux:
        extra += ["--pool-scope-resources", ""]
    hub = HubProcess(work, f"http://127.0.0.1:{relay.port}",
                     work / f"cache-{gen0}", extra=extra).start()
    try:
        before = relay.bytes()
        started: list[Client] = []
        for ua in AGENTS[:clients]:
            for path in (SVC, EPS):
                c = Client(hub.proxy_port, path, f"{ua}/v1.32")
                c.start()
                started.append(c)
        for c in started:
            c.listed.wait(60)
        for n in range(updates):
            i = n % services
            gen = gen0 + n // services + 1
            sb.put(service(i, gen) if n % 5 == 4 else slice_(i, gen))
        final = sb.resource_version
        wait_for(lambda: all(c.rv >= final or c.error for c in started), 120,
                 "every client saw the last update")
        time.sleep(0.5)  # bookmarks in flight are part of the cost
        return relay.bytes() - before, started
    finally:
        hub.stop(15)


def direct_events(sb: SandboxProcess, path: str, since: int, until: int
                  ) -> list[tuple[str, dict[str, Any]]]:
    host, port = sb.url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", f"{path}?watch=true&resourceVersion={since}&allowWatchBookmarks=true"
                 "&timeoutSeconds=30", headers={"User-Agent": "direct/1"})
    resp = conn.getresponse()
    out = []
    while True:
        line = resp.readline()
        if not line:
            break
        ev = json.loads(line)
        if ev["type"] != "BOOKMARK":
            out.append((ev["type"], ev["object"]))
        if int(ev["object"]["metadata"]["resourceVersion"]) >= until:
            break
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=5)
    args = ap.parse_args()
    print(stack_banner())
    work = Path(tempfile.mkdtemp(prefix="mux-bench-", dir="/var/tmp"))
    # One node (the hub's): what the response filters need to know of it exists, so
    # kube-proxy and coredns are answered as on a real node.
    sb = SandboxProcess(nodes=1, pods_per_node=0, history_size=100_000,
                        bookmark_interval=60.0).start()
    try:
        for i in range(args.services):
            sb.put(service(i))
            sb.put(slice_(i))
        host, port = sb.url.split("//", 1)[1].rsplit(":", 1)
        relay = Relay((host, int(port)))
        print(f"{args.services} Services + {args.services} EndpointSlices, "
              f"{args.updates} updates per case; bytes the hub received from the cloud:")
        cases = [("1 client, no multiplexer", 1, False),
                 (f"{args.clients} clients, no multiplexer", args.clients, False),
                 (f"{args.clients} clients, multiplexer", args.clients, True)]
        figures: dict[str, int] = {}
        muxed: list[Client] = []
        for n, (label, clients, mux) in enumerate(cases):
            got, started = run_case(sb, relay, work, clients=clients, mux=mux,
                                    services=args.services, updates=args.updates,
                                    gen0=(n + 1) * 1000)
            figures[label] = got
            errors = [c.error for c in started if c.error]
            print(f"  {label:<28} {got / 1e6:8.2f} MB"
                  f"{'  errors: ' + '; '.join(errors) if errors else ''}")
            if mux:
                muxed = started
        one = figures[cases[0][0]]
        print(f"  ratio {cases[2][0]} / {cases[0][0]}: {figures[cases[2][0]] / one:.2f}x "
              f"(goal <= 1.2x); without the multiplexer: {figures[cases[1][0]] / one:.2f}x")
        print("event streams through the multiplexer vs a direct watch of the apiserver "
              "from the same resourceVersion:")
        for c in muxed:
            # Up to its last event (its last version may be a bookmark's, which a direct
            # watch would only reach at the apiserver's next bookmark).
            last = int(c.events[-1][1]["metadata"]["resourceVersion"]) if c.events else c.rv
            want = direct_events(sb, c.path, c.list_rv, last)
            if c.events == want:
                verdict = f"identical ({len(want)} events)"
            else:
                diff = next((i for i, (a, b) in enumerate(zip(c.events, want, strict=False))
                             if a != b), min(len(c.events), len(want)))
                verdict = (f"DIFFERENT at event {diff} ({len(c.events)} vs {len(want)} "
                           "events)")
            print(f"  {c.ua:<26} {c.path:<42} {verdict}")
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
