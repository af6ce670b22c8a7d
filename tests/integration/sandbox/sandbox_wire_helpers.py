"""Raw HTTP for the sandbox tests: requests over a plain socket, chunked framing kept visible."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes                      # de-chunked
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = True            # the terminal chunk (or Content-Length) was seen

    def json(self) -> Any:
        return json.loads(self.body)


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def send(sock: socket.socket, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes = b"") -> None:
    lines = [f"{method} {path} HTTP/1.1", "Host: sandbox", "Connection: close",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def read_response(sock: socket.socket) -> RawResponse:
    return parse(sock.makefile("rb"))


def parse(f: Any) -> RawResponse:
    """Parse one response from a binary file-like object (a socket file or BytesIO)."""
    status_line = f.readline()
    if not status_line:
        raise ConnectionError("no response")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        chunks: list[bytes] = []
        try:
            while True:
                size_line = f.readline()
                if not size_line:
                    return RawResponse(status, headers, b"".join(chunks), chunks, False)
                size = int(size_line.strip(), 16)
                if size == 0:
                    return RawResponse(status, headers, b"".join(chunks), chunks, True)
                data = _read_some(f, size)
                if len(data) < size:
                    chunks.append(data)
                    return RawResponse(status, headers, b"".join(chunks), chunks, False)
                chunks.append(data)
                f.readline()
        except OSError:
            return RawResponse(status, headers, b"".join(chunks), chunks, False)
    length = int(headers.get("content-length", "0"))
    body = _read_some(f, length)
    return RawResponse(status, headers, body, [], len(body) == length)


def _read_some(f: Any, size: int) -> bytes:
    """Up to ``size`` bytes, keeping what arrived before an EOF or a reset."""
    data = b""
    try:
        while len(data) < size:
            part = f.read1(size - len(data))
            if not part:
                break
            data += part
    except OSError:
        pass
    return data


def recv_until(sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    """Receive until at least ``size`` bytes came (or the peer closed)."""
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        got = sock.recv(65536)
        if not got:
            break
        data += got
    return data


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Receive until the peer closes."""
    sock.settimeout(timeout)
    data = b""
    while got := sock.recv(65536):
        data += got
    return data


def request(url: str, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | dict | None = None, timeout: float = 10.0) -> RawResponse:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    with connect(url, timeout) as sock:
        send(sock, method, path, headers, body or b"")
        return read_response(sock)


class LineReader:
    """Reads a process's stdout lines on a thread, so tests can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        out = proc.stdout

        def run() -> None:
            for line in out:
                self.lines.put(line.rstrip("\n"))
        threading.Thread(target=run, daemon=True).start()

    def until(self, predicate: Any, timeout: float = 10.0) -> list[str]:
        seen = []
        while True:
            line = self.lines.get(timeout=timeout)
            seen.append(line)
            if predicate(line):
                return seen
