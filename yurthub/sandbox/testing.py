"""Starting sandboxes from tests and benchmarks: in this process, or in a child process.

``running(**options)`` is a context manager around :class:`~yurthub.sandbox.server.Sandbox`
(background threads of this process).  :class:`SandboxProcess` runs ``yurthub sandbox`` in a
child process, so that a benchmark's client and the sandbox do not share a GIL, and drives it
through the control port with the same method names as ``Sandbox``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

from yurthub.sandbox.server import Sandbox, SandboxOptions, start

__all__ = ["Sandbox", "SandboxOptions", "SandboxProcess", "running", "start"]


@contextlib.contextmanager
def running(options: SandboxOptions | None = None, **overrides: Any) -> Iterator[Sandbox]:
    """A started sandbox for the duration of a ``with`` block."""
    sb = Sandbox(options, **overrides).start()
    try:
        yield sb
    finally:
        sb.stop()


class SandboxProcess:
    """``yurthub sandbox`` in a child process, controlled over its control port."""

    def __init__(self, *, nodes: int = 0, pods_per_node: int = 0, history_size: int = 10000,
                 bookmark_interval: float = 60.0, extra: list[str] | None = None,
                 log_file: str | os.PathLike[str] | None = None) -> None:
        self.args = [sys.executable, "-m", "yurthub", "sandbox", "--port", "0",
                     "--control-port", "0", "--nodes", str(nodes), "--pods-per-node",
                     str(pods_per_node), "--history-size", str(history_size),
                     "--bookmark-interval", str(bookmark_interval), *(extra or [])]
        self.log_file = log_file
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.control_url = ""

    def start(self, timeout: float = 60.0) -> SandboxProcess:
        if self.log_file:
            with open(self.log_file, "ab") as log:
                self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log,
                                             text=True)
        else:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        for _ in range(2):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"yurthub sandbox exited with {self.proc.wait(timeout)}")
            label, _, value = line.partition(": ")
            if label == "sandbox apiserver":
                self.url = value.strip()
            elif label == "control plane":
                self.control_url = value.strip().rsplit("/_sandbox/", 1)[0]
        return self

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- the control plane -------------------------------------------------------------------

    def _call(self, method: str, action: str, body: Any = None, **query: Any) -> Any:
        q = {k: v for k, v in query.items() if v is not None and v != ""}
        path = f"/_sandbox/{action}" + ("?" + urllib.parse.urlencode(q) if q else "")
        parts = urllib.parse.urlsplit(self.control_url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status == 404 and action == "objects":
            return None
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status} {data.decode(errors='replace')}")
        return json.loads(data)

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "state")
        return result

    @property
    def is_online(self) -> bool:
        return bool(self.state()["online"])

    @property
    def open_watches(self) -> int:
        return int(self.state()["openWatches"])

    @property
    def resource_version(self) -> int:
        return int(self.state()["resourceVersion"])

    def offline(self) -> None:
        self._call("POST", "offline")

    def online(self) -> None:
        self._call("POST", "online")

    def cut_connections(self) -> int:
        return int(self._call("POST", "cut")["result"])

    def set_latency(self, ms: float) -> None:
        self._call("POST", "latency", ms=ms)

    def fail_next(self, count: int = 1, status: int = 503, *, match: str = "",
                  retry_after: int | None = None) -> None:
        self._call("POST", "fail", count=count, status=status, match=match,
                   retryAfter=retry_after)

    def stall_next(self, count: int = 1, *, after_bytes: int = 0, match: str = "") -> None:
        self._call("POST", "stall", count=count, afterBytes=after_bytes, match=match)

    def release(self) -> None:
        self._call("POST", "release")

    def reset_next(self, count: int = 1, *, after_bytes: int = 0, match: str = "") -> None:
        self._call("POST", "reset", count=count, afterBytes=after_bytes, match=match)

    def drop_next(self, count: int = 1, *, match: str = "") -> None:
        self._call("POST", "drop", count=count, match=match)

    def clear_faults(self) -> None:
        self._call("POST", "clear")

    def compact(self, rv: int | None = None) -> int:
        return int(self._call("POST", "compact", rv=rv)["result"])

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "objects", obj)
        return result

    def delete(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call("DELETE", "objects", resource=resource,
                                                   name=name, namespace=namespace)
        return result

    def requests(self, match: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", "requests", match=match)["items"]
        return items

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")
