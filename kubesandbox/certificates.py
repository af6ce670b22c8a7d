"""The certificates.k8s.io/v1 CSR API: admission, yurt-manager's approver and the signers.

``admit`` is what kube-apiserver does to a new CertificateSigningRequest: the request must be
a PEM ``CERTIFICATE REQUEST`` with a valid signature, a signer and known usages; the
requester's name, uid and groups are recorded in ``spec``.  ``recognize`` is yurt-manager's
csrapprover: a yurthub client certificate (signer ``kubernetes.io/kube-apiserver-client``, CN
``system:node:*``, O only ``openyurt:yurthub``/``system:nodes``/``openyurt:tenant:*`` and at
least two of them, usages exactly digital signature + key encipherment + client auth) or a
serving certificate (signer ``kubernetes.io/kubelet-serving``, O exactly ``system:nodes``,
CN ``system:node:*``, a DNS or IP SAN, usages digital signature + key encipherment + server
auth).  ``sign`` is kube-controller-manager's signer for the two signers (and kubelet's
client signer), with a lifetime the sandbox sets (``--cert-lifetime``) and that
``spec.expirationSeconds`` may shorten.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from kubesandbox.auth import User
from kubesandbox.objects import now_rfc3339
from kubesandbox.pki import KNOWN_USAGES, Authority, cert_pem
from yurthub.errors import Invalid

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SIGNERS = frozenset({CLIENT_SIGNER, KUBELET_CLIENT_SIGNER, SERVING_SIGNER})
YURTHUB_ORG = "openyurt:yurthub"
TENANT_PREFIX = "openyurt:tenant:"
CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
SERVER_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
MIN_EXPIRATION = 600  # kube-apiserver refuses spec.expirationSeconds below 10 minutes


def _invalid(name: str, field: str, message: str) -> Invalid:
    return Invalid(f'CertificateSigningRequest.certificates.k8s.io "{name}" is invalid: '
                   f"{field}: {message}",
                   details={"name": name, "group": "certificates.k8s.io",
                            "kind": "CertificateSigningRequest",
                            "causes": [{"reason": "FieldValueInvalid", "message": message,
                                        "field": field}]})


def parse_request(csr_obj: dict[str, Any]) -> x509.CertificateSigningRequest:
    """The x509 request in ``spec.request`` (ValueError when it is not one)."""
    raw = (csr_obj.get("spec") or {}).get("request") or ""
    try:
        pem = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("spec.request is not base64") from None
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    req = x509.load_pem_x509_csr(pem)
    if not req.is_signature_valid:
        raise ValueError("the request's signature is invalid")
    return req


def admit(obj: dict[str, Any], user: User) -> dict[str, Any]:
    """Validate a new CSR and record who asked; raises Invalid (422) as kube-apiserver."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or ""
    spec = obj.setdefault("spec", {})
    try:
        parse_request(obj)
    except ValueError as e:
        raise _invalid(name, "spec.request", f"Invalid value: []byte{{...}}: {e}") from None
    if not spec.get("signerName"):
        raise _invalid(name, "spec.signerName", "Required value")
    usages = spec.get("usages")
    if not usages or not isinstance(usages, list):
        raise _invalid(name, "spec.usages", "Required value")
    for u in usages:
        if u not in KNOWN_USAGES and u not in ("signing", "key agreement", "cert sign",
                                               "crl sign", "any", "data encipherment",
                                               "content commitment", "code signing",
                                               "email protection", "s/mime",
                                               "ipsec end system", "ipsec tunnel",
                                               "ipsec user", "timestamping", "ocsp signing",
                                               "microsoft sgc", "netscape sgc"):
            raise _invalid(name, "spec.usages", f'Unsupported value: "{u}"')
    seconds = spec.get("expirationSeconds")
    if seconds is not None and (not isinstance(seconds, int) or seconds < MIN_EXPIRATION):
        raise _invalid(name, "spec.expirationSeconds",
                       f"Invalid value: {seconds}: may not specify a duration less than "
                       "600 seconds (10 minutes)")
    spec["username"] = user.name
    spec["groups"] = list(user.groups)
    if user.uid:
        spec["uid"] = user.uid
    obj.pop("status", None)
    return obj


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []
            if c.get("status", "True") == "True"}


def _subject(req: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    cn = [a.value for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(cn[0]) if cn else ""), orgs


def _san_count(req: x509.CertificateSigningRequest) -> int:
    try:
        ext = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return 0
    return len(ext.get_values_for_type(x509.DNSName)) + \
        len(ext.get_values_for_type(x509.IPAddress))


def recognize(obj: dict[str, Any]) -> str | None:
    """yurt-manager's approval message for a CSR it approves, else None."""
    spec = obj.get("spec") or {}
    try:
        req = parse_request(obj)
    except ValueError:
        return None
    cn, orgs = _subject(req)
    usages = frozenset(spec.get("usages") or ())
    if not cn.startswith("system:node:"):
        return None
    if spec.get("signerName") == CLIENT_SIGNER and usages == CLIENT_USAGES and len(orgs) >= 2 \
            and all(o in (YURTHUB_ORG, "system:nodes") or o.startswith(TENANT_PREFIX)
                    for o in orgs):
        return "Auto approving yurthub node client certificate"
    if spec.get("signerName") == SERVING_SIGNER and usages == SERVER_USAGES and \
            orgs == ["system:nodes"] and _san_count(req) > 0:
        return "Auto approving openyurt tls server certificate"
    return None


def condition(type_: str, reason: str, message: str) -> dict[str, Any]:
    now = now_rfc3339()
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}


def sign(obj: dict[str, Any], ca: Authority, lifetime: float) -> str:
    """The issued certificate (base64 PEM) for an approved CSR; ValueError saying why not."""
    spec = obj.get("spec") or {}
    signer = spec.get("signerName")
    if signer not in SIGNERS:
        raise ValueError(f"the sandbox does not sign for {signer!r}")
    req = parse_request(obj)
    cn, orgs = _subject(req)
    usages = list(spec.get("usages") or ())
    if signer == SERVING_SIGNER:
        if not cn.startswith("system:node:") or orgs != ["system:nodes"] or \
                not set(usages) <= SERVER_USAGES | {"client auth"} or "server auth" not in usages:
            raise ValueError("invalid kubelet-serving request: CN system:node:<name>, O "
                             "system:nodes and server auth usage required")
    elif "client auth" not in usages or not set(usages) <= CLIENT_USAGES:
        raise ValueError("invalid client request: client auth usage required, no others")
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds > 0:
        lifetime = min(lifetime, float(seconds))
    try:
        alt = list(req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        alt = []
    # kube-controller-manager backdates by 5 minutes; a short-lived certificate by a tenth
    # of its lifetime, so 70-90 % of it still lies ahead when it arrives.
    backdate = min(300.0, lifetime / 10)
    cert = ca.issue(req.public_key(), req.subject, usages=usages, lifetime=lifetime,
                    alt_names=alt, backdate=backdate)
    return base64.b64encode(cert_pem(cert)).decode()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
