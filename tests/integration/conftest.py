"""End-to-end fixtures: a sandbox apiserver and a real ``yurthub serve`` (gunicorn) in front.

The hub runs as its own process, exactly as in production, so these tests see what a node's
components see: real sockets, real gunicorn threads, the cache tree on disk.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import free_port
from yurthub.sandbox.server import Sandbox

KUBECTL = "/usr/bin/kubectl"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
         body: bytes | None = None, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for every status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


class Hub:
    """``yurthub serve`` in a child process."""

    def __init__(self, tmp: Path, server: str, *, node: str = "node-0000",
                 extra: list[str] | None = None, cache_dir: Path | None = None) -> None:
        self.tmp = tmp
        self.server = server
        self.node = node
        self.extra = list(extra or [])
        self.cache_dir = cache_dir or tmp / "cache"
        self.proxy_port = free_port()
        self.serve_port = free_port()
        self.log_path = tmp / f"hub-{self.proxy_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def args(self) -> list[str]:
        return [sys.executable, "-m", "yurthub", "serve", "--server-addr", self.server,
                "--node-name", self.node, "--disk-cache-path", str(self.cache_dir),
                "--proxy-port", str(self.proxy_port), "--serve-port", str(self.serve_port),
                "--threads", "64", "--heartbeat-interval-seconds", "1",
                "--graceful-timeout", "5", *self.extra]

    def start(self, wait: bool = True) -> Hub:
        log = open(self.log_path, "ab")  # the child keeps its own copy
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        if wait:
            wait_for(self.ready, 20, what=f"hub ready (log: {self.log()[-2000:]})")
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"hub exited with {self.proc.returncode}: {self.log()[-3000:]}")
        try:
            status, _, _ = http(self.hub_url + "/v1/readyz", timeout=2)
        except OSError:
            return False
        return status == 200

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"hub did not stop on SIGTERM within {timeout}s")
        return -1

    def kill(self) -> None:
        """SIGKILL the whole process group of gunicorn (master and worker)."""
        if self.proc is None:
            return
        for pid in _children(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def get(self, path: str, ua: str = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc",
            **headers: str) -> tuple[int, dict[str, str], bytes]:
        return http(self.url + path, headers={"User-Agent": ua, **headers})

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        _, _, body = http(self.hub_url + "/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, labeltext = head.partition("{")
            if metric != name:
                continue
            if all(f'{k}="{v}"' in labeltext for k, v in labels.items()):
                total += float(value)
        return total


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [int(p) for p in out.split()]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(nodes=2, pods_per_node=3, bookmark_interval=0.5, control_port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    hubs: list[Hub] = []

    def make(server: str, **kw: Any) -> Hub:
        h = Hub(tmp_path, server, **kw)
        hubs.append(h)
        return h.start()

    yield make
    for h in hubs:
        if h.proc is not None and h.proc.poll() is None:
            h.kill()


@pytest.fixture
def hub(sandbox: Sandbox, hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory(sandbox.url, extra=["--cache-agents", "kubectl,python"])


def read_watch_events(sock: socket.socket, out: list[tuple[float, dict]]) -> None:
    """Parse a chunked watch response from ``sock`` into (arrival time, event) pairs.

    Returns when the response ends, cleanly or not (a reset counts as an end, as a
    client-go reflector treats it).
    """
    try:
        f = sock.makefile("rb")
        while True:  # headers
            line = f.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
        buf = b""
        while True:
            size_line = f.readline()
            if not size_line:
                return
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                return
            buf += f.read(size)
            f.readline()
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    out.append((time.monotonic(), json.loads(line)))
    except OSError:
        return


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {}}],
    }))
    return path


class Kubectl:
    """The real kubectl against one server, with its own discovery cache dir."""

    def __init__(self, tmp: Path, server: str) -> None:
        self.kubeconfig = write_kubeconfig(tmp / f"kubeconfig-{abs(hash(server))}", server)
        self.cache_dir = tmp / f"kubectl-cache-{abs(hash(server))}"

    def argv(self, *args: str) -> list[str]:
        return [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir",
                str(self.cache_dir), "--request-timeout", "20s", *args]

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=60,
                           input=stdin)
        if check and r.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r
