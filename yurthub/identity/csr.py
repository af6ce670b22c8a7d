"""One certificate through the certificates.k8s.io/v1 API: request, wait, collect.

The hub posts a CertificateSigningRequest (``generateName: csr-``) with a fresh key's
request, then polls it: approved and issued -> the certificate; denied or failed -> an
IdentityError with the condition's message; 401/403 -> CredentialRejected (the credential it
asked with is no longer good).  Each step is reported through ``progress`` (the log and
readyz show it); while the cloud is unreachable it keeps waiting.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from yurthub.errors import CredentialRejected, IdentityError, UpstreamUnavailable
from yurthub.identity import certs
from yurthub.identity.apiclient import JsonClient, status_message

log = logging.getLogger(__name__)

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CLIENT_USAGES = ("digital signature", "key encipherment", "client auth")
SERVING_USAGES = ("digital signature", "key encipherment", "server auth")
FIRST_POLL = 0.2
MAX_POLL = 2.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CertificateRequest:
    """What to ask for: subject, signer, usages and SANs."""

    common_name: str
    organizations: tuple[str, ...]
    signer: str
    usages: tuple[str, ...]
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        return f"{self.signer} certificate for {self.common_name}"


def _object(req: CertificateRequest, pem: bytes) -> dict[str, Any]:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": req.signer,
                     "usages": list(req.usages)}}


def _check(status: int, body: Any, doing: str) -> None:
    if status in (401, 403):
        raise CredentialRejected(f"{doing}: {status_message(status, body)}")
    if status >= 500 or status == 429:
        raise UpstreamUnavailable(f"{doing}: {status_message(status, body)}")


def request_certificate(client: JsonClient, req: CertificateRequest, key: certs.PrivateKey, *,
                        progress: Progress, stopping: threading.Event,
                        deny_retry: Sequence[str] = ()) -> bytes:
    """The issued certificate (PEM) for ``key``; raises IdentityError, CredentialRejected,
    UpstreamUnavailable (only for the first POST: later, unreachable means keep waiting)."""
    pem = certs.csr_pem(key, req.common_name, req.organizations, req.dns_names,
                        req.ip_addresses)
    progress(f"creating a CertificateSigningRequest for a {req.describe()}")
    status, obj = client.request("POST", CSRS, _object(req, pem))
    _check(status, obj, "creating a CertificateSigningRequest")
    if status != 201 or not isinstance(obj, dict):
        raise IdentityError(f"creating a CertificateSigningRequest: "
                            f"{status_message(status, obj)}")
    name = obj["metadata"]["name"]
    log.info("created CertificateSigningRequest %s for a %s", name, req.describe())
    waiting = f"waiting for CertificateSigningRequest {name} ({req.signer}) to be approved"
    progress(waiting)
    delay = FIRST_POLL
    said_approved = False
    while not stopping.wait(delay):
        delay = min(MAX_POLL, delay * 1.5)
        try:
            status, obj = client.request("GET", f"{CSRS}/{name}")
            _check(status, obj, f"reading CertificateSigningRequest {name}")
        except UpstreamUnavailable as e:
            progress(f"{waiting}; the cloud is unreachable: {e}")
            continue
        if status == 404:
            raise IdentityError(f"CertificateSigningRequest {name} was deleted before it was "
                                "issued")
        if status != 200 or not isinstance(obj, dict):
            raise IdentityError(f"reading CertificateSigningRequest {name}: "
                                f"{status_message(status, obj)}")
        st = obj.get("status") or {}
        conds = {c.get("type"): c for c in st.get("conditions") or []
                 if c.get("status", "True") == "True"}
        for bad in ("Denied", "Failed"):
            if bad in conds:
                raise IdentityError(f"CertificateSigningRequest {name} was "
                                    f"{bad.lower()}: {conds[bad].get('message') or ''}")
        if st.get("certificate"):
            return _issued(name, st["certificate"], key)
        if "Approved" in conds and not said_approved:
            said_approved = True
            progress(f"CertificateSigningRequest {name} approved; waiting for the "
                     "certificate to be issued")
            log.info("CertificateSigningRequest %s approved", name)
    raise IdentityError("stopped while waiting for a certificate")


def _issued(name: str, data: str, key: certs.PrivateKey) -> bytes:
    try:
        pem = base64.b64decode(data, validate=True)
        cert = certs.load_cert(pem)
    except (binascii.Error, ValueError) as e:
        raise IdentityError(f"CertificateSigningRequest {name}: the issued certificate is "
                            f"unusable: {e}") from None
    if not certs.matches_key(cert, key):
        raise IdentityError(f"CertificateSigningRequest {name}: the issued certificate is not "
                            "for the requested key")
    return pem
