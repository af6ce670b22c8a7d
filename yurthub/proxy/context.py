"""What the proxy knows about one request: RequestInfo, component, headers, body, client socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import quote

from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, ParseException
from werkzeug.wrappers import Request

from yurthub.access.guard import Caller
from yurthub.access.keys import client_authorization, component_key
from yurthub.errors import BadRequest
from yurthub.kube.patchlimits import too_large
from yurthub.kube.requestinfo import (
    RequestInfo,
    bool_option,
    component_from_user_agent,
    parse_query,
    parse_request_info,
)

# Bodies up to this size are read before forwarding, so a connect failure can be retried on
# another server and the local proxy can apply them; bigger ones stream through.
BUFFERED_BODY_LIMIT = 1 << 20
# kube-apiserver refuses request bodies over 3 MiB; so does the local proxy.
MAX_LOCAL_BODY = 3 << 20
_CHUNK = 64 * 1024
# What gunicorn raises for a body it cannot parse (ParseException on gunicorn 22+, where the
# chunk errors are ParseExceptions; OSErrors on Debian 12's 20.1).
_MALFORMED: tuple[type[Exception], ...] = (ParseException, InvalidChunkSize,
                                           ChunkMissingTerminator)
# kube-apiserver's long-running requests (its --request-timeout does not bound them).
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "log", "portforward", "proxy"})

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})


_DROPPED = HOP_BY_HOP | {"host", "content-length"}


def connection_tokens(*values: str) -> set[str]:
    """The names a ``Connection`` header lists (RFC 9110 7.6.1: a comma-separated list,
    any case, spaces around), lowercased: hop-by-hop headers, ``close``, ``upgrade``."""
    return {t.strip(" \t").lower() for v in values for t in v.split(",") if t.strip(" \t")}


@lru_cache(maxsize=512)
def _header_name(environ_key: str) -> str:
    """``X_REMOTE_USER`` -> ``X-Remote-User``, as werkzeug's EnvironHeaders names it."""
    return environ_key.replace("_", "-").title()


# Who sent a request: from the peer's connection and its User-Agent (access.AccessGuard).
Identify = Callable[[dict[str, Any], str], Caller]


def _anyone(environ: dict[str, Any], agent: str) -> Caller:
    """Without a guard (tests of single parts): a trusted caller known by its agent only."""
    return Caller(None, False, client_authorization(environ), agent,
                  component_key(agent, None, False, frozenset()), True, agent == "kubelet")


@dataclass
class RequestContext:
    """One proxied request, parsed once; handlers read it, never re-parse the environ.

    ``component`` is the cache component (the User-Agent's name, ``@<uid>`` after it for a
    peer that is not a trusted user); ``agent`` the name alone, for filters, metrics and logs.
    """

    request: Request
    info: RequestInfo
    caller: Caller
    path_qs: str
    started: float = field(default_factory=time.monotonic)
    _body: bytes | None = None
    # Where yurthub_requests_total counts this request ("remote", "cache"); "" until then.
    counted: str = ""

    @property
    def component(self) -> str:
        return self.caller.component

    @property
    def agent(self) -> str:
        return self.caller.agent

    @property
    def environ(self) -> dict[str, Any]:
        return self.request.environ

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def accept(self) -> str:
        return self.environ.get("HTTP_ACCEPT", "")

    def header(self, name: str) -> str:
        """A request header ("" when absent), read from the environ: werkzeug's header
        mapping builds a KeyError for every header that is missing."""
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"), "")

    @property
    def content_length(self) -> int | None:
        value = self.environ.get("CONTENT_LENGTH", "")
        if not value:
            return None
        try:
            n = int(value)
        except ValueError:
            return None
        return n if n >= 0 else None

    @cached_property
    def follows(self) -> bool:
        """A pod's log asked with ``follow``, read as kube-apiserver reads it: ``True``
        (the Python client on urllib3 1.26 sends that), ``yes`` or no value follow too."""
        if self.info.subresource != "log":
            return False   # (only then is the query parsed again, once per request)
        return bool_option(parse_query(self.path_qs.partition("?")[2]).get("follow"))

    @property
    def long_running(self) -> bool:
        """kube-apiserver's long-running requests (``BasicLongRunningRequestCheck``): a watch,
        an upgraded session, a log, exec, attach, port-forward or proxy subresource, or the
        proxy verb.  Every other answer must be sent within the worker's request_timeout."""
        info = self.info
        return (info.verb in LONG_RUNNING_VERBS or info.subresource in LONG_RUNNING_SUBRESOURCES
                or bool(self.header("Upgrade")))

    @property
    def client_socket(self) -> socket.socket | None:
        sock = self.environ.get("gunicorn.socket")
        return sock if isinstance(sock, socket.socket) else None

    def forward_headers(self) -> dict[str, str]:
        """The request headers to send upstream: hop-by-hop and Host removed.

        Names are spelled as werkzeug spells them (``X-Remote-User``); built from the
        environ directly, which costs a fifth of werkzeug's header mapping.
        """
        drop = _DROPPED
        conn = self.environ.get("HTTP_CONNECTION")
        if conn:
            drop = drop | connection_tokens(conn)
        out = {}
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                    continue
                name = _header_name(key[5:])
            elif key == "CONTENT_TYPE" and value:
                name = "Content-Type"
            else:
                continue
            if name.lower() not in drop:
                out[name] = value
        length = self.content_length
        if length:
            out["Content-Length"] = str(length)
        return out

    def has_body(self) -> bool:
        if self.content_length:
            return True
        return "chunked" in self.header("Transfer-Encoding").lower()

    def body_for_upstream(self) -> bytes | Iterator[bytes] | None:
        """The request body: bytes when small and of known length, else a chunk iterator."""
        if not self.has_body():
            return None
        length = self.content_length
        if length is not None and length <= BUFFERED_BODY_LIMIT:
            return self.read_body(BUFFERED_BODY_LIMIT)
        stream = self.request.stream

        def chunks() -> Iterator[bytes]:
            while True:
                data = _read(stream, _CHUNK)
                if not data:
                    return
                yield data
        return chunks()

    @property
    def body_buffered(self) -> bool:
        """True once the body was read whole (small bodies are, before forwarding)."""
        return self._body is not None

    def read_body(self, limit: int = MAX_LOCAL_BODY) -> bytes:
        """The whole request body (at most ``limit`` bytes, else 413 RequestEntityTooLarge)."""
        if self._body is None:
            data = _read(self.request.stream, limit + 1) if self.has_body() else b""
            if len(data) > limit:
                raise too_large(f"limit is {limit}")  # kube-apiserver's words
            self._body = data
        return self._body


def _read(stream: Any, size: int) -> bytes:
    """Read the request body, its errors the client's: raised as ApiErrors, which no
    upstream library takes for the cloud's connection breaking."""
    try:
        data: bytes = stream.read(size)
    except _MALFORMED as e:
        raise BadRequest(f"the request body is malformed: {e}") from None
    except OSError as e:
        # The worker's client_body_timeout (or the client went away mid-body).
        raise BadRequest(f"the request body did not arrive: {e or 'timed out'}",
                         code=408, reason="Timeout") from None
    return data


def build_context(request: Request, identify: Identify = _anyone) -> RequestContext:
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
    agent = component_from_user_agent(environ.get("HTTP_USER_AGENT"))
    path_qs = path + ("?" + query if query else "")
    return RequestContext(request=request, info=info, caller=identify(environ, agent),
                          path_qs=path_qs)
