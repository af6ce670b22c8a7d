"""Who is asking, and may they: the sandbox's authenticators and its minimal authorizer.

Authentication is on when the sandbox has a static token, a client CA or bootstrap tokens.
Then a request is, in kube-apiserver's order: a bearer token (the static admin token, a
bootstrap token ``<id>.<secret>`` backed by a ``kube-system/bootstrap-token-<id>`` Secret, or
a ServiceAccount JWT this sandbox signed), else a verified client certificate (CN -> user,
O -> groups, refused once expired: kube-apiserver checks validity at every request), else
anonymous, which reaches only the health and version paths and ``kube-public/cluster-info``
(as 1.32's anonymous-auth conditions do; anything else is 401).

The authorizer is the least that refuses what each identity should not do: ``system:masters``
may do everything; nodes everything but approving CSRs and reading ``kube-system`` Secrets;
bootstrappers only create and read CSRs; ServiceAccounts only read (no Secrets); others
only discovery.  Secrets and tokens never reach a log.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubesandbox.routing import Route
from kubesandbox.satokens import TokenSigner
from yurthub.errors import Forbidden
from yurthub.kube import bootstraptoken as bt

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
NODES = "system:nodes"
SERVICE_ACCOUNTS = "system:serviceaccounts"
_ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz", "/version")
_READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class User:
    """An authenticated identity; ``credential`` says what proved it (never the secret)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    credential: str = ""

    def is_(self, group: str) -> bool:
        return group in self.groups


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",), credential="anonymous")
ADMIN = User("system:admin", (MASTERS, AUTHENTICATED), credential="unauthenticated-sandbox")

# Looks up an object of the store: (resource, namespace, name) -> object or None.
Lookup = Callable[[str, str, str], "dict[str, Any] | None"]


def anonymous_allowed(method: str, path: str) -> bool:
    if path in _ANONYMOUS_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
        return True
    return method in ("GET", "HEAD") and path == bt.CLUSTER_INFO_PATH


class Authenticator:
    """Turns a request's credentials into a User (None: 401 Unauthorized)."""

    def __init__(self, *, enabled: bool, static_token: str | None, lookup: Lookup,
                 signer: TokenSigner) -> None:
        self.enabled = enabled
        self.static_token = static_token
        self.lookup = lookup
        self.signer = signer

    def authenticate(self, authorization: str | None, peercert: Any, method: str,
                     path: str) -> User | None:
        if not self.enabled:
            return ADMIN
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return self._token(token.strip())
        if peercert:
            return _certificate_user(peercert)
        return ANONYMOUS if anonymous_allowed(method, path) else None

    def _token(self, token: str) -> User | None:
        if self.static_token and hmac.compare_digest(token.encode(), self.static_token.encode()):
            return User("sandbox-admin", (MASTERS, AUTHENTICATED), credential="token:static")
        try:
            token_id, secret = bt.parse_token(token)
        except ValueError:
            return self._service_account(token)
        return self._bootstrap(token_id, secret)

    def _bootstrap(self, token_id: str, secret: str) -> User | None:
        obj = self.lookup("secrets", bt.SECRET_NAMESPACE, bt.SECRET_PREFIX + token_id)
        if obj is None or obj.get("type") != bt.SECRET_TYPE:
            return None
        data = _decoded(obj.get("data") or {})
        if data.get("token-id") != token_id or data.get("usage-bootstrap-authentication") \
                != "true" or not hmac.compare_digest(data.get("token-secret", "").encode(),
                                                     secret.encode()):
            return None
        if token_expired(data.get("expiration", "")):
            return None
        extra = tuple(g.strip() for g in data.get("auth-extra-groups", "").split(",")
                      if g.strip())
        return User(bt.BOOTSTRAP_USER_PREFIX + token_id,
                    (bt.BOOTSTRAP_GROUP, *extra, AUTHENTICATED),
                    credential=f"token:bootstrap:{token_id}")

    def _service_account(self, token: str) -> User | None:
        claims = self.signer.verify(token)
        if claims is None:
            return None
        sa = self.lookup("serviceaccounts", claims.namespace, claims.name)
        if sa is None or (claims.uid and (sa.get("metadata") or {}).get("uid") != claims.uid):
            return None
        if claims.pod is not None:
            # a bound token dies with its pod (kube-apiserver checks it at every request)
            pod = self.lookup("pods", claims.namespace, claims.pod[0])
            if pod is None or (pod.get("metadata") or {}).get("uid") != claims.pod[1]:
                return None
        return User(f"system:serviceaccount:{claims.namespace}:{claims.name}",
                    (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{claims.namespace}", AUTHENTICATED),
                    uid=claims.uid, credential=f"token:serviceaccount:{claims.namespace}/"
                                               f"{claims.name}")


def _decoded(data: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in data.items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, ValueError):
            continue
    return out


def token_expired(expiration: str) -> bool:
    """Whether a bootstrap token's RFC 3339 ``expiration`` has passed (none: never)."""
    if not expiration:
        return False
    try:
        stamp = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return True
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp() <= time.time()


def _certificate_user(peercert: dict[str, Any]) -> User | None:
    now = time.time()
    try:
        if ssl.cert_time_to_seconds(peercert["notAfter"]) <= now or \
                ssl.cert_time_to_seconds(peercert["notBefore"]) > now:
            return None
    except (KeyError, ValueError):
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    try:  # the serial as a number in hex: getpeercert pads it to whole bytes
        serial = format(int(peercert.get("serialNumber", ""), 16), "x")
    except ValueError:
        serial = ""
    return User(cn, (*orgs, AUTHENTICATED), credential=f"x509:{serial}")


# -- authorization ----------------------------------------------------------------------------

def authorize(user: User, route: Route) -> None:
    """Raise Forbidden (kube-apiserver's message) unless ``user`` may do ``route``."""
    if user.is_(MASTERS) or route.is_discovery:
        return
    if _allowed(user, route):
        return
    resource = route.resource + (f"/{route.subresource}" if route.subresource else "")
    where = f'in the namespace "{route.namespace}"' if route.namespace else \
        "at the cluster scope"
    what = f'{route.resource} "{route.name}"' if route.name else route.resource
    raise Forbidden(f'{what} is forbidden: User "{user.name}" cannot {route.verb} resource '
                    f'"{resource}" in API group "{route.group}" {where}',
                    details={"name": route.name, "group": route.group, "kind": route.resource})


def _allowed(user: User, r: Route) -> bool:
    csr = r.group == "certificates.k8s.io" and r.resource == "certificatesigningrequests"
    if user is ANONYMOUS or user.name == ANONYMOUS.name:
        return r.verb == "get" and r.group == "" and r.resource == "configmaps" and \
            (r.namespace, r.name) == (bt.CLUSTER_INFO_NAMESPACE, bt.CLUSTER_INFO_NAME)
    if user.is_(NODES):
        if csr and r.subresource == "approval":
            return False
        return not (r.group == "" and r.resource == "secrets" and
                    r.namespace == bt.SECRET_NAMESPACE)
    if user.is_(bt.BOOTSTRAP_GROUP):
        return csr and not r.subresource and r.verb in ("create", "get", "list", "watch")
    if user.is_(SERVICE_ACCOUNTS):
        return r.verb in _READ_VERBS and not csr and not (r.group == "" and
                                                          r.resource == "secrets")
    return False
