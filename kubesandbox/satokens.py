"""ServiceAccount tokens: JWTs the sandbox signs (ES256) and later authenticates.

kube-apiserver's tokens carry ``iss``, ``sub`` = ``system:serviceaccount:<ns>:<name>``,
``aud``, ``iat``/``nbf``/``exp`` and a ``kubernetes.io`` claim naming the namespace and the
ServiceAccount; they verify against the apiserver's service-account key.  A token is valid
while unexpired, meant for the apiserver (``aud`` holds the issuer) and while its
ServiceAccount (same uid) exists, and, for a token bound to a pod, that pod (same uid).
Never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class ServiceAccountClaims:
    namespace: str
    name: str
    uid: str
    pod: tuple[str, str] | None = None   # (name, uid) of the pod a bound token names


class TokenSigner:
    """Signs and verifies ServiceAccount JWTs with one EC key (made at start)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def issue(self, namespace: str, name: str, uid: str, lifetime: float = 3600.0,
              audience: str = ISSUER) -> str:
        return self.issue_bound(namespace, name, uid, lifetime=lifetime,
                                audiences=[audience])[0]

    def issue_bound(self, namespace: str, name: str, uid: str, *, lifetime: float,
                    audiences: list[str], pod: tuple[str, str] | None = None,
                    warn_after: int | None = None) -> tuple[str, int]:
        """A token and its ``iat``; ``pod`` (name, uid) binds it to a pod, as kube-apiserver's
        ``kubernetes.io.pod`` claim does; ``warn_after`` marks an extended token."""
        now = int(time.time())
        k8s: dict[str, Any] = {"namespace": namespace,
                               "serviceaccount": {"name": name, "uid": uid}}
        if pod is not None:
            k8s["pod"] = {"name": pod[0], "uid": pod[1]}
        if warn_after is not None:
            k8s["warnafter"] = now + warn_after
        claims = {"iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}",
                  "aud": list(audiences), "iat": now, "nbf": now, "exp": now + int(lifetime),
                  "kubernetes.io": k8s}
        head = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        der = self._key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{head}.{body}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}", now

    def verify(self, token: str) -> ServiceAccountClaims | None:
        """The claims of a token this signer issued that has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            claims: dict[str, Any] = json.loads(_unb64(parts[1]))
            raw = _unb64(parts[2])
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(raw) != 64 \
                or not isinstance(claims, dict):
            return None
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
        try:
            self._key.public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(),
                                          ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return None
        now = time.time()
        if claims.get("iss") != ISSUER or not isinstance(claims.get("exp"), int) \
                or claims["exp"] <= now or claims.get("nbf", 0) > now + 60:
            return None
        aud = claims.get("aud")
        if ISSUER not in (aud if isinstance(aud, list) else [aud]):
            return None  # a token for another audience is not one for the apiserver
        k8s = claims.get("kubernetes.io") or {}
        sa = k8s.get("serviceaccount") or {}
        if not (isinstance(k8s.get("namespace"), str) and isinstance(sa.get("name"), str)):
            return None
        pod = k8s.get("pod")
        bound = (str(pod.get("name") or ""), str(pod.get("uid") or "")) \
            if isinstance(pod, dict) else None
        return ServiceAccountClaims(k8s["namespace"], sa["name"], str(sa.get("uid") or ""),
                                    bound)
