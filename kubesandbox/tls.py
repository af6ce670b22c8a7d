"""TLS: the serving context and self-signed material.

``make_self_signed(dir)`` writes a CA, a serving certificate for 127.0.0.1/localhost/::1, a
client certificate (``O=system:nodes, CN=system:node:<name>``, as a kubelet's) and an admin
client certificate (``O=system:masters``) signed by that CA, made with ``cryptography``
(``kubesandbox.pki``).  """

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesandbox import pki
from yurthub.errors import ConfigError

log = logging.getLogger(__name__)

TEN_YEARS = 10 * 365 * 86400.0


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the files ``make_self_signed`` wrote."""

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    admin_cert: str
    admin_key: str


def _write_pair(d: Path, stem: str, cert: Any, key: pki.PrivateKey) -> None:
    pki.write_private(d / f"{stem}.key", pki.key_pem(key))
    (d / f"{stem}.crt").write_bytes(pki.cert_pem(cert))


def make_self_signed(directory: str | os.PathLike[str], *,
                     client_name: str = "sandbox-node") -> TLSMaterial:
    """Write ca, server, client and admin ``.crt``/``.key`` into ``directory`` (kept if there)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    material = TLSMaterial(*(str(d / n) for n in (
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
        "admin.crt", "admin.key")))
    if all(Path(p).exists() for p in vars(material).values()):
        return material
    ca = pki.Authority.create()
    _write_pair(d, "ca", ca.cert, ca.key)
    server = ca.issue_pair(pki.name("yurthub-sandbox"),
                           usages=("digital signature", "key encipherment", "server auth"),
                           lifetime=TEN_YEARS,
                           alt_names=pki.sans(["localhost"], ["127.0.0.1", "::1"]))
    _write_pair(d, "server", *server)
    client = ca.issue_pair(pki.name(f"system:node:{client_name}", ["system:nodes"]),
                           usages=("digital signature", "key encipherment", "client auth"),
                           lifetime=TEN_YEARS)
    _write_pair(d, "client", *client)
    admin = ca.issue_pair(pki.name("kubernetes-admin", ["system:masters"]),
                          usages=("digital signature", "key encipherment", "client auth"),
                          lifetime=TEN_YEARS)
    _write_pair(d, "admin", *admin)
    log.info("wrote a self-signed CA and certificates to %s", d)
    return material


NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME (not named by the ssl module)


def server_context(cert_file: str, key_file: str, client_ca_file: str | None) -> ssl.SSLContext:
    """A serving context; with a client CA, a client certificate is verified when offered."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert_file, key_file)
        if client_ca_file:
            ctx.load_verify_locations(client_ca_file)
            ctx.verify_mode = ssl.CERT_OPTIONAL
            # kube-apiserver asks for a certificate without judging it in the handshake
            # (Go's RequestClientCert): its authenticator answers an expired one with 401.
            # OpenSSL's X509_V_FLAG_NO_CHECK_TIME leaves the dates to auth.py, which checks
            # them at every request; the chain is still verified here.
            ctx.verify_flags |= NO_CHECK_TIME
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load TLS material: {e}") from e
    return ctx
