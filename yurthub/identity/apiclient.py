"""A small JSON client of the apiserver for the hub's identity work: discovery and CSRs.

It is not the proxy's upstream: it runs before the hub has an identity (anonymously, or with
the bootstrap token), tries the servers in order until one answers, and holds no connection
between calls.  TLS is verified against the given context; bearer tokens never reach a log.
"""

from __future__ import annotations

import json
import logging
import ssl
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import urllib3
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from yurthub import cloudproxy
from yurthub.cloudconn import describe_error, final_answers
from yurthub.errors import IdentityError, UpstreamUnavailable

log = logging.getLogger(__name__)

TIMEOUT = 10.0


class JsonClient(Protocol):
    """What the identity work asks the apiserver through (``ApiClient`` and clients that
    pick their credential at each request)."""

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, decoded JSON or None)``; UpstreamUnavailable when no server answered."""


class ApiClient:
    """JSON requests to the first server that answers."""

    def __init__(self, servers: tuple[str, ...],
                 context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None, *,
                 token: str = "", timeout: float = TIMEOUT) -> None:
        """``context`` may be a function giving the context of the moment: a client that
        waits long (a CSR's approval) then presents a credential that rotated meanwhile."""
        self.servers = servers
        self.context = context
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, decoded JSON or None)``; UpstreamUnavailable when no server answered."""
        headers = {"Accept": "application/json", "User-Agent": "yurthub/identity"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        errors = []
        context = self.context() if callable(self.context) else self.context
        for server in self.servers:
            kw: dict[str, Any] = {}
            if server.startswith("https://"):
                kw["ssl_context"] = context or _unverified()
                if context is None or context.verify_mode == ssl.CERT_NONE:
                    kw["cert_reqs"] = "CERT_NONE"
                    kw["assert_hostname"] = False
            pool = final_answers(cloudproxy.connection_from_url(server, maxsize=1, **kw))
            try:
                with warnings.catch_warnings():
                    # Discovery's first read is unverified on purpose: the JWS and the pin
                    # prove what it returns.
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                    resp = pool.urlopen(method, path, body=data, headers=headers,
                                        retries=False, redirect=False,
                                        timeout=urllib3.Timeout(total=self.timeout))
                    raw = resp.data
            except (HTTPError, OSError) as e:
                reason = describe_error(e)
                if "certificate verify failed" in reason.lower():
                    # Not a network failure: the server is not who the CA says it is.
                    raise IdentityError(f"{server}: TLS verification failed: {reason}") from e
                errors.append(f"{server}: {reason}")
                continue
            finally:
                pool.close()
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, None
        raise UpstreamUnavailable("; ".join(errors) or "no apiserver")


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def status_message(status: int, body: Any) -> str:
    """``HTTP <code>: <Status message>`` of an error answer."""
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {status}" + (f": {message}" if message else "")
