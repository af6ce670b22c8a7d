"""Who a request is, and what it asks to read or write, as the offline access checks see it.

Pure: strings and RequestInfo in, values out.

- The cache's *component key* combines the User-Agent's name with the peer's UID: a trusted
  user's processes (``allowed_users``) file their objects under the bare name, as YurtHub
  does (``kubelet``); any other user's under ``<name>@<uid>`` (``kubelet@1000``).  ``@`` is
  never part of a name taken from a User-Agent (those are ``[a-z0-9][a-z0-9._-]*``; anything
  else has no component and is never cached), so the two can never meet on disk.
- A pod on the HTTPS port (10268; no local UID, its own ServiceAccount token) files what
  it reads under ``<name>@pod`` (``kube-proxy@pod``): a pod saying ``kubelet/1`` must not
  write into kubelet's cache nor spend its quota.  The filters key on the name alone, so
  in-cluster kube-proxy and coredns still get theirs.  What a hub before this filed under
  the bare name stays readable offline by the token the cloud allowed it to
  (``legacy_component``).
- An *access key* is what the cloud authorized: verb, group, resource, subresource,
  namespace and name, as kube-apiserver's authorizer sees them.  A list or watch of a
  namespace (or of all namespaces) covers gets and pinned lists inside it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, NamedTuple

from yurthub.kube.requestinfo import RequestInfo

_AGENT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_AGENT_MAX = 200
READ_VERBS = frozenset({"get", "list", "watch"})
# Answers that prove the cloud authenticated and authorized the request: kube-apiserver
# decides authorization before it looks at the object (404, 409, 410, 422 come later).
# 429 does not: priority and fairness runs before authorization.
AUTHORIZED_CODES = frozenset({404, 409, 410, 422})


POD_SUFFIX = "@pod"


def pod_component(agent: str) -> str:
    """The cache component of a pod on 10268 saying ``agent`` ("" when it has none)."""
    component = component_key(agent, None, False, frozenset())
    return component + POD_SUFFIX if component else ""


def legacy_component(component: str) -> str:
    """Where a hub that filed pods under their bare User-Agent name kept ``component``'s
    objects and grants: the bare name for a pod's component, else ""."""
    return component[:-len(POD_SUFFIX)] if component.endswith(POD_SUFFIX) else ""


def component_key(agent: str, uid: int | None, identified: bool,
                  trusted: frozenset[int]) -> str:
    """The cache component of a request from ``agent`` (the User-Agent's name) and ``uid``.

    ``""`` (no component: never cached, nothing served offline) for a name that cannot be a
    path segment, and for a peer whose UID is unknown while identities are checked.
    """
    if not agent or len(agent) > _AGENT_MAX or not _AGENT.fullmatch(agent):
        return ""
    if not identified:
        return agent
    if uid is None:
        return ""
    return agent if uid in trusted else f"{agent}@{uid}"


def client_authorization(environ: dict[str, Any]) -> str:
    """The Authorization a request carries to the cloud: ``""`` when it has none, or when
    its ``Connection`` header names it hop-by-hop (the proxy drops it then, as any HTTP
    proxy must, and the request is one without a token of its own)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization and "authorization" in {
            t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",")}:
        return ""
    return str(authorization)


def accepted(status: int) -> bool:
    """True when an upstream answer shows the cloud allowed the request."""
    return 200 <= status < 300 or status in AUTHORIZED_CODES


# The longest name Kubernetes gives an object, namespace, group or resource: a key with a
# longer part (a 1 MiB path answered 404) names nothing the cache can hold, and is not
# worth the memory and the persisted document it would take (see ``AccessKey.storable``).
KEY_PART_MAX = 253


class AccessKey(NamedTuple):
    """One authorization decision: ``verb`` is ``get``, ``list`` (also for watch, which
    serves the same objects), a write verb, or ``nonresource`` (then ``resource`` is the
    path)."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str

    def storable(self) -> bool:
        """False when a part is longer than any name the cache can hold (KEY_PART_MAX)."""
        return all(len(part) <= KEY_PART_MAX for part in self)

    def covering(self) -> tuple[AccessKey, ...]:
        """The keys whose acceptance also allows this one (this one first)."""
        if self.verb not in ("get", "list"):
            return (self,)
        lists = (self._replace(verb="list", name=""),
                 self._replace(verb="list", namespace="", name=""))
        if self.verb == "get":
            return (self, self._replace(verb="list"), *lists)
        return (self, *lists)


def access_key(info: RequestInfo) -> AccessKey:
    if not info.is_resource_request:
        return AccessKey("nonresource", "", info.path, "", "", "")
    verb = "list" if info.verb == "watch" else info.verb
    return AccessKey(verb, info.api_group, info.resource, info.subresource, info.namespace,
                     info.name)


def bearer_expiry(authorization: str) -> float | None:
    """The ``exp`` of a bearer token that is a JWT (seconds since the epoch), else None.

    Read without checking the signature: the cloud checked it when it accepted the token;
    this only bounds how long the hub remembers that.
    """
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def bearer_subject(authorization: str) -> str:
    """The ``sub`` claim of a JWT bearer token (the user name kube-apiserver gives a service
    account token), or "" — only for messages."""
    scheme, _, token = authorization.strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return ""
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return ""
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and len(sub) <= 253 else ""


def forbidden_message(info: RequestInfo, who: str) -> str:
    """kube-apiserver's wording of a refusal (``NewForbidden`` around ``forbiddenMessage``),
    ``who`` in the place of ``User "<name>"``."""
    if not info.is_resource_request:
        return f'forbidden: {who} cannot {info.verb} path "{info.path}"'
    resource = info.resource + (f"/{info.subresource}" if info.subresource else "")
    qualified = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
    head = f'{qualified} "{info.name}" is forbidden' if info.name else f"{qualified} is forbidden"
    where = (f'in API group "{info.api_group}" in the namespace "{info.namespace}"'
             if info.namespace else f'in API group "{info.api_group}" at the cluster scope')
    return f'{head}: {who} cannot {info.verb} resource "{resource}" {where}'
