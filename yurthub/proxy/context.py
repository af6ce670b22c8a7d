"""What the proxy knows about one request: RequestInfo, component, headers, body, client socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from werkzeug.wrappers import Request

from yurthub.errors import BadRequest
from yurthub.kube.requestinfo import RequestInfo, component_from_user_agent, parse_request_info

# Bodies up to this size are read before forwarding, so a connect failure can be retried on
# another server and the local proxy can apply them; bigger ones stream through.
BUFFERED_BODY_LIMIT = 1 << 20
# kube-apiserver refuses request bodies over 3 MiB; so does the local proxy.
MAX_LOCAL_BODY = 3 << 20
_CHUNK = 64 * 1024

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})


@dataclass
class RequestContext:
    """One proxied request, parsed once; handlers read it, never re-parse the environ."""

    request: Request
    info: RequestInfo
    component: str
    path_qs: str
    started: float = field(default_factory=time.monotonic)
    _body: bytes | None = None

    @property
    def environ(self) -> dict[str, Any]:
        return self.request.environ

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def accept(self) -> str:
        return self.request.headers.get("Accept", "")

    @property
    def client_socket(self) -> socket.socket | None:
        sock = self.environ.get("gunicorn.socket")
        return sock if isinstance(sock, socket.socket) else None

    def forward_headers(self) -> dict[str, str]:
        """The request headers to send upstream: hop-by-hop and Host removed."""
        drop = set(HOP_BY_HOP)
        conn = self.request.headers.get("Connection", "")
        drop.update(t.strip().lower() for t in conn.split(",") if t.strip())
        drop.update({"host", "content-length"})
        out = {k: v for k, v in self.request.headers.items() if k.lower() not in drop}
        if self.request.content_length is not None and self.request.content_length > 0:
            out["Content-Length"] = str(self.request.content_length)
        return out

    def has_body(self) -> bool:
        if self.request.content_length:
            return True
        return "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()

    def body_for_upstream(self) -> bytes | Iterator[bytes] | None:
        """The request body: bytes when small and of known length, else a chunk iterator."""
        if not self.has_body():
            return None
        length = self.request.content_length
        if length is not None and length <= BUFFERED_BODY_LIMIT:
            return self.read_body(BUFFERED_BODY_LIMIT)
        stream = self.request.stream

        def chunks() -> Iterator[bytes]:
            while True:
                data = stream.read(_CHUNK)
                if not data:
                    return
                yield data
        return chunks()

    def read_body(self, limit: int = MAX_LOCAL_BODY) -> bytes:
        """The whole request body (at most ``limit`` bytes, else 413-like BadRequest)."""
        if self._body is None:
            data = self.request.stream.read(limit + 1) if self.has_body() else b""
            if len(data) > limit:
                raise BadRequest(f"request body larger than {limit} bytes",
                                 code=413, reason="RequestEntityTooLarge")
            self._body = data
        return self._body


def build_context(request: Request) -> RequestContext:
    """Parse a WSGI request once (raises BadRequest for an unparseable query)."""
    environ = request.environ
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if raw_uri.startswith("/"):
        path, _, query = raw_uri.partition("?")
    else:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = quote(path.encode("latin-1").decode("utf-8", "replace"), safe="/:@!$&'()*+,;=~")
        query = environ.get("QUERY_STRING", "")
    info = parse_request_info(request.method, path, query)
    component = component_from_user_agent(request.headers.get("User-Agent"))
    path_qs = path + ("?" + query if query else "")
    return RequestContext(request=request, info=info, component=component, path_qs=path_qs)
