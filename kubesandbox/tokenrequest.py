"""The TokenRequest API: ``POST .../serviceaccounts/<name>/token``, as kube-apiserver answers.

The body is an ``authentication.k8s.io/v1`` TokenRequest (JSON, or protobuf as kubelet
sends it); the answer (201) echoes it with
``status.token`` (a JWT of the sandbox's signer, satokens.py) and
``status.expirationTimestamp``.  kube-apiserver's rules, kept here:

- ``spec.expirationSeconds`` defaults to 3600; under 600 or over 2^32 is 422 Invalid;
- ``spec.audiences`` defaults to the apiserver's own (the issuer) and is kept in ``aud``;
- ``spec.boundObjectRef`` (kind Pod, apiVersion v1): the pod must exist (404), run as this
  ServiceAccount (400) and have the uid given (409); the token then names the pod;
- a missing ServiceAccount is 404;
- kubelet's magic 3607 s for a pod-bound token is extended to a year in the JWT (``exp``),
  while ``status.expirationTimestamp`` says 3607 s (the apiserver's extended tokens);
- a node (``system:node:<n>``, group ``system:nodes``) may only ask for tokens bound to a pod
  on that node that runs as the ServiceAccount (the node authorizer and NodeRestriction).

The token is never logged.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from kubesandbox import protobuf
from kubesandbox.auth import MASTERS, NODES, User
from kubesandbox.routing import Route
from kubesandbox.satokens import ISSUER, TokenSigner
from kubesandbox.store import Store
from kubesandbox.wire import Request, Response, json_response
from yurthub.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from yurthub.kube.resources import builtin

GROUP_VERSION = "authentication.k8s.io/v1"
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 1 << 32
KUBELET_SECONDS = 3607            # WarnOnlyBoundTokenExpirationSeconds
EXTENDED_SECONDS = 365 * 24 * 3600  # ExpirationExtensionSeconds
NODE_PREFIX = "system:node:"

_SA = builtin("", "v1", "serviceaccounts")
_POD = builtin("", "v1", "pods")


def _stamp(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode(body: bytes, content_type: str) -> dict[str, Any]:
    if content_type.split(";", 1)[0].strip().lower() == protobuf.PROTOBUF:
        return protobuf.decode_object(body)  # kubelet's own form (client-go's default)
    try:
        obj = json.loads(body or b"{}")
    except ValueError as e:
        raise BadRequest(f"the request body is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadRequest("the request body is not a JSON object")
    if obj.get("kind", "TokenRequest") != "TokenRequest" or \
            obj.get("apiVersion", GROUP_VERSION) != GROUP_VERSION:
        raise BadRequest(f"the body of the request must be a TokenRequest of {GROUP_VERSION}")
    return obj


def _invalid(field: str, value: Any, why: str) -> Invalid:
    return Invalid(f'TokenRequest.authentication.k8s.io "" is invalid: {field}: Invalid value: '
                   f"{value}: {why}",
                   details={"group": "authentication.k8s.io", "kind": "TokenRequest",
                            "causes": [{"reason": "FieldValueInvalid", "field": field,
                                        "message": f"Invalid value: {value}: {why}"}]})


def create_token(store: Store, signer: TokenSigner, route: Route, req: Request,
                 user: User) -> Response:
    """Answer a TokenRequest for ``route.namespace``/``route.name`` (see the module doc)."""
    assert _SA is not None and _POD is not None
    obj = _decode(req.body, req.headers.get("Content-Type") or "")
    spec: dict[str, Any] = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    seconds = spec.get("expirationSeconds", DEFAULT_SECONDS)
    if seconds is None:
        seconds = DEFAULT_SECONDS
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise BadRequest("spec.expirationSeconds must be an integer")
    if seconds < MIN_SECONDS:
        raise _invalid("spec.expirationSeconds", seconds,
                       "may not specify a duration less than 10 minutes")
    if seconds > MAX_SECONDS:
        raise _invalid("spec.expirationSeconds", seconds,
                       "may not specify a duration larger than 2^32 seconds")
    audiences = spec.get("audiences") or [ISSUER]
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        raise BadRequest("spec.audiences must be a list of strings")
    ref = spec.get("boundObjectRef")
    ns, name = route.namespace, route.name
    sa_entry = store.get(_SA, ns, name)
    if sa_entry is None:
        raise NotFound(f'serviceaccounts "{name}" not found',
                       details={"name": name, "kind": "serviceaccounts"})
    pod: dict[str, Any] | None = None
    if ref is not None:
        if not isinstance(ref, dict) or ref.get("kind") != "Pod" or \
                ref.get("apiVersion", "v1") != "v1" or not ref.get("name"):
            raise BadRequest(f"cannot bind token to object of type {ref!r}"
                             if not isinstance(ref, dict) else
                             f"cannot bind token to object of type "
                             f"{ref.get('apiVersion', '')}, Kind={ref.get('kind', '')}")
        entry = store.get(_POD, ns, str(ref["name"]))
        if entry is None:
            raise NotFound(f'pods "{ref["name"]}" not found',
                           details={"name": ref["name"], "kind": "pods"})
        pod = entry.obj()
        if (pod.get("spec") or {}).get("serviceAccountName", "default") != name:
            raise BadRequest(f'cannot bind token for serviceaccount "{name}" to pod running '
                             "with different serviceaccount name.")
        uid = (pod.get("metadata") or {}).get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise Conflict(f'Operation cannot be fulfilled on Pod "{ref["name"]}": the UID in '
                           f'the bound object reference ({ref["uid"]}) does not match the UID '
                           "in record. The object might have been deleted and then recreated",
                           details={"name": ref["name"], "kind": "Pod"})
    _authorize_node(user, route, pod)
    lifetime = seconds
    if pod is not None and seconds == KUBELET_SECONDS:
        lifetime = EXTENDED_SECONDS
    sa = sa_entry.obj()
    pod_ref = None if pod is None else (pod["metadata"]["name"], pod["metadata"].get("uid", ""))
    token, issued = signer.issue_bound(ns, name, (sa.get("metadata") or {}).get("uid", ""),
                                       lifetime=lifetime, audiences=list(audiences),
                                       pod=pod_ref,
                                       warn_after=seconds if lifetime != seconds else None)
    out = dict(obj)
    out["kind"], out["apiVersion"] = "TokenRequest", GROUP_VERSION
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    out["metadata"] = {**meta, "name": name, "namespace": ns, "creationTimestamp": None}
    out["spec"] = {**spec, "audiences": list(audiences), "expirationSeconds": seconds,
                   "boundObjectRef": ref}
    out["status"] = {"token": token, "expirationTimestamp": _stamp(issued + seconds)}
    return json_response(out, 201)


def _authorize_node(user: User, route: Route, pod: dict[str, Any] | None) -> None:
    """A node may ask only for tokens bound to its own pods (kube-apiserver's node authorizer
    and NodeRestriction admission); everyone else was authorized already."""
    if not user.is_(NODES) or user.is_(MASTERS):
        return
    node = user.name[len(NODE_PREFIX):] if user.name.startswith(NODE_PREFIX) else ""
    if pod is None:
        raise Forbidden(f'serviceaccounts "{route.name}" is forbidden: node requested token '
                        "not bound to a pod",
                        details={"name": route.name, "kind": "serviceaccounts"})
    if not node or (pod.get("spec") or {}).get("nodeName") != node:
        raise Forbidden(f'serviceaccounts "{route.name}" is forbidden: User "{user.name}" '
                        'cannot create resource "serviceaccounts/token" in API group "" in '
                        f'the namespace "{route.namespace}": no relationship found between '
                        f"node '{node}' and this object",
                        details={"name": route.name, "kind": "serviceaccounts"})
