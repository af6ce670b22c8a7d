"""``yurthub demo``: a sandbox apiserver, a gateway in front of it, and a short guided tour.

The sandbox runs in this process; the gateway is a real ``yurthub serve`` (gunicorn) child.
The tour lists pods through the gateway, shows the cache filling, takes the cloud away and
lists again from the cache, then brings the cloud back; afterwards both keep running (until
Ctrl-C) with the commands to try printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubesandbox import seed
from kubesandbox.cli import bounded_int
from kubesandbox.server import Sandbox
from yurthub.errors import ConfigError, YurthubError

NODE = "node-0000"
KUBECTL = shutil.which("kubectl") or ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pods", type=bounded_int(0, seed.MAX_PODS_PER_NODE), default=12,
                   help="pods to seed on the demo node")
    p.add_argument("--dir", default="", help="directory for the cache, kubeconfig and logs "
                   "(default: a new temporary directory)")
    port = bounded_int(1, 65535)
    p.add_argument("--proxy-port", type=port, default=10261, help="the gateway's API port")
    p.add_argument("--serve-port", type=port, default=10267, help="the gateway's hub port")
    p.add_argument("--sandbox-port", type=bounded_int(0, 65535), default=16443,
                   help="the sandbox's API port (0 picks a free one)")
    p.add_argument("--tour-only", action="store_true",
                   help="run the tour and exit instead of serving until Ctrl-C")


def _say(text: str = "") -> None:
    print(text, flush=True)


def _get(url: str, ua: str = "kubectl/demo", timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"User-Agent": ua})  # noqa: S310 - http only
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(args.dir or tempfile.mkdtemp(prefix="yurthub-demo-"))
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "gateway.log").open("ab").close()
        except OSError as e:
            raise ConfigError(f"--dir {self.dir}: cannot write the demo's files there: "
                              f"{e.strerror}") from None
        self.cache = self.dir / "cache"
        self.kubeconfig = self.dir / "kubeconfig"
        self.hub_url = f"http://127.0.0.1:{args.proxy_port}"
        self.serve_url = f"http://127.0.0.1:{args.serve_port}"
        self.sandbox: Sandbox | None = None
        self.gateway: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        a = self.args
        try:
            self.sandbox = Sandbox(port=a.sandbox_port, control_port=0, nodes=1,
                                   pods_per_node=a.pods, bookmark_interval=30).start()
        except OSError as e:
            raise YurthubError(f"the sandbox cannot listen on 127.0.0.1:{a.sandbox_port}: "
                               f"{e.strerror} (--sandbox-port)") from e
        _say(f"sandbox kube-apiserver  {self.sandbox.url}  ({a.pods} pods on {NODE})")
        log = open(self.dir / "gateway.log", "ab")  # the child keeps its own copy
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "yurthub", "serve", "--server-addr", self.sandbox.url,
             "--node-name", NODE, "--disk-cache-path", str(self.cache),
             "--cache-agents", "kubectl", "--proxy-port", str(a.proxy_port),
             "--serve-port", str(a.serve_port), "--heartbeat-interval-seconds", "2",
             # The tour's kubectl runs as whoever runs the demo: let it use the hub.
             "--allowed-users", f"root,kube-proxy,{os.getuid()}",
             # the demo's sandbox asks for no credentials; no HTTPS port either
             "--bootstrap-mode", "credentials", "--secure-proxy-port", "0",
             "--root-dir", str(self.dir / "root")],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not _wait(lambda: _get(self.serve_url + "/v1/readyz")[0] == 200, 20) \
                or self.gateway.poll() is not None:
            tail = (self.dir / "gateway.log").read_text(errors="replace")[-1500:]
            raise YurthubError(f"the gateway did not start; its log ends with:\n{tail}")
        _say(f"yurthub gateway         {self.hub_url}  (cache: {self.cache})")
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "yurthub-demo",
            "clusters": [{"name": "hub", "cluster": {"server": self.hub_url}}],
            "contexts": [{"name": "yurthub-demo", "context": {"cluster": "hub", "user": "u"}}],
            "users": [{"name": "u", "user": {}}]}))

    def kubectl(self, *args: str) -> str:
        if not KUBECTL:
            status, body = _get(self.hub_url + "/api/v1/pods")
            items = json.loads(body).get("items", []) if status == 200 else []
            return "\n".join(f"{i['metadata']['namespace']}/{i['metadata']['name']}"
                             for i in items) + f"\n(HTTP {status}; install kubectl for more)"
        r = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir",
                            str(self.dir / "kubectl-cache"), *args],
                           capture_output=True, text=True, timeout=60)
        return (r.stderr + r.stdout).rstrip()

    def cloud_healthy(self) -> bool | None:
        """What the gateway's /metrics says about the cloud (None if it cannot be read)."""
        status, body = _get(self.serve_url + "/metrics")
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("node_yurthub_server_healthy_status{") and status == 200:
                return float(line.rsplit(" ", 1)[1]) == 1.0
        return None

    def cached_files(self) -> list[str]:
        out = []
        for dirpath, dirs, files in os.walk(self.cache):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            out += [os.path.relpath(os.path.join(dirpath, f), self.cache)
                    for f in sorted(files) if not f.startswith((".", "_"))]
        return out

    def tour(self) -> bool:
        assert self.sandbox is not None
        _say("\n== 1. kubectl through the gateway (cloud online)")
        # A plain list (what informers and `-o json` ask for) is teed into the cache; the
        # Table kubectl asks for to print columns passes through and is not stored: offline
        # the gateway prints it from the cached objects.
        _say("$ kubectl get pods -A -o name     # a plain list, teed into the cache")
        _say(self.kubectl("get", "pods", "-A", "-o", "name"))
        _say("$ kubectl get pods -A")
        online = self.kubectl("get", "pods", "-A")
        _say(online)
        _wait(lambda: len(self.cached_files()) >= self.args.pods, 10)
        files = self.cached_files()
        _say(f"\n== 2. the same objects, teed into the cache tree ({len(files)} files)")
        for f in files[:8]:
            _say(f"   {self.cache}/{f}")
        if len(files) > 8:
            _say(f"   ... and {len(files) - 8} more")
        _say("\n== 3. the cloud goes away")
        self.sandbox.offline()
        _wait(lambda: self.cloud_healthy() is False, 10)
        _say("$ kubectl get pods -A     # answered from the cache")
        offline = self.kubectl("get", "pods", "-A")
        _say(offline)
        self.sandbox.online()
        _say("\n== 4. the cloud is back; the gateway proxies again")
        same = [line.split()[:2] for line in online.splitlines()[1:]] == \
            [line.split()[:2] for line in offline.splitlines()
             if line and not line.startswith("Warning")][1:]
        _say("offline answers matched the online ones" if same else
             "offline answers differ from the online ones (see above)")
        return same

    def instructions(self) -> None:
        assert self.sandbox is not None
        ctl = self.sandbox.control_url
        _say(f"""
Try it yourself (Ctrl-C stops the demo):
  export KUBECONFIG={self.kubeconfig}
  kubectl get pods -A -w --output-watch-events      # watch through the gateway
  find {self.cache} -type f | head                  # the cache tree
  curl -X POST {ctl}/_sandbox/offline               # take the cloud away
  kubectl get pods -A                               # still answered, from the cache
  curl -X POST {ctl}/_sandbox/online                # and bring it back
  curl {self.serve_url}/metrics | grep yurthub      # the gateway's metrics
  curl -A kube-proxy/demo {self.hub_url}/api/v1/services   # filtered as kube-proxy's
  curl -A kubelet/demo {self.hub_url}/api/v1/services      # kubernetes at the hub's address
Logs: {self.dir}/gateway.log""")

    def stop(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(30)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
        if self.sandbox is not None:
            self.sandbox.stop()


def main(args: argparse.Namespace) -> int:
    demo = Demo(args)
    try:
        demo.start()
        ok = demo.tour()
        if args.tour_only:
            return 0 if ok else 1
        demo.instructions()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1):
            if demo.gateway is not None and demo.gateway.poll() is not None:
                _say(f"the gateway exited ({demo.gateway.returncode}); see its log")
                return 1
        return 0
    finally:
        demo.stop()
