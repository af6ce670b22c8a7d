"""The discovery documents: ``/version``, ``/api``, ``/apis`` and each group's resource lists,
which kubectl, coredns and informers need offline.

A document is kept per form it came in (plain JSON, or aggregated discovery of a version)
under its path plus that form (``document_key``); an offline read picks the first form the
client's Accept allows (``read``).  What a document says of resources (kind, scope) is
learned as it passes (``learn``), custom resources included.  Module functions: the paths,
keys and the learning are pure; ``read`` only reads the store it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from yurthub.errors import InvalidKeyError
from yurthub.kube.accept import is_json_content_type, parse_accept
from yurthub.storage import DiskStore

# /version and the discovery documents that kubectl, coredns and informers need offline.
_DISCOVERY = re.compile(r"^/(version|api|api/v1|apis|apis/[a-z0-9.-]+|apis/[a-z0-9.-]+/[a-z0-9]+)$")
AGGREGATED = "APIGroupDiscoveryList"
# The cached documents a start learns resources' kinds and scopes from.
LEARNED_AT_START = ("/api/v1", f"/api;{AGGREGATED};v2", f"/apis;{AGGREGATED};v2",
                    f"/apis;{AGGREGATED};v2beta1")

# (group, resource, kind, namespaced): what discovery says about one resource
LearnResource = Callable[[str, str, str, bool], None]


def is_discovery_path(path: str) -> bool:
    return bool(_DISCOVERY.match(path))


def document_key(path: str, content_type: str) -> str | None:
    """The key a discovery document served as ``content_type`` is kept under, or None when
    it is not one to keep (not a discovery path, not JSON, an unknown form)."""
    if not _DISCOVERY.match(path) or not is_json_content_type(content_type):
        return None
    variant = _variant(content_type)
    if variant is None:
        return None
    return path + variant


def read(store: DiskStore, path: str, accept: str) -> tuple[bytes, str] | None:
    """A cached discovery document for ``path`` in a form ``accept`` allows."""
    if not is_discovery_path(path):
        # why: the hub keeps documents of its own among the non-resource paths (the
        # filters' inputs, /_yurthub/...): offline they were a client's 200 answer (node
        # pools' members to a pod's token), where the cloud says 404.
        return None
    wanted: list[str] = []
    for mr in parse_accept(accept or "*/*"):
        params = dict(mr.params)
        if params.get("as") == AGGREGATED and params.get("g") == "apidiscovery.k8s.io":
            wanted.append(f";{AGGREGATED};{params.get('v', 'v2')}")
        elif mr.media_type in ("application/json", "application/*", "*/*") \
                and "as" not in params:
            wanted.append("")
    for variant in wanted or [""]:
        try:
            body = store.read_nonresource(path + variant)
        except InvalidKeyError:
            return None
        if body is not None:
            if variant:
                v = variant.rsplit(";", 1)[1]
                return body, (f"application/json;g=apidiscovery.k8s.io;v={v};"
                              f"as={AGGREGATED}")
            return body, "application/json"
    return None


def learn(doc: Any, learn_resource: LearnResource) -> None:
    """Learn kinds and scopes of resources from a discovery document (``learn_resource`` is
    told each one).

    Whatever the document's shape, this never raises: it runs on the writer thread.
    """
    if not isinstance(doc, dict):
        return
    if doc.get("kind") == "APIResourceList":
        group, _, _version = str(doc.get("groupVersion", "")).rpartition("/")
        for r in _dicts(doc.get("resources")):
            name, kind = r.get("name"), r.get("kind")
            if isinstance(name, str) and name and "/" not in name:
                learn_resource(group, name, kind if isinstance(kind, str) else "",
                               bool(r.get("namespaced")))
    elif doc.get("kind") == AGGREGATED:
        for g in _dicts(doc.get("items")):
            md = g.get("metadata")
            gname = md.get("name") if isinstance(md, dict) else None
            if not isinstance(gname, str):
                continue
            for v in _dicts(g.get("versions")):
                for r in _dicts(v.get("resources")):
                    name, rk = r.get("resource"), r.get("responseKind")
                    kind = rk.get("kind") if isinstance(rk, dict) else None
                    if isinstance(name, str) and name:
                        learn_resource(gname, name, kind if isinstance(kind, str) else "",
                                       r.get("scope") == "Namespaced")


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of a JSON array; nothing for anything else."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _variant(content_type: str) -> str | None:
    """"" for a plain JSON document, ";APIGroupDiscoveryList;<v>" for aggregated discovery."""
    params = {}
    for part in content_type.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        params[k.lower()] = v.strip()
    if "as" not in params:
        return ""
    if params.get("as") == AGGREGATED and params.get("g") == "apidiscovery.k8s.io":
        return f";{AGGREGATED};{params.get('v', 'v2')}"
    return None
