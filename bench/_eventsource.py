"""A watch event source for the latency benchmark: cheap enough never to be the bottleneck.

Run as its own process (``python bench/_eventsource.py [--rate 10]``); it prints
``eventsource <port>`` once it listens.  Every ``GET ...?watch=true...`` (or ``watch=1``)
gets a chunked 200 response that stays open; one sender thread then writes, to each open
stream in turn, ``rate`` events a second, each its own chunk and its own line::

    {"type":"MODIFIED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":
     "cm-<i>","namespace":"default","resourceVersion":"<increasing>"},"data":{"ts":"<t>"}}}

``<t>`` is ``time.time()`` just before the write, so a slow sender never inflates the
latency a client computes.  ``cm-<i>`` is taken from the request's
``fieldSelector=metadata.name=cm-<i>`` when there is one (so the events match the watch).
``/readyz``, ``/healthz`` and ``/livez`` answer 200; anything else is a 404 Status.
Connections are served by one thread each (a blocking ``recv`` notices a closed watch).

``--kind endpointslice`` (the filter benchmark) sends kube-proxy's events instead: an
EndpointSlice of Service ``<name>`` with ``--endpoints`` endpoints on nodes node-0000 to
node-0015 in turn, ``ts`` in an annotation, and only to watches of endpointslices; other
watches (a hub's own, of what its filters depend on) stay open and silent.
``--static DIR`` answers a plain GET with the file named after its path (``/`` as ``_``),
so those watches' lists can be served too.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import threading
import time
from urllib.parse import SplitResult, unquote

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


def slice_event(name: bytes, rv: int, endpoints: int) -> bytes:
    eps = b",".join(
        b'{"addresses":["10.%d.%d.%d"],"conditions":{"ready":true,"serving":true,'
        b'"terminating":false},"nodeName":"node-%04d","zone":"zone-a"}'
        % (rv % 200, i, rv % 250, i % 16) for i in range(endpoints))
    return (b'{"type":"MODIFIED","object":{"metadata":{"name":"' + name + b'-x1","namespace":'
            b'"default","resourceVersion":"' + str(rv).encode() + b'","labels":{'
            b'"kubernetes.io/service-name":"' + name + b'"},"annotations":{"ts":"'
            + repr(time.time()).encode() + b'"}},"addressType":"IPv4","endpoints":[' + eps
            + b'],"ports":[{"name":"http","protocol":"TCP","port":8080}]}}\n')


class Streams:
    """The open watch streams, and the one thread that feeds them at a fixed rate."""

    def __init__(self, rate: float, kind: str = "configmap", endpoints: int = 20) -> None:
        self.kind = kind
        self.endpoints = endpoints
        self.rate = rate
        self.lock = threading.Lock()
        self.streams: list[tuple[socket.socket, bytes]] = []
        self.rv = 1_000_000
        self.sent = 0

    def add(self, sock: socket.socket, name: str) -> None:
        with self.lock:
            self.streams.append((sock, name.encode()))

    def remove(self, sock: socket.socket) -> None:
        with self.lock:
            self.streams = [s for s in self.streams if s[0] is not sock]

    def run(self) -> None:
        """Round-robin over the streams, one event every 1/(rate * streams) seconds."""
        next_at = time.monotonic()
        i = 0
        while True:
            with self.lock:
                streams = self.streams
            if not streams:
                time.sleep(0.01)
                next_at = time.monotonic()
                continue
            interval = 1.0 / (self.rate * len(streams))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:
                next_at = time.monotonic()  # far behind (a pause): do not burst to catch up
            i = (i + 1) % len(streams)
            sock, name = streams[i]
            self.rv += 1
            if self.kind == "endpointslice":
                line = slice_event(name, self.rv, self.endpoints)
            else:
                line = (b'{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"ConfigMap",'
                        b'"metadata":{"name":"' + name + b'","namespace":"default",'
                        b'"resourceVersion":"' + str(self.rv).encode() + b'"},"data":{"ts":"'
                        + repr(time.time()).encode() + b'"}}}\n')
            try:
                sock.sendall(b"%X\r\n%s\r\n" % (len(line), line))
                self.sent += 1
            except OSError:
                self.remove(sock)


def handler(streams: Streams, static: str | None) -> Handler:
    counter = [0]

    def handle(sock: socket.socket, url: SplitResult, query: Query) -> bool:
        if is_watch(query):
            fs = unquote(query.get("fieldSelector", [""])[0])
            m = re.search(r"metadata\.name=([a-z0-9.-]+)", fs)
            counter[0] += 1
            name = m.group(1) if m else f"cm-{counter[0]}"
            start_watch(sock)
            if streams.kind == "endpointslice" and "endpointslices" not in url.path:
                hold(sock)  # a watch that gets no events: open until the client leaves
                return True
            streams.add(sock, name)
            try:
                hold(sock)
            finally:
                streams.remove(sock)
            return True
        body = _static(static, url.path)
        if health(sock, url):
            pass
        elif body is not None:
            respond(sock, body)
        else:
            not_found(sock)
        return False
    return handle


def _static(directory: str | None, path: str) -> bytes | None:
    if directory is None or ".." in path:
        return None
    try:
        with open(f"{directory}/{path.replace('/', '_')}", "rb") as f:
            return f.read()
    except OSError:
        return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rate", type=float, default=10.0, help="events per second per stream")
    p.add_argument("--kind", choices=("configmap", "endpointslice"), default="configmap")
    p.add_argument("--endpoints", type=int, default=20, help="endpoints per EndpointSlice")
    p.add_argument("--static", default=None, metavar="DIR",
                   help="answer plain GETs with DIR/<path, / as _>")
    args = p.parse_args()
    streams = Streams(args.rate, args.kind, args.endpoints)
    threading.Thread(target=streams.run, name="sender", daemon=True).start()
    serve(args.port, "eventsource", handler(streams, args.static))
    return 0


if __name__ == "__main__":
    sys.exit(main())
