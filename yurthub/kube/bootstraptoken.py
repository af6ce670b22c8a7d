"""Bootstrap tokens, the detached JWS that signs ``cluster-info``, and CA public-key pins.

Pure: the vocabulary of kubeadm's token discovery, shared by the hub (which verifies) and the
sandbox (which signs, as kube-controller-manager's bootstrap signer does).  A token is
``<id>.<secret>`` (6 and 16 characters of ``[a-z0-9]``); ``kube-public/cluster-info`` holds
a kubeconfig and, per token, ``jws-kubeconfig-<id>``: a compact JWS (HS256, key = the token's
secret, header ``kid`` = its id) with the payload left out.  A CA pin is ``sha256:`` and the
hex SHA-256 of the CA certificate's DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re

from yurthub.errors import BadSignature

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
CLUSTER_INFO_PATH = f"/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO_NAME}"
KUBECONFIG_KEY = "kubeconfig"
JWS_KEY_PREFIX = "jws-kubeconfig-"
# Names of the token Secrets, not secrets themselves.
SECRET_NAMESPACE = "kube-system"  # noqa: S105
SECRET_PREFIX = "bootstrap-token-"  # noqa: S105
SECRET_TYPE = "bootstrap.kubernetes.io/token"  # noqa: S105
BOOTSTRAP_GROUP = "system:bootstrappers"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"

_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_TOKEN_ID = re.compile(r"^[a-z0-9]{6}$")
_PIN = re.compile(r"^sha256:([0-9a-f]{64})$")


def parse_token(token: str) -> tuple[str, str]:
    """``(id, secret)`` of a bootstrap token; ValueError (without the secret) otherwise."""
    m = _TOKEN.match(token.strip())
    if not m:
        raise ValueError("not a bootstrap token (expected [a-z0-9]{6}.[a-z0-9]{16})")
    return m.group(1), m.group(2)


def is_token_id(value: str) -> bool:
    return bool(_TOKEN_ID.match(value))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise BadSignature(f"not base64url: {e}") from None


def _header(token_id: str) -> str:
    # go-jose writes the protected header's keys sorted, without spaces: kubeadm's
    # signatures are reproduced byte for byte.
    return _b64(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":"),
                           sort_keys=True).encode())


def _mac(secret: str, signing_input: str) -> bytes:
    return hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()


def detached_signature(content: str, token_id: str, secret: str) -> str:
    """The ``jws-kubeconfig-<id>`` value for ``content``: ``<header>..<signature>``."""
    header = _header(token_id)
    return f"{header}..{_b64(_mac(secret, header + '.' + _b64(content.encode())))}"


def verify_detached(jws: str, content: str, token_id: str, secret: str) -> None:
    """Check a detached JWS over ``content``; raises BadSignature saying what is wrong."""
    parts = jws.strip().split(".")
    if len(parts) != 3 or parts[1] != "":
        raise BadSignature("not a detached JWS (<header>..<signature>)")
    header_b64, _, sig_b64 = parts
    try:
        header = json.loads(_unb64(header_b64))
    except ValueError:
        raise BadSignature("its header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise BadSignature("its algorithm is not HS256")
    if header.get("kid") != token_id:
        raise BadSignature(f"it names key {header.get('kid')!r}, not token id {token_id!r}")
    expected = _mac(secret, header_b64 + "." + _b64(content.encode()))
    if not hmac.compare_digest(expected, _unb64(sig_b64)):
        raise BadSignature("the signature does not match (wrong token secret, or the "
                           "content was changed)")


def ca_pin(spki_der: bytes) -> str:
    """kubeadm's ``--discovery-token-ca-cert-hash`` of a CA's DER SubjectPublicKeyInfo."""
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()


def normalize_pin(value: str) -> str:
    """A pin in canonical form (lower case); ValueError for anything but ``sha256:<64 hex>``."""
    v = value.strip().lower()
    if not _PIN.match(v):
        raise ValueError(f"{value!r} is not a CA hash (sha256:<64 hex digits>)")
    return v
