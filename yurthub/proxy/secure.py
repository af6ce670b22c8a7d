"""Who a request on the HTTPS port (10268) is, beyond what the worker knows of its socket.

Requests there come from pods (other network namespaces: no local UID), never from the
node's own components on loopback, so the hub's node identity is not theirs to use:

- a request with its own ``Authorization`` (a ServiceAccount token) goes upstream with it,
  untouched, as on 10261, and is cached and answered offline by its User-Agent as there
  (offline only what the cloud was seen to allow that token: ``access.guard``);
- a request presenting a client certificate that the cluster CA signed (verified in the TLS
  handshake) for *this node* (CN ``system:node:<node name>``, O ``system:nodes``) is the node
  itself, the same principal as the hub's certificate: it may use the hub's identity
  (``connection.ENV_NODE_CERTIFICATE``, which the guard reads);
- anything else may not use the hub's credentials (403 from the guard).
"""

from __future__ import annotations

import ssl
from typing import Any

from yurthub.connection import ENV_NODE_CERTIFICATE

ENV_PEER_CERT_USER = "yurthub.peer_cert_user"  # the verified client certificate's CN


def _subject(cert: dict[str, Any]) -> tuple[str, list[str]]:
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return cn, orgs


def secure_request_identity(environ: dict[str, Any], node_name: str) -> None:
    """Mark ``environ`` of a 10268 request that this node's own certificate sent."""
    environ.pop(ENV_NODE_CERTIFICATE, None)
    sock = environ.get("gunicorn.socket")
    cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    if cert:
        cn, orgs = _subject(cert)
        environ[ENV_PEER_CERT_USER] = cn
        if cn == f"system:node:{node_name}" and "system:nodes" in orgs:
            environ[ENV_NODE_CERTIFICATE] = True
