"""Soak: one edge node's components through a flapping cloud link, for many minutes.

One real hub (``yurthub serve`` under gunicorn, tests/fixtures/hub.py) in front of a sandbox
apiserver in a child process (``--nodes 20``), reached through a relay that can go silent (a
link that stops passing packets: bytes wait, connections stay open) while the sandbox itself
can also go away (connections refused and cut).  Node components, each with its own
User-Agent and the real ``kubernetes`` client's list+watch (resume from the last
resourceVersion, relist on 410):

- kubelet: pods of its node (list+watch), pod status patches, Lease renewals, its Node, node
  status patches every 10 s, the ConfigMaps and ServiceAccount tokens (TokenRequest) of its pods;
- kube-proxy: Services and EndpointSlices; coredns: Services, EndpointSlices, Namespaces;
  flanneld: Nodes; an operator (a cache agent by config): ConfigMaps with a label selector.

A driver changes the cloud all along (pods of the node come and go, endpoints move, labelled
ConfigMaps change, nodes get labels), the link flaps (cut 5-60 s, back 5-60 s), the hub is
restarted once during a cut and once as the link returns.  After each reconnection every
client's view must equal a fresh list (through the hub for filtered components, direct
otherwise) within ``--converge`` seconds.  Prints figures: the worker's RSS, threads and fds
over time, convergence times, errors, the hub log's ERROR lines and the cache verification.

    .venv/bin/python bench/soak_flap.py --minutes 10 [--seed N] [--port-base 42000]
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _soak import (
    NODE,
    OPERATOR,
    PATHS,
    SELECTOR,
    AnyInformer,
    Driver,
    NodeExtras,
    Relay,
    free_base,
    listed,
    proc_stats,
    view,
    worker_pid,
)

from tests.fixtures.hub import Hub
from tests.fixtures.sandboxes import SandboxProcess
from tests.fixtures.web import http
from tests.integration.kubeletlike import UA as KUBELET
from tests.integration.kubeletlike import KubeletLike


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port-base", type=int, default=42000)
    ap.add_argument("--converge", type=float, default=45.0)
    ap.add_argument("--cut", default="5,60")
    ap.add_argument("--up", default="5,60")
    ap.add_argument("--dir", default="")
    ap.add_argument("--restarts", choices=("term", "kill", "none"), default="term",
                    help="how the hub is restarted at flaps 2 (offline) and 4 (link back)")
    ap.add_argument("--silent-restart", action="store_true",
                    help="flap 2 (the offline restart) is a silent link, not a refusing one")
    ap.add_argument("--hub-arg", action="append", default=[],
                    help="one more argument for yurthub serve (repeatable)")
    ap.add_argument("--history", type=int, default=2000,
                    help="the sandbox's watch history (small: clients' resumes meet 410)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cut_range = tuple(float(x) for x in args.cut.split(","))
    up_range = tuple(float(x) for x in args.up.split(","))
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="soak-", dir="/var/tmp"))
    tmp.mkdir(parents=True, exist_ok=True)
    base = free_base(args.port_base)
    print(f"soak: {sys.executable} seed={args.seed} dir={tmp}", flush=True)

    sb = SandboxProcess(nodes=20, pods_per_node=3, history_size=args.history, bookmark_interval=15,
                        extra=["--port", str(base + 1), "--control-port", str(base + 2)],
                        log_file=tmp / "sandbox.log").start()
    atexit.register(sb.stop)  # whatever happens, no sandbox is left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # atexit runs on SIGTERM too
    relay = Relay(base + 3, sb.url)
    hub = Hub(tmp, relay.url, node=NODE,
              extra=["--cache-agents", OPERATOR.split("/")[0], "--heartbeat-failed-retry", "1",
                     "--kubelet-health-grace-period", "40", "--heartbeat-interval-seconds", "2",
                     *args.hub_arg])
    hub.proxy_port, hub.serve_port = base + 10, base + 11
    hub.log_path = tmp / "hub.log"
    atexit.register(hub.kill)
    hub.start()
    print(f"sandbox {sb.url} relay {relay.url} hub {hub.url} / {hub.hub_url}", flush=True)

    cloud_up = threading.Event()
    cloud_up.set()
    _, _, body = http(sb.url + f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}")
    tpl = json.loads(body)["items"][0]
    tpl["kind"], tpl["apiVersion"] = "Pod", "v1"
    _, _, body = http(sb.url + PATHS["endpointslices"])
    slices = [dict(s, kind="EndpointSlice", apiVersion="discovery.k8s.io/v1")
              for s in json.loads(body)["items"] if s["metadata"]["name"] != "kubernetes"]

    _, _, body = http(sb.url + PATHS["nodes"])
    nodes = [dict(n, kind="Node", apiVersion="v1") for n in json.loads(body)["items"]
             if n["metadata"]["name"] != NODE]

    kubelet = KubeletLike(hub.url, NODE).start()
    extras = NodeExtras(hub.url, kubelet, cloud_up)
    extras.start()
    informers = [AnyInformer(hub.url, "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc", w)
                 for w in ("services", "endpointslices")]
    informers += [AnyInformer(hub.url, "coredns/v1.11.3", w)
                  for w in ("services", "endpointslices", "namespaces")]
    informers.append(AnyInformer(hub.url, "flanneld/v0.25.1", "nodes"))
    informers.append(AnyInformer(hub.url, OPERATOR, "configmaps", label_selector=SELECTOR))
    for inf in informers:
        inf.start()
    driver = Driver(sb, tpl, slices, nodes, rng)
    driver.start()

    samples: list[tuple[float, int, int, int]] = []
    converge_times: list[float] = []
    failures: list[str] = []
    health_lies: list[str] = []
    t0 = time.monotonic()

    def sample() -> None:
        samples.append((time.monotonic() - t0, *proc_stats(worker_pid(hub))))

    def direct_pods() -> dict[str, str] | None:
        got = listed(sb.url, f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}", KUBELET)
        return None if got is None else {k[1]: v for k, v in got.items()}

    def diffs() -> list[str]:
        out = []
        want = direct_pods()
        have = {n: p["metadata"]["resourceVersion"] for n, p in list(kubelet.pods.items())}
        if want is None or have != want:
            out.append(f"kubelet pods: have {sorted(have.items())} want {want}")
        for inf in informers:
            ua = inf.api.user_agent
            # filtered components: a fresh list through the hub; the others: direct
            src = hub.url if inf.what in ("services", "endpointslices") else sb.url
            want2 = listed(src, PATHS[inf.what], ua)
            have2 = view(inf.snapshot())
            if want2 is None or have2 != want2:
                extra = {k: v for k, v in have2.items() if (want2 or {}).get(k) != v}
                missing = {k: v for k, v in (want2 or {}).items() if have2.get(k) != v}
                out.append(f"{inf.name}: stale/extra {extra} missing/newer {missing}")
        return out

    def offline_reference() -> dict[str, dict[Any, str] | None]:
        ref: dict[str, dict[Any, str] | None] = {}
        pods = direct_pods()
        ref["kubelet:pods"] = None if pods is None else {("", n): v for n, v in pods.items()}
        for inf in informers:
            src = hub.url if inf.what in ("services", "endpointslices") else sb.url
            ref[inf.name] = listed(src, PATHS[inf.what], inf.api.user_agent)
        return ref

    def offline_check(label: str, want: dict[str, dict[Any, str] | None]) -> None:
        """With the cloud away and still, the hub answers each component's list from the
        cache exactly as the cloud last had it."""
        for name, ref in want.items():
            ua, what = name.split(":")
            ua = {"kubelet": KUBELET}.get(ua) or next(
                i.api.user_agent for i in informers if i.name == name)
            path = (f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}" if what == "pods"
                    else PATHS[what])
            got = listed(hub.url, path, ua)
            if what == "pods" and got is not None:
                got = {("", k[1]): v for k, v in got.items()}
            if what in ("pods", "nodes") and got is not None and ref is not None:
                # kubelet's own writes (pod and node status) go on after the reference list,
                # and offline they are applied to the cache: only their names must match
                for key in set(got) & set(ref):
                    if what == "pods" or key[1] == NODE:
                        got[key] = ref[key]
            if ref is None or got != ref:
                extra = {k: v for k, v in (got or {}).items() if (ref or {}).get(k) != v}
                missing = {k: v for k, v in (ref or {}).items() if (got or {}).get(k) != v}
                failures.append(f"{label}: {name} offline list differs: got extra {extra} "
                                f"missing {missing} (got None: {got is None})")
                print(f"  OFFLINE VIEW DIFFERS {label} {name}: extra {extra} missing {missing}",
                      flush=True)
        print(f"  [{time.monotonic() - t0:6.0f}s] {label}: offline lists checked", flush=True)

    def checkpoint(label: str) -> None:
        start = time.monotonic()
        last: list[str] = []
        while time.monotonic() - start < args.converge:
            last = diffs()
            if not last:
                converge_times.append(time.monotonic() - start)
                break
            time.sleep(1)
        else:
            failures.append(f"{label}: not converged in {args.converge}s: " + "; ".join(last))
            print(f"  NOT CONVERGED {label}: {last}", flush=True)
        sample()
        print(f"  [{time.monotonic() - t0:6.0f}s] {label} converged "
              f"{converge_times[-1] if not last else -1:.1f}s  rss/threads/fds {samples[-1][1:]}",
              flush=True)

    def healthy_metric() -> float | None:
        try:
            return hub.metric("node_yurthub_server_healthy_status")
        except OSError:
            return None

    def restart_hub(why: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} restart hub ({why})", flush=True)
        if args.restarts == "kill":
            hub.kill()
        else:
            assert hub.stop() == 0, "hub did not exit 0 on SIGTERM"
        hub.start(wait=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not hub.started():
            time.sleep(0.2)

    end = t0 + args.minutes * 60
    flap = 0
    restarted_offline = restarted_in_flap = args.restarts == "none"
    checkpoint("start")
    while time.monotonic() < end:
        flap += 1
        mode = rng.choice(["refuse", "silent"])
        if flap == 2 and args.silent_restart:
            mode = "silent"
        cut = rng.uniform(*cut_range)
        print(f"  [{time.monotonic() - t0:6.0f}s] {time.strftime('%H:%M:%S')} flap {flap}: "
              f"cut ({mode}) {cut:.0f}s",
              flush=True)
        still = flap % 2 == 1  # every other cut: the cloud holds still, offline views checked
        if still:
            driver.go.clear()
            time.sleep(4)
            want_off = offline_reference()
        cloud_up.clear()
        if mode == "refuse":
            sb.offline()
        else:
            relay.pause()
        if still:
            time.sleep(6)  # the hub notices (a silent link: a probe's timeout)
            offline_check(f"flap {flap} ({mode}) offline", want_off)
            driver.go.set()
            cut = max(0.0, cut - 6)
        if not restarted_offline and flap == 2:
            cut_ends = time.monotonic() + cut
            time.sleep(min(cut / 2, 10))
            restart_hub("offline")
            restarted_offline = True
            time.sleep(max(0.0, cut_ends - time.monotonic()))
        else:
            time.sleep(cut)
        if cut > 15:  # the hub should know by now
            h = healthy_metric()
            if h not in (0.0, None):
                health_lies.append(f"flap {flap}: cloud cut {cut:.0f}s ({mode}), healthy={h}")
        if mode == "refuse":
            sb.online()
        else:
            relay.resume()
        cloud_up.set()
        if not restarted_in_flap and flap == 4:
            time.sleep(1)
            restart_hub("as the link returns")
            restarted_in_flap = True
        up = rng.uniform(*up_range)
        checkpoint(f"flap {flap} back")
        time.sleep(5)
        h = healthy_metric()
        if h != 1.0:
            time.sleep(10)
            h = healthy_metric()
            if h != 1.0:
                health_lies.append(f"flap {flap}: cloud back 15s+, healthy={h}")
        time.sleep(max(0.0, up - (time.monotonic() % 1)))

    driver.halt.set()
    driver.join(5)
    time.sleep(3)
    checkpoint("end")
    extras.halt.set()
    kubelet.stop()
    # before stopping them: kubernetes' Watch.stop() shuts the client's own socket down,
    # and the informer would record that as a broken watch
    errors = {inf.name: list(inf.errors) for inf in informers}
    for inf in informers:
        inf.stop()

    # writes: the last acknowledged node status and the Lease reached the cloud
    _, _, body = http(sb.url + f"/api/v1/nodes/{NODE}")
    conds = {c["type"]: c for c in json.loads(body)["status"].get("conditions", [])}
    cloud_hb = conds.get("Ready", {}).get("lastHeartbeatTime", "")
    _, _, body = http(sb.url + f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease"
                      f"/leases/{NODE}")
    renew = json.loads(body)["spec"].get("renewTime", "")

    sample()
    hub_rc = hub.stop()
    verify = subprocess.run([sys.executable, "-m", "yurthub", "cache", "--disk-cache-path",
                             str(hub.cache_dir), "verify"], capture_output=True, text=True)
    sb.stop()

    log = hub.log()
    # the hub logs "LEVEL logger: message"; gunicorn "[date] [pid] [LEVEL] message"
    bad = [ln for ln in log.splitlines()
           if re.match(r"(ERROR|CRITICAL) ", ln) or "Traceback" in ln
           or "[ERROR]" in ln or "[CRITICAL]" in ln]
    warns: dict[str, int] = {}
    for ln in log.splitlines():
        if ln.startswith("WARNING ") or "[WARNING]" in ln:
            key = re.sub(r"\d+", "N", ln)[:140]
            warns[key] = warns.get(key, 0) + 1

    print("\n== figures")
    print(f"minutes {args.minutes} flaps {flap} driver changes {driver.changes} "
          f"driver errors {driver.errors[:3]}")
    print(f"convergence s: n={len(converge_times)} max={max(converge_times, default=0):.1f} "
          f"mean={sum(converge_times) / max(1, len(converge_times)):.1f}")
    print("worker rss_kB/threads/fds over time:")
    for t, rss, th, fds in samples:
        print(f"  {t:6.0f}s {rss:7d} {th:4d} {fds:4d}")
    print(f"kubelet: rounds {kubelet.rounds} answered {kubelet.answered} unreachable "
          f"{kubelet.unreachable} watch events {kubelet.watch_events} gone {sorted(kubelet.gone)}")
    print(f"kubelet errors ({len(kubelet.errors)}): {kubelet.errors[:10]}")
    print("node extras:", json.dumps(extras.counts, sort_keys=True))
    print(f"odd answers ({len(extras.odd)}): {extras.odd[:10]}")
    for inf in informers:
        kinds: dict[str, int] = {}
        for e in errors[inf.name]:
            k = "hub down (refused)" if "Connection refused" in e else e[9:160]
            kinds[k] = kinds.get(k, 0) + 1
        print(f"{inf.name}: lists {len(inf.list_rvs)} events {len(inf.events)} "
              f"errors {len(errors[inf.name])} {kinds}")
        odd = [e for e in errors[inf.name] if "refused" not in e and "502" not in e]
        if odd:
            print(f"    other errors at: {[e[:60] for e in odd]}")
    print(f"node status: last acknowledged {extras.last_ok_heartbeat} cloud {cloud_hb}")
    print(f"lease renewTime in the cloud {renew} (now {datetime.now(UTC).isoformat()})")
    print(f"health metric lies: {health_lies}")
    print(f"convergence failures ({len(failures)}):")
    for f in failures:
        print("  ", f[:2000])
    print(f"hub exit on SIGTERM: {hub_rc}")
    print(f"cache verify: rc={verify.returncode} {verify.stdout[-1500:]} {verify.stderr[-1500:]}")
    print(f"hub log ERROR/Traceback lines ({len(bad)}):")
    for ln in bad[:40]:
        print("  ", ln[:300])
    print("hub log WARNING kinds:")
    for k, n in sorted(warns.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {n:5d} {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
