"""Requests and responses between the HTTP layer and the API handlers, and content negotiation.

Handlers take a :class:`Request` and return a :class:`Response` whose body is a list of byte
pieces (joined once, when written) or, for a watch, an iterator of chunks.  Errors are raised
as :class:`yurthub.errors.ApiError`; :func:`status_response` is the one place they become a
``metav1.Status`` body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from yurthub.errors import ApiError, NotAcceptable
from yurthub.kube.requestinfo import bool_option, parse_int64
from yurthub.kube.status import status_bytes

JSON = "application/json"
GZIP_THRESHOLD = 128 * 1024  # kube-apiserver compresses bodies larger than this
_JSON_TYPES = frozenset({"application/json", "application/*", "*/*"})


class Headers(Protocol):
    """Case-insensitive request headers (http.server's ``Message`` or a plain dict)."""

    def get(self, name: str, default: Any = None, /) -> Any: ...


@dataclass
class Request:
    """One HTTP request as the API handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes = b""
    user_agent: str = ""
    user: Any = None  # kubesandbox.auth.User, set once the request is authenticated

    # kube-apiserver's conversions of url.Values read a parameter's first value.
    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool:
        """Anything but "0" or "false" is true, even an empty value."""
        return bool_option(self.query.get(name))

    def int_param(self, name: str) -> int | None:
        """strconv.ParseInt of the value (an empty one is a 400 too), None when absent."""
        value = self.param(name)
        return None if value is None else parse_int64(value)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "") or ""


@dataclass
class Response:
    """Status, headers and body (pieces) or a chunked stream."""

    status: int = 200
    body: list[bytes | memoryview] = field(default_factory=list)
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Iterator[bytes] | None = None
    on_close: Callable[[], None] | None = None

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.body)


def json_response(obj: Any, status: int = 200) -> Response:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, [data])


def raw_response(data: bytes, status: int = 200) -> Response:
    return Response(status, [data])


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, [text.encode()], "text/plain; charset=utf-8")


def status_response(err: ApiError) -> Response:
    """The ``metav1.Status`` response for ``err`` (with Retry-After when it says so)."""
    resp = Response(err.code, [status_bytes(err)])
    retry = err.details.get("retryAfterSeconds") if err.details else None
    if retry:
        resp.headers.append(("Retry-After", str(retry)))
    return resp


def accepts_json(accept: str | None) -> bool:
    """Whether an Accept header allows a JSON answer (``*/*`` and ``as=Table;…`` JSON do)."""
    if not accept or not accept.strip():
        return True
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _JSON_TYPES:
            return True
    return False


def negotiate(accept: str | None) -> None:
    """Raise 406 when the client accepts nothing the sandbox can send (only JSON)."""
    if not accepts_json(accept):
        raise NotAcceptable(
            "only the following media types are accepted: application/json, "
            "application/json;stream=watch")
