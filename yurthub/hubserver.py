"""The hub's own server on port 10267: ``/v1/healthz``, ``/v1/readyz`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from yurthub.metrics import CONTENT_TYPE_LATEST, Metrics

# Returns None when ready, else the reason the hub cannot serve yet.
ReadinessCheck = Callable[[], "str | None"]


class HubServer:
    """A tiny WSGI app; everything else on this port is 404."""

    def __init__(self, metrics: Metrics, readiness: ReadinessCheck) -> None:
        self.metrics = metrics
        self.readiness = readiness

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed\n", status=405, mimetype="text/plain",
                            headers=[("Allow", "GET, HEAD")])
        path = request.path
        if path == "/v1/healthz":
            return Response("OK", mimetype="text/plain")
        if path == "/v1/readyz":
            reason = self.readiness()
            if reason is None:
                return Response("OK", mimetype="text/plain")
            return Response(f"not ready: {reason}\n", status=503, mimetype="text/plain")
        if path == "/metrics":
            return Response(self.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
        return Response("not found\n", status=404, mimetype="text/plain")
