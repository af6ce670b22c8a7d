"""The one place where errors become HTTP responses (a ``metav1.Status`` for every failure), and
the answer that passes an upstream response through as it is."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from yurthub.errors import ApiError, InternalError, TooManyRequests
from yurthub.kube.status import STATUS_CONTENT_TYPE, status_bytes
from yurthub.proxy.context import HOP_BY_HOP, connection_tokens

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


# What an HTTP server may send (RFC 9110 5.1, 5.5; gunicorn checks the same and refuses the
# whole answer otherwise).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")
_LENGTH = re.compile(r"[ \t]*[0-9]+[ \t]*")


def upstream_headers(sent: Iterable[tuple[str, str]], final: Mapping[str, str] | None = None
                     ) -> list[tuple[str, str]]:
    """The headers of an upstream answer, to send to its client.

    ``sent``: each header line as the cloud sent it, a repeated name repeated (kube-apiserver
    sends one ``Warning`` per warning, and kubectl prints each); ``final``: one value per
    name, as the proxy changed them (a filtered body's length and encoding), None when it
    changed none.  A name changed or added goes out once with its new value, one dropped not
    at all, one unchanged with every value the cloud sent.  Hop-by-hop headers are dropped,
    those the cloud's ``Connection`` names too (RFC 9110 7.6.1, as Go's ReverseProxy does),
    Content-Length goes out once, and so do header lines no HTTP server may send (a name that
    is no token, a value with control characters, a length that is no number): gunicorn
    refused the whole answer for one of them (a 500), Go's server (YurtHub's) drops them.
    """
    groups: dict[str, list[str]] = {}
    for name, value in sent:
        groups.setdefault(name, []).append(value)
    if final is None:
        final = {name: values[-1] for name, values in groups.items()}
    hop = HOP_BY_HOP | connection_tokens(*(v for n, vs in groups.items()
                                           if n.lower() == "connection" for v in vs))
    out = []
    for name, value in final.items():
        low = name.lower()
        if low in hop:
            continue
        values = groups.get(name)
        if not values or values[-1] != value or low == "content-length":
            values = [value]
        for v in values:
            if _TOKEN.fullmatch(name) and _VALUE.fullmatch(v) and (
                    low != "content-length" or _LENGTH.fullmatch(v)):
                out.append((name, v))
            else:
                log.debug("a response header no server may send is dropped: %r", name)
    return out


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
