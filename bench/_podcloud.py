"""A cloud that patches pods for the saturation benchmark: cheap enough never to be the
bottleneck, in its own process.

Run as ``python bench/_podcloud.py --interval 0.05``; it prints ``podcloud <port>`` once it
listens.  Every ``interval`` seconds one of ten seeded pods on ``node-0000`` (the sandbox's
own ~5 KB pod JSON) gets a new resourceVersion, and the one ``MODIFIED`` event line is
queued to **every** open ``?watch=`` stream, as kube-apiserver fans one change out to all
its watchers.  Sends never block the patcher: each stream has its own backlog, sent with
``MSG_DONTWAIT`` (what a stream could not take yet waits for the next tick, and the
largest backlog is reported on ``/_cloud/stats``).

``GET /api/v1/namespaces/default/configmaps/<name>`` answers a small ConfigMap (the small
GETs); ``/readyz``, ``/healthz``, ``/livez`` answer 200; anything else is a 404 Status.
Connections are served by one thread each (a blocking ``recv`` notices a closed watch).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import SplitResult

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _httpsource import (
    Handler,
    Query,
    health,
    hold,
    is_watch,
    not_found,
    respond,
    serve,
    start_watch,
)

from kubesandbox.seed import pod_entries

PODS = 10
FIRST_RV = 1_000_000


class Cloud:
    """The open watch streams and the patcher that feeds them all."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lock = threading.Lock()
        self.streams: dict[socket.socket, bytearray] = {}
        entries, self.rv = pod_entries(1, PODS, FIRST_RV)
        self.pods = [e.data.decode() for e in entries]
        self.rvs = [e.rv for e in entries]
        self.patches = 0
        self.events_sent = 0
        self.max_backlog = 0

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.streams[sock] = bytearray()

    def remove(self, sock: socket.socket) -> None:
        with self.lock:
            self.streams.pop(sock, None)

    def event(self) -> bytes:
        i = self.patches % PODS
        self.patches += 1
        self.rv += 1
        old = f'"resourceVersion":"{self.rvs[i]}"'
        new = f'"resourceVersion":"{self.rv}"'
        self.pods[i] = self.pods[i].replace(old, new, 1)
        self.rvs[i] = self.rv
        line = b'{"type":"MODIFIED","object":' + self.pods[i].encode() + b"}\n"
        return b"%X\r\n%s\r\n" % (len(line), line)

    def run(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # a pause: do not burst to catch up
            with self.lock:
                streams = list(self.streams.items())
            if not streams:
                continue
            chunk = self.event()
            for sock, backlog in streams:
                backlog += chunk
                try:
                    n = sock.send(backlog, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    n = 0
                except OSError:
                    self.remove(sock)
                    continue
                del backlog[:n]
                self.events_sent += 1
                if len(backlog) > self.max_backlog:
                    self.max_backlog = len(backlog)

    def stats(self) -> bytes:
        with self.lock:
            n = len(self.streams)
        return json.dumps({"streams": n, "patches": self.patches, "rv": self.rv,
                           "events_sent": self.events_sent,
                           "max_backlog": self.max_backlog}).encode()


def handler(cloud: Cloud) -> Handler:
    def handle(sock: socket.socket, url: SplitResult, query: Query) -> bool:
        if is_watch(query):
            start_watch(sock)
            cloud.add(sock)
            try:
                hold(sock)
            finally:
                cloud.remove(sock)
            return True
        cm = re.fullmatch(r"/api/v1/namespaces/default/configmaps/([a-z0-9-]+)", url.path)
        if health(sock, url):
            pass
        elif url.path == "/_cloud/stats":
            respond(sock, cloud.stats())
        elif cm:
            respond(sock, json.dumps({
                "kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": cm.group(1), "namespace": "default",
                             "uid": "0f8e3c1a-1111-4222-8333-444455556666",
                             "resourceVersion": "42"},
                "data": {"key": "value"}}, separators=(",", ":")).encode())
        else:
            not_found(sock)
        return False
    return handle


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--interval", type=float, default=0.05, help="seconds between patches")
    args = p.parse_args()
    cloud = Cloud(args.interval)
    threading.Thread(target=cloud.run, name="patcher", daemon=True).start()
    serve(args.port, "podcloud", handler(cloud))
    return 0


if __name__ == "__main__":
    sys.exit(main())
