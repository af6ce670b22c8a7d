"""Load clients of the saturation benchmark, each run as its own process.

``watch``: opens ``--count`` pod watches through the hub with raw sockets (one thread and
an epoll loop for all of them), each as one of ``--agents`` in turn (its User-Agent), and
reads until stdin closes; then it closes every socket at once (the clients *go away*) and
prints one JSON line: streams opened, events and bytes received.

``get``: an open loop of small GETs, ``--rate`` a second for ``--seconds``, request *j* due
at ``t0 + j/rate`` on one of ``--conns`` keep-alive connections (a thread each); latency
is measured from the due time, so a stalled hub is not hidden (no coordinated omission).
A request not answered 200 within ``--timeout`` counts as dropped.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import select
import socket
import sys
import threading
import time


def watch(port: int, count: int, agents: list[str], path: str, first: int) -> int:
    socks: dict[int, socket.socket] = {}
    ep = select.epoll()
    opened = 0
    for i in range(count):
        agent = agents[i % len(agents)]
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        target = path.replace("{i}", str(first + i))  # one view per watch, if asked
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {agent}\r\n"
                  f"Accept: application/json\r\n\r\n".encode())
        s.setblocking(False)
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
        opened += 1
    ep.register(sys.stdin.fileno(), select.EPOLLIN)
    events = nbytes = 0
    done = False
    while not done:
        for fd, _ in ep.poll(1.0):
            if fd == sys.stdin.fileno():
                done = True
                continue
            s = socks.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                socks.pop(fd).close()
                continue
            nbytes += len(data)
            events += data.count(b"}\n")
    for s in socks.values():
        s.close()
    print(json.dumps({"opened": opened, "open_at_end": len(socks), "events": events,
                      "bytes": nbytes}), flush=True)
    return 0


def get(port: int, rate: float, seconds: float, conns: int, path: str, agent: str,
        timeout: float) -> int:
    due: queue.Queue[float | None] = queue.Queue()
    lat: list[float] = []
    dropped: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            t = due.get()
            if t is None:
                return
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                conn.request("GET", path, headers={"User-Agent": agent,
                                                   "Accept": "application/json"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                status = 0
                why = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            took = time.monotonic() - t
            with lock:
                if status == 200 and took <= timeout:
                    lat.append(took)
                else:
                    dropped.append(why if status == 0 else str(status))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    t0 = time.monotonic() + 0.1
    n = int(rate * seconds)
    # Hand each due time out just before it is due, so an idle thread takes it.
    for j in range(n):
        at = t0 + j / rate
        delay = at - 0.05 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        due.put(at)
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join(timeout + 5)
    print(json.dumps({"asked": n, "answered": len(lat), "dropped": dropped[:20],
                      "n_dropped": len(dropped), "latencies": lat}), flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("watch", "get"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--agents", default="kubelet/v1.32.4")
    p.add_argument("--path", default="", help="{i} is replaced by the watch's number")
    p.add_argument("--first", type=int, default=0, help="the number of the first watch")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    if args.mode == "watch":
        return watch(args.port, args.count, args.agents.split(","), args.path, args.first)
    return get(args.port, args.rate, args.seconds, args.conns,
               args.path or "/api/v1/namespaces/default/configmaps/small", args.agents,
               args.timeout)


if __name__ == "__main__":
    sys.exit(main())
