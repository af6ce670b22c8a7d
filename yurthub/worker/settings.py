"""What the worker needs to know: its listeners (and their roles), timeouts and limits.

The WSGI app hands them over: after gunicorn loaded the app, the worker reads the app's
``worker_settings`` attribute (the hub builds it from its Config), so settings are passed
in, never read from a global; an app without one gets the defaults.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from yurthub.connection import Role

# Turns an accepted socket into a TLS socket whose handshake has not run yet
# (``ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)``).  Called on the
# worker's loop thread for every connection of its listener, so it must not block; the
# handshake itself is driven by the loop, non-blocking (see worker/conn.py).  Look the
# SSLContext up at each call to pick up a reloaded certificate.
Wrapper = Callable[[socket.socket], ssl.SSLSocket]


@dataclass(frozen=True)
class ListenerSpec:
    """One of gunicorn's bound sockets, found by its port: its role, and its TLS wrapper."""

    port: int
    role: Role
    wrap: Wrapper | None = None


@dataclass(frozen=True)
class Limits:
    """Connection slots.  The proxy listeners share ``max_connections`` and each peer UID
    may hold ``per_uid`` of them; kubelet's UID may go ``kubelet_reserve`` beyond both, so a
    flood from other users cannot keep its Lease renewal out.  The hub server has slots of
    its own, so no flood of the proxy port reaches healthz, readyz or metrics."""

    max_connections: int = 4096
    per_uid: int = 1024
    kubelet_reserve: int = 64
    hub_max_connections: int = 64
    hub_per_uid: int = 16


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker takes from yurthub's Config (the defaults match the Config's).

    ``header_timeout``: seconds from accept (or from the first byte of a kept-alive
    connection's next request) until the whole request head must have arrived.
    ``body_timeout``: seconds one read of a request body may wait.  ``send_timeout``:
    seconds one write of an answer may wait (a client that stops reading is cut off).
    ``request_timeout``: seconds from the first to the last byte of an answer the app did not
    mark long-running (``ENV_LONG_RUNNING``), so a client reading a list a little at a time
    cannot hold a thread for hours.
    ``kubelet_uid``: requests for the node Lease from this UID get threads of their own.
    """

    listeners: tuple[ListenerSpec, ...] = ()
    peer_lookup: str = "auto"
    kubelet_uid: int | None = 0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0
    request_timeout: float = 60.0
    limits: Limits = field(default_factory=Limits)
    lease_threads: int = 4
    hub_threads: int = 4

    def listener(self, port: int) -> ListenerSpec:
        """The spec of the listener on ``port``; an unknown port is a plain proxy listener."""
        for spec in self.listeners:
            if spec.port == port:
                return spec
        return ListenerSpec(port, Role.PROXY)
