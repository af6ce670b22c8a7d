"""What the worker tells the WSGI app about the connection a request came on.

The gunicorn worker (``yurthub.worker``) learns, once per connection, which listener accepted
it and which user owns the client's socket, and puts a ``ConnectionInfo`` into every
request's environ under ``ENV_CONNECTION``.  The app reads only this module's names: it
never asks the kernel, and never guesses from the port.

environ keys:

- ``yurthub.connection``: the ``ConnectionInfo`` below (absent when the app runs under
  another server, e.g. werkzeug's in tests: then nothing is known of the peer).
- ``yurthub.peer_uid``: ``ConnectionInfo.uid``, for code that wants only the number.
- ``yurthub.listener``: ``ConnectionInfo.role.value`` (``proxy``, ``secure-proxy``,
  ``hub-server``).
- ``yurthub.long_running`` (set by the app): True on a request whose answer may last (a
  watch, a log, an upgraded session); the worker bounds every other one by its
  ``request_timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

ENV_CONNECTION = "yurthub.connection"
ENV_PEER_UID = "yurthub.peer_uid"
ENV_LISTENER = "yurthub.listener"
ENV_LONG_RUNNING = "yurthub.long_running"
# True on a secure-proxy request whose TLS client certificate is this node's own (set by the
# app, ``proxy/secure.py``): the one peer of 10268 that may use the hub's credentials.
ENV_NODE_CERTIFICATE = "yurthub.node_certificate"
# A class attribute, True on the gunicorn worker that sets ``ENV_CONNECTION`` (yurthub.worker):
# under any other worker the hub knows no connection's owner, and refuses to start.
WORKER_SETS_CONNECTION = "sets_connection_facts"


class Role(Enum):
    """What a listener is for; the app routes by it, the worker sizes capacity by it."""

    PROXY = "proxy"                  # the API proxy, plain HTTP on loopback (10261)
    SECURE_PROXY = "secure-proxy"    # the same proxy over TLS (10268, issue 14)
    HUB_SERVER = "hub-server"        # /v1/healthz, /v1/readyz, /metrics (10267)

    @property
    def is_proxy(self) -> bool:
        return self is not Role.HUB_SERVER


@dataclass
class ConnectionInfo:
    """One accepted connection, as the worker saw it at accept time.

    ``uid`` is the owner of the client's socket, asked of the kernel once, at accept time:
    None when no process of this network namespace holds that socket (a remote peer, or a
    client that already closed its end).  ``identified`` is False when the lookup is turned
    off (``peer_lookup = off``): then ``uid`` is None and every local process is trusted.
    ``requests`` counts the requests served on the connection before the current one.
    """

    id: int
    role: Role
    peer: Any                  # the client's address as accept() gave it
    uid: int | None
    identified: bool
    accepted_at: float         # time.monotonic() of the accept
    tls: bool = False
    requests: int = 0

    def environ(self) -> dict[str, Any]:
        """The environ keys for a request on this connection."""
        return {ENV_CONNECTION: self, ENV_PEER_UID: self.uid, ENV_LISTENER: self.role.value}


def connection_of(environ: dict[str, Any]) -> ConnectionInfo | None:
    """The ConnectionInfo of a request, or None when the server is not yurthub's worker."""
    info = environ.get(ENV_CONNECTION)
    return info if isinstance(info, ConnectionInfo) else None
