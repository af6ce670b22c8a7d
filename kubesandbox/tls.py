"""TLS and authentication: serving contexts, self-signed material made with ``openssl``, tokens.

``make_self_signed(dir)`` writes a CA, a serving certificate for 127.0.0.1/localhost/::1 and
a client certificate (``O=system:nodes, CN=system:node:<name>``, as a kubelet's) signed by
that CA, using the ``openssl`` command (no Python dependency).  Tokens are compared in constant
time and never logged.
"""

from __future__ import annotations

import hmac
import logging
import os
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yurthub.errors import ConfigError

log = logging.getLogger(__name__)

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the files ``make_self_signed`` wrote."""

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    except FileNotFoundError as e:
        raise ConfigError("the openssl command is needed to make TLS material") from e
    except subprocess.CalledProcessError as e:
        raise ConfigError(f"openssl {args[0]} failed: {e.stderr.decode(errors='replace')}") \
            from e


def _sign(d: Path, name: str, subject: str, extensions: str) -> None:
    _openssl("req", *_EC, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
             "-subj", subject)
    ext = d / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "3650", "-sha256",
             "-extfile", str(ext), "-out", str(d / f"{name}.crt"))
    (d / f"{name}.csr").unlink()
    ext.unlink()


def make_self_signed(directory: str | os.PathLike[str], *,
                     client_name: str = "sandbox-node") -> TLSMaterial:
    """Write ca.crt/key, server.crt/key and client.crt/key into ``directory`` (kept if there)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    material = TLSMaterial(*(str(d / n) for n in (
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")))
    if all(Path(p).exists() for p in vars(material).values()):
        return material
    _openssl("req", "-x509", *_EC, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
             "-days", "3650", "-subj", "/CN=yurthub-sandbox-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _sign(d, "server", "/CN=yurthub-sandbox",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=serverAuth\n"
          "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
    _sign(d, "client", f"/O=system:nodes/CN=system:node:{client_name}",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=clientAuth\n")
    for key in (material.ca_key, material.server_key, material.client_key):
        os.chmod(key, 0o600)
    log.info("wrote a self-signed CA and certificates to %s", d)
    return material


def server_context(cert_file: str, key_file: str, client_ca_file: str | None) -> ssl.SSLContext:
    """A serving context; with a client CA, a client certificate is verified when offered."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert_file, key_file)
        if client_ca_file:
            ctx.load_verify_locations(client_ca_file)
            ctx.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load TLS material: {e}") from e
    return ctx


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries ``Bearer <token>``."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer "):].strip().encode(), token.encode())


def has_client_cert(peercert: Any) -> bool:
    """A verified client certificate (only verified ones reach here, or none at all)."""
    return bool(peercert)
