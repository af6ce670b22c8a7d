"""What the proxy benches share: the upstream's data, one timed GET, the commit wait,
the paced small-GET client and the file-system banner (split out of proxy_bench.py, whose
sections and the commit, filter and offline benches use them)."""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import sys
import threading
import time
from pathlib import Path

from _common import (
    KUBELET_UA,
    OUT,
    ROOT,
    HubProcess,
    mem_mb,
    reset_hwm,
)

PODLIST = OUT / "proxy-podlist-10000.json"
CASES = ("direct", "nginx", "hub")
CM_PATH = "/api/v1/namespaces/default/configmaps/cm-0"
PLAIN = {"User-Agent": KUBELET_UA, "Accept": "application/json", "Accept-Encoding": "identity"}
GZIP = {**PLAIN, "Accept-Encoding": "gzip"}


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


# -- the big list, as each bench case reads it ------------------------------------------

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


# -- small GETs ---------------------------------------------------------------------------

def paced_gets(port: int, path: str, headers: dict[str, str], rate: float, seconds: float,
               conns: int = 8, stop: threading.Event | None = None
               ) -> tuple[list[float], list[float], int]:
    """Open loop: request j is due at t0 + j/rate, on connection j % conns (keep-alive), for
    ``seconds`` or until ``stop`` is set (no request is sent after it).

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
            if stop is not None and stop.is_set():
                break
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
