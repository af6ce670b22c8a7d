"""The one place where errors become HTTP responses: a ``metav1.Status`` for every failure."""

from __future__ import annotations

import logging

from werkzeug.wrappers import Response

from yurthub.errors import ApiError, InternalError, TooManyRequests
from yurthub.kube.status import STATUS_CONTENT_TYPE, status_bytes

log = logging.getLogger(__name__)


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
