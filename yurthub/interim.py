"""Connections to the cloud that read past interim (1xx) answers, as Go's net/http does.

http.client skips ``100 Continue`` only: any other 1xx before the answer (``103 Early
Hints`` from a load balancer in front of kube-apiserver, ``102 Processing``) is taken as the
final response, with no body, and the real answer is left unread on the connection.  The
hub then passed a 103 to its client, which waited for an answer that never came.  client-go
and kubectl (Go's net/http) read past up to five 1xx answers and fail after that; so do the
pools made with ``final_answers``.  ``101 Switching Protocols`` stays final (an upgrade).
"""

from __future__ import annotations

import http.client
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection

MAX_INTERIM = 5  # as Go's net/http: more 1xx answers than this are an error


class FinalResponse(http.client.HTTPResponse):
    """An http.client response whose status line is the first one that is not an interim
    1xx answer (101 excepted); the interim answers' headers are read and dropped."""

    def _read_status(self) -> tuple[str, int, str]:
        seen = 0
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            seen += 1
            if seen > MAX_INTERIM:
                raise http.client.HTTPException(
                    f"more than {MAX_INTERIM} interim (1xx) responses before the answer")
            http.client.parse_headers(self.fp)


class FinalHTTPConnection(HTTPConnection):
    response_class = FinalResponse


class FinalHTTPSConnection(HTTPSConnection):
    response_class = FinalResponse


def final_answers(pool: Any) -> Any:
    """``pool`` (urllib3's HTTP or HTTPS pool), its new connections reading past 1xx."""
    if issubclass(pool.ConnectionCls, HTTPSConnection):
        pool.ConnectionCls = FinalHTTPSConnection
    else:
        pool.ConnectionCls = FinalHTTPConnection
    return pool
