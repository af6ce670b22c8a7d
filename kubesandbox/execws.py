"""``pods/<name>/exec`` over WebSocket, as kube-apiserver relays it from the kubelet: enough
for ``kubectl exec POD -- echo …`` to print its arguments and exit 0.

kubectl (1.30+) opens exec as a WebSocket upgrade with the ``v5.channel.k8s.io``
subprotocol (earlier ``v4``): each binary message starts with its channel, 1 stdout, 2
stderr, 3 the final ``metav1.Status``.  The sandbox runs no container: ``echo`` writes its
arguments, any other command fails with exit code 127, as a shell would.  Control requests
(``/_sandbox/…``) and faults are handled before this; an upgrade for any other path gets
the usual answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_EXEC = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/exec$")
_STDOUT, _ERROR = 1, 3
_BINARY, _CLOSE = 0x2, 0x8


def is_exec_upgrade(method: str, path: str, headers: Any) -> bool:
    return (method in ("GET", "POST") and _EXEC.match(path) is not None
            and (headers.get("Upgrade") or "").lower() == "websocket")


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def _status(command: list[str]) -> tuple[bytes, dict[str, Any]]:
    if command and command[0] == "echo":
        return (" ".join(command[1:]) + "\n").encode(), {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    return b"", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": "command terminated with non-zero exit code: exit status 127",
                 "reason": "NonZeroExitCode",
                 "details": {"causes": [{"reason": "ExitCode", "message": "127"}]}}


def serve_exec(sock: socket.socket, headers: Any, query: dict[str, list[str]]) -> None:
    """Answer the upgrade, run the "command" and close; the connection is done after it."""
    offered = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",")]
    protocol = next((p for p in _PROTOCOLS if p in offered), "")
    key = headers.get("Sec-WebSocket-Key") or ""
    if not protocol or not key:
        body = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",' \
               b'"message":"Upgrade request required","reason":"BadRequest","code":400}'
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                     b"Connection: close\r\n\r\n" + body)
        return
    digest = hashlib.sha1((key + _GUID).encode(), usedforsecurity=False).digest()
    accept = base64.b64encode(digest).decode()
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
                  "Sec-WebSocket-Protocol: " + protocol + "\r\n\r\n").encode())
    out, status = _status(query.get("command", []))
    frames = b""
    if out and query.get("stdout", ["false"])[-1] in ("true", "1"):
        frames += _frame(_BINARY, bytes([_STDOUT]) + out)
    frames += _frame(_BINARY, bytes([_ERROR]) + json.dumps(status).encode())
    frames += _frame(_CLOSE, struct.pack("!H", 1000))
    sock.sendall(frames)
    sock.settimeout(5)
    try:  # the client's close frame (or its end), then the connection ends
        sock.recv(4096)
    except OSError:
        pass  # why: the client went first; the session is over either way
