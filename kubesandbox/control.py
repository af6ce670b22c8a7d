"""The HTTP control plane, ``/_sandbox/...``: faults, objects and state for tests and scripts.

Served on the API port (while online) and on the separate control port, which stays up while
the sandbox is offline.  Every endpoint mirrors a method of
:class:`kubesandbox.server.Sandbox`:

=====================================================  ========================================
``GET  /_sandbox/state``                               online, resourceVersion, faults, watches
``POST /_sandbox/offline`` / ``online``                close / reopen the API port
``POST /_sandbox/cut``                                 cut every open API connection
``POST /_sandbox/latency?ms=N``                        add N ms before every answer
``POST /_sandbox/fail?count=&status=&match=&retryAfter=``  fail the next requests
``POST /_sandbox/stall?count=&afterBytes=&match=``     stall responses after some body bytes
``POST /_sandbox/release``                             let stalled responses go on
``POST /_sandbox/reset?count=&afterBytes=&match=``     TCP RST after some body bytes
``POST /_sandbox/drop?count=&match=``                  RST before any response byte
``POST /_sandbox/clear``                               disarm every fault, no latency
``POST /_sandbox/compact[?rv=N]``                      forget the history up to N (410s)
``POST /_sandbox/objects`` (JSON body)                 create or replace an object directly
``DELETE /_sandbox/objects?resource=&namespace=&name=``  delete one directly
``GET/DELETE /_sandbox/requests[?match=]``             the request log / clear it
=====================================================  ========================================
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

from kubesandbox.wire import Request, Response, json_response
from yurthub.errors import BadRequest, MethodNotAllowed, NotFound
from yurthub.kube.patch import decode


class Controller(Protocol):
    """The Sandbox methods the control plane drives."""

    def state(self) -> dict[str, Any]: ...
    def offline(self) -> None: ...
    def online(self) -> None: ...
    def cut_connections(self) -> int: ...
    def set_latency(self, ms: float) -> None: ...
    def fail_next(self, count: int = 1, status: int = 503, *, match: str = "",
                  retry_after: int | None = None) -> None: ...
    def stall_next(self, count: int = 1, *, after_bytes: int = 0, match: str = "") -> None: ...
    def release(self) -> None: ...
    def reset_next(self, count: int = 1, *, after_bytes: int = 0, match: str = "") -> None: ...
    def drop_next(self, count: int = 1, *, match: str = "") -> None: ...
    def clear_faults(self) -> None: ...
    def compact(self, rv: int | None = None) -> int: ...
    def put(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    def delete(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None: ...
    def requests(self, match: str = "") -> list[Any]: ...
    def clear_requests(self) -> None: ...


def _int(req: Request, name: str, default: int | None) -> int | None:
    try:
        return req.int_param(name) if req.param(name) not in (None, "") else default
    except BadRequest:
        raise BadRequest(f"{name} must be an integer") from None


def handle(sb: Controller, req: Request) -> Response:
    """Serve one control request (raises ApiError for bad ones)."""
    action = req.path[len("/_sandbox"):].strip("/")
    method = req.method
    match = req.param("match") or ""
    count = _int(req, "count", 1) or 1
    after = _int(req, "afterBytes", 0) or 0
    try:
        if action == "state" and method == "GET":
            return json_response(sb.state())
        if action == "requests" and method == "GET":
            return json_response({"items": [asdict(r) for r in sb.requests(match)]})
        if action == "requests" and method == "DELETE":
            sb.clear_requests()
            return json_response({"ok": True})
        if action == "objects" and method == "POST":
            obj = decode(req.body)
            if not isinstance(obj, dict):
                raise BadRequest("the body must be a Kubernetes object")
            return json_response(sb.put(obj), 201)
        if action == "objects" and method == "DELETE":
            gone = sb.delete(req.param("resource") or "", req.param("name") or "",
                             req.param("namespace") or "")
            if gone is None:
                raise NotFound("no such object")
            return json_response(gone)
        if method != "POST":
            if action in _POST_ACTIONS:
                raise MethodNotAllowed("use POST")
            raise NotFound(f"no control endpoint {action!r}")
        if action not in _POST_ACTIONS:
            raise NotFound(f"no control endpoint {action!r}")
        result: Any = None
        if action == "offline":
            sb.offline()
        elif action == "online":
            sb.online()
        elif action == "cut":
            result = sb.cut_connections()
        elif action == "latency":
            sb.set_latency(float(req.param("ms") or 0))
        elif action == "fail":
            sb.fail_next(count, _int(req, "status", 503) or 503, match=match,
                         retry_after=_int(req, "retryAfter", None))
        elif action == "stall":
            sb.stall_next(count, after_bytes=after, match=match)
        elif action == "release":
            sb.release()
        elif action == "reset":
            sb.reset_next(count, after_bytes=after, match=match)
        elif action == "drop":
            sb.drop_next(count, match=match)
        elif action == "clear":
            sb.clear_faults()
        elif action == "compact":
            result = sb.compact(_int(req, "rv", None))
        return json_response({"ok": True, "result": result})
    except ValueError as e:
        raise BadRequest(str(e)) from None


_POST_ACTIONS = frozenset({"offline", "online", "cut", "latency", "fail", "stall", "release",
                           "reset", "drop", "clear", "compact"})
