"""An HTTPS apiserver stand-in that sends the pod list chunked, as kube-apiserver does.

kube-apiserver sends a big list with ``Transfer-Encoding: chunked`` (no length up front),
and Go's server writes each ``Write`` of the encoder as one chunk: a list streamed item by
item comes in chunks of a few KiB, a gzip answer in 2 KiB ones.  nginx, the other benches'
upstream, sends files with a length.  This server pre-renders the body in chunks of
``--chunk`` bytes (gzip too, for a client that asks) and sends it with one ``sendall``, so
it is not the bottleneck; ``/readyz`` is 200, everything else a 404 Status.  Prints
``port N`` when listening.

Usage: python bench/_chunkedsource.py CERT KEY BODY --chunk 2048
"""

from __future__ import annotations

import argparse
import gzip
import socket
import ssl
import threading


def chunked(body: bytes, size: int) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cert")
    p.add_argument("key")
    p.add_argument("body")
    p.add_argument("--chunk", type=int, default=2048)
    args = p.parse_args()
    raw = open(args.body, "rb").read()
    bodies = {False: chunked(raw, args.chunk), True: chunked(gzip.compress(raw, 1), args.chunk)}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    lsock = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(f"port {lsock.getsockname()[1]}", flush=True)

    def serve(conn: socket.socket) -> None:
        try:
            with ctx.wrap_socket(conn, server_side=True) as s:
                f = s.makefile("rb")
                while head := f.readline():
                    gz = False
                    while (line := f.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"accept-encoding":
                            gz = b"gzip" in value
                    path = head.split()[1]
                    if path.startswith(b"/api/v1/pods"):
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  + (b"Content-Encoding: gzip\r\n" if gz else b"")
                                  + b"Transfer-Encoding: chunked\r\n\r\n" + bodies[gz])
                    elif path.startswith(b"/readyz"):
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    else:
                        s.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n'
                                  b'Content-Length: 28\r\n\r\n{"kind":"Status","code":404}')
        except (OSError, ValueError, IndexError):
            return

    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
