"""What the sandbox serves, and the discovery documents that describe it to clients.

The :class:`Registry` holds the built-in resource types plus those of every CustomResourceDefinition
created so far; the ``*_document`` functions render ``/version``, ``/api``, ``/api/v1``,
``/apis``, ``/apis/<group>`` and ``/apis/<group>/<version>`` as kube-apiserver shapes them
(legacy discovery, which kubectl accepts when it gets ``application/json`` back).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from yurthub.errors import NotFound
from yurthub.kube.patchschema import PatchField
from yurthub.kube.resources import BUILTIN, ResourceType, from_crd

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Which subresource verbs kube-apiserver lists for "<resource>/status".
_STATUS_VERBS = ["get", "patch", "update"]

GroupResource = tuple[str, str]


class Registry:
    """The resource types served, by group/version/resource; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {
            (t.group, t.version, t.resource): t for t in BUILTIN}
        self._custom: dict[str, list[ResourceType]] = {}  # CRD name -> its types
        # Strategic merge metadata a test gave a resource (see set_patch_schema).
        self._patch_schemas: dict[GroupResource, Mapping[str, PatchField]] = {}

    def set_patch_schema(self, group: str, resource: str,
                         schema: Mapping[str, PatchField]) -> None:
        """Accept strategic merge patches for ``group``/``resource`` with this metadata.

        kube-apiserver takes strategic merge patches only for types compiled into it; this
        lets a test serve one more such type (the golden tables use the Go test types of
        apimachinery's strategicpatch package), custom resource or not.
        """
        with self._lock:
            self._patch_schemas[(group, resource)] = schema

    def patch_schema(self, rt: ResourceType) -> Mapping[str, PatchField] | None:
        """The strategic merge metadata a test set for ``rt``, if any."""
        with self._lock:
            return self._patch_schemas.get((rt.group, rt.resource))

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, resource))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def is_custom(self, rt: ResourceType) -> bool:
        with self._lock:
            return any(rt in types for types in self._custom.values())

    def storage(self, group: str, resource: str) -> ResourceType:
        """The version objects of a group/resource are stored in (the first served one)."""
        with self._lock:
            for crd_types in self._custom.values():
                if crd_types and (crd_types[0].group, crd_types[0].resource) == (group, resource):
                    return crd_types[0]
            for t in self._types.values():
                if (t.group, t.resource) == (group, resource):
                    return t
        raise NotFound(f"the server could not find the requested resource ({resource})")

    def add_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Start serving a CRD's versions (the storage version first)."""
        types = from_crd(crd)
        versions = (crd.get("spec") or {}).get("versions") or []
        storage = next((v.get("name") for v in versions if v.get("storage")), None)
        types.sort(key=lambda t: t.version != storage)
        name = (crd.get("metadata") or {}).get("name", "")
        with self._lock:
            for old in self._custom.pop(name, []):
                self._types.pop((old.group, old.version, old.resource), None)
            self._custom[name] = types
            for t in types:
                self._types[(t.group, t.version, t.resource)] = t
        return types

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            types = self._custom.pop(name, [])
            for t in types:
                self._types.pop((t.group, t.version, t.resource), None)
        return types

    def resolve(self, name: str) -> ResourceType:
        """A type by plural (``pods``), ``plural.group``, kind (``Pod``) or short name."""
        types = self.all()
        for t in types:
            qualified = f"{t.resource}.{t.group}" if t.group else t.resource
            if name in (t.resource, qualified, t.kind) or name in t.short_names:
                return t
        lowered = name.lower()
        for t in types:
            if lowered in (t.kind.lower(), t.singular or t.kind.lower()):
                return t
        raise NotFound(f'the server doesn\'t have a resource type "{name}"')

    def groups(self) -> dict[str, list[str]]:
        """Group name -> versions served (built-in order, then CRDs in creation order)."""
        out: dict[str, list[str]] = {}
        for t in self.all():
            if t.group:
                versions = out.setdefault(t.group, [])
                if t.version not in versions:
                    versions.append(t.version)
        return out


def version_document() -> dict[str, Any]:
    return dict(KUBE_VERSION)


def api_versions_document(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list_document(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in registry.groups().items()],
    }


def api_group_document(registry: Registry, group: str) -> dict[str, Any]:
    versions = registry.groups().get(group)
    if not versions:
        raise NotFound("the server could not find the requested resource")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def resource_list_document(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = [t for t in registry.all() if (t.group, t.version) == (group, version)]
    if not types:
        raise NotFound("the server could not find the requested resource")
    resources: list[dict[str, Any]] = []
    for t in types:
        resources.append(t.discovery_entry())
        for sub in t.subresources:
            resources.append({"name": f"{t.resource}/{sub}", "singularName": "",
                              "namespaced": t.namespaced, "kind": t.kind,
                              "verbs": list(_STATUS_VERBS)})
    doc: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        doc["apiVersion"] = "v1"
    doc["groupVersion"] = f"{group}/{version}" if group else version
    doc["resources"] = resources
    return doc
