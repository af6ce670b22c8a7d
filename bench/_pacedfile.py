"""An upstream that sends one file at a link's pace: as a real apiserver or link does.

Run as its own process (``python bench/_pacedfile.py FILE --rate MB_PER_S``); it prints
``pacedfile <port>`` once it listens.  Every GET (whatever its path) gets ``FILE``, read
anew for each request, as a chunked 200 in 256 KiB chunks, each sent when the rate allows
it (never ahead of ``--rate``, never sleeping when behind).  nginx's ``limit_rate`` cannot
do this for a list: it lets a whole second's worth of bytes go at once.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path
from urllib.parse import SplitResult

from _httpsource import Query, health, serve

CHUNK = 256 * 1024


def paced(sock: socket.socket, body: bytes, rate: float) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    start = time.monotonic()
    view = memoryview(body)
    for at in range(0, len(body), CHUNK):
        piece = view[at:at + CHUNK]
        due = start + at / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sock.sendall(b"%x\r\n" % len(piece))
        sock.sendall(piece)
        sock.sendall(b"\r\n")
    sock.sendall(b"0\r\n\r\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--rate", type=float, required=True, help="MB (10^6 bytes) a second")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    rate = args.rate * 1e6

    def handle(sock: socket.socket, url: SplitResult, query: Query) -> bool:
        if not health(sock, url):
            paced(sock, args.file.read_bytes(), rate)
        return False

    serve(args.port, "pacedfile", handle)


if __name__ == "__main__":
    main()
