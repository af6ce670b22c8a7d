"""A minimal OpenAPI v3: enough for kubectl to know the server validates fields itself.

kubectl (``apply``/``create`` with the default ``--validate=strict``) reads ``/openapi/v3`` and
the document of the object's group/version, looking for the ``fieldValidation`` query
parameter on the PATCH operation of its kind; when it is there, kubectl leaves validation to
the server instead of downloading schemas.  The documents carry paths and operations only (no
schemas), so kubectl builds strategic merge patches from its compiled-in types, as it does
against a server without OpenAPI.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubesandbox.discovery import KUBE_VERSION, Registry
from kubesandbox.routing import NOT_FOUND
from yurthub.errors import NotFound
from yurthub.kube.resources import ResourceType

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(rt: ResourceType, action: str, body: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "parameters": [{"name": p, "in": "query", "schema": {"type": "string",
                                                            "uniqueItems": True}}
                       for p in _QUERY_PARAMS],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "kind": rt.kind,
                                            "version": rt.version},
    }
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return op


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = [t for t in registry.all() if (t.group, t.version) == (group, version)]
    if not types:
        raise NotFound(NOT_FOUND)
    paths: dict[str, Any] = {}
    for rt in types:
        base = "/" + _gv_path(group, version)
        if rt.namespaced:
            base += "/namespaces/{namespace}"
        paths[f"{base}/{rt.resource}"] = {"post": _operation(rt, "post", True)}
        paths[f"{base}/{rt.resource}/{{name}}"] = {
            "put": _operation(rt, "put", True),
            "patch": _operation(rt, "patch", False),
            "delete": _operation(rt, "delete", False),
        }
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


def index_document(registry: Registry) -> dict[str, Any]:
    gvs = sorted({(t.group, t.version) for t in registry.all()})
    paths = {}
    for group, version in gvs:
        doc = json.dumps(group_version_document(registry, group, version), sort_keys=True)
        digest = hashlib.sha512(doc.encode()).hexdigest()[:32].upper()
        paths[_gv_path(group, version)] = {
            "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"}
    return {"paths": paths}


def document(registry: Registry, path: str) -> dict[str, Any]:
    """The document for ``/openapi/v3`` or ``/openapi/v3/<api/v1|apis/g/v>``."""
    rest = path[len("/openapi/v3"):].strip("/")
    if not rest:
        return index_document(registry)
    parts = rest.split("/")
    if parts[0] == "api" and len(parts) == 2:
        return group_version_document(registry, "", parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return group_version_document(registry, parts[1], parts[2])
    raise NotFound(NOT_FOUND)
