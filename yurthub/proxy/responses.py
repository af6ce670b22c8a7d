"""The one place where errors become HTTP responses (a ``metav1.Status`` for every failure), and
the answer that passes an upstream response through as it is."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from yurthub.errors import ApiError, InternalError, TooManyRequests
from yurthub.kube.status import STATUS_CONTENT_TYPE, status_bytes

log = logging.getLogger(__name__)

# What handlers return: a werkzeug Response or a Passthrough, called as a WSGI app.
Answer = Callable[[dict[str, Any], Any], Iterable[bytes]]


def status_response(err: ApiError, headers: list[tuple[str, str]] | None = None) -> Response:
    """The Status kube-apiserver would send for ``err``, with the matching HTTP code."""
    extra = list(headers or [])
    if isinstance(err, TooManyRequests) or err.code == 429:
        retry = str((err.details or {}).get("retryAfterSeconds", 1))
        extra.append(("Retry-After", retry))
    return Response(status_bytes(err), status=err.code, headers=extra,
                    content_type=STATUS_CONTENT_TYPE)


def internal_error(what: str) -> Response:
    """A bug: log it with its traceback, tell the client without leaking internals."""
    log.exception("internal error while %s", what)
    return status_response(InternalError(f"yurthub failed while {what}; see its log"))


class Passthrough:
    """A WSGI answer whose status, headers and body come from the upstream as they are.

    werkzeug's Response would copy the headers twice and look up (and raise KeyError for)
    headers it might rewrite: ~40 us of every proxied request for nothing, since the
    headers are the upstream's, hop-by-hop ones already dropped.  The body's ``close``
    is called by the server, as WSGI wants.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: Iterable[bytes], status: int,
                 headers: list[tuple[str, str]]) -> None:
        self.body = body
        self.status = status
        self.headers = headers

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        reason = HTTP_STATUS_CODES.get(self.status, "UNKNOWN")
        start_response(f"{self.status} {reason}", self.headers)
        return self.body
